import * as mysql from "mysql2/promise";
import type { Credentials, MariaDBServer } from "@mysqlgw/sandbox";

export interface ConnectOptions {
  host?: string;
  port: number;
  user: string;
  password?: string;
  database?: string;
  /** Default 5 s. */
  connectTimeout?: number;
  multipleStatements?: boolean;
  /** Anything else mysql2 takes. */
  extra?: Omit<mysql.ConnectionOptions, "host" | "port" | "user" | "password" | "database">;
}

/**
 * A mysql2 promise connection over TCP (127.0.0.1 unless told). Close it with
 * `end()`. Big numbers and dates come back as strings so that values compare
 * exactly between a direct connection and one through the gateway.
 */
export function connect(options: ConnectOptions): Promise<mysql.Connection> {
  return mysql.createConnection({
    host: options.host ?? "127.0.0.1",
    port: options.port,
    user: options.user,
    password: options.password ?? "",
    database: options.database,
    connectTimeout: options.connectTimeout ?? 5000,
    multipleStatements: options.multipleStatements ?? false,
    supportBigNumbers: true,
    bigNumberStrings: true,
    dateStrings: true,
    ...options.extra,
  });
}

/** A mysql2 promise connection straight to a sandbox server, as `creds` (e.g. `cluster.app`). */
export function connectTo(server: MariaDBServer, creds: Credentials, database?: string): Promise<mysql.Connection> {
  return connect({ port: server.port, user: creds.user, password: creds.password, database });
}

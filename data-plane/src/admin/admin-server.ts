/**
 * The admin SQL port (--admin-listen): a MySQL-protocol server on the
 * supervisor that lets a DBA read the data plane's virtual tables (digests,
 * connections, backends, config, listeners) with the mysql/mariadb client or
 * any driver. Read-only; one user (--admin-user) with a mysql_native_password
 * hash (--admin-password-hash); no TLS (bind it to loopback or a management
 * network). Statements are parsed by admin-sql.ts.
 */
import { Buffer } from "node:buffer";
import { randomFillSync } from "node:crypto";
import * as net from "node:net";
import type { Logger } from "pino";
import { buildAuthSwitchRequest } from "../protocol/packets/auth-switch-request";
import { buildErr } from "../protocol/packets/err";
import { buildHandshakeV10 } from "../protocol/packets/handshake-v10";
import { parseHandshakeResponse41 } from "../protocol/packets/handshake-response41";
import { buildOk } from "../protocol/packets/ok";
import { buildTextResultSet } from "../protocol/packets/result-set";
import { verifyNativePassword } from "../protocol/auth/mysql-native-password";
import { PacketFramer } from "../protocol/framer";
import { Capability, Command, ServerStatus } from "../protocol/constants";
import { AdminSqlError, parseAdminQuery, runSelect, textValue, type VirtualTable } from "./admin-sql";

export const ADMIN_SERVER_VERSION = "5.5.5-10.11.99-mysqlgw-admin";
const NATIVE = "mysql_native_password";

/** What the admin port offers: 4.1 protocol, plugin auth, no TLS, no compression, EOF packets. */
const ADMIN_CAPABILITIES =
  Capability.LongPassword |
  Capability.FoundRows |
  Capability.LongFlag |
  Capability.ConnectWithDb |
  Capability.Protocol41 |
  Capability.Transactions |
  Capability.SecureConnection |
  Capability.MultiResults |
  Capability.PluginAuth |
  Capability.PluginAuthLenencClientData;

export interface AdminServerOptions {
  host: string;
  port: number;
  user: string;
  /** "*HEX40" mysql_native_password hash. */
  passwordHash: string;
  /** The virtual tables (built per query). */
  tables(): ReadonlyMap<string, VirtualTable>;
  logger: Logger;
  /** Admin connections open at once; default 32. */
  maxConnections?: number;
  /** Handshake deadline, and idle timeout of a session; defaults 10000 ms and 600000 ms. */
  handshakeTimeoutMs?: number;
  idleTimeoutMs?: number;
  /** Largest packet accepted; default 1 MiB. */
  maxPacketSize?: number;
}

export interface AdminServer {
  readonly address: { host: string; port: number };
  close(): Promise<void>;
}

function makeNonce(): Buffer {
  const b = randomFillSync(Buffer.allocUnsafe(20));
  for (let i = 0; i < 20; i++) {
    let v = b[i] & 0x7f;
    if (v === 0 || v === 0x24) v += 1;
    b[i] = v;
  }
  return b;
}

/** Starts the admin port; rejects when it cannot listen. */
export async function startAdminServer(options: AdminServerOptions): Promise<AdminServer> {
  const maxConnections = options.maxConnections ?? 32;
  const sockets = new Set<net.Socket>();
  let nextId = 1;
  const server = net.createServer((socket) => {
    if (sockets.size >= maxConnections) {
      socket.end(buildErr({ errno: 1040, sqlState: "08004", message: `Too many connections to the admin port (at most ${maxConnections}); close idle admin sessions` }, 0));
      return;
    }
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
    socket.on("error", () => undefined);
    new AdminSession(socket, nextId++, options).start();
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port, options.host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const a = server.address() as net.AddressInfo;
  options.logger.info({ admin: `${a.address}:${a.port}`, user: options.user }, "admin SQL port listening");
  return {
    address: { host: a.address, port: a.port },
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

const enum Phase {
  Handshake,
  AuthSwitch,
  Command,
  Closed,
}

class AdminSession {
  private readonly nonce = makeNonce();
  private phase = Phase.Handshake;
  private username = "";
  private clientCaps = 0;
  private chain: Promise<void> = Promise.resolve();
  private timer: NodeJS.Timeout;
  private readonly framer: PacketFramer;

  constructor(
    private readonly socket: net.Socket,
    private readonly id: number,
    private readonly o: AdminServerOptions,
  ) {
    this.framer = new PacketFramer({ maxPacketSize: o.maxPacketSize ?? 1024 * 1024 }, (seq, payload) => {
      const copy = Buffer.from(payload);
      this.chain = this.chain.then(() => this.onPacket(seq, copy)).catch((err: unknown) => this.fail(err));
    });
    this.timer = setTimeout(() => this.socket.destroy(), o.handshakeTimeoutMs ?? 10000);
    socket.once("close", () => {
      this.phase = Phase.Closed;
      clearTimeout(this.timer);
    });
  }

  start(): void {
    this.socket.write(
      buildHandshakeV10({
        protocolVersion: 10,
        serverVersion: ADMIN_SERVER_VERSION,
        connectionId: this.id,
        authPluginData: this.nonce,
        capabilities: ADMIN_CAPABILITIES,
        mariadbCapabilities: 0,
        characterSet: 45,
        statusFlags: ServerStatus.Autocommit,
        authPluginName: NATIVE,
      }),
    );
    this.socket.on("data", (chunk: Buffer) => {
      try {
        this.framer.push(chunk);
      } catch (err) {
        this.fail(err);
      }
    });
  }

  private fail(err: unknown): void {
    if (this.phase === Phase.Closed) return;
    this.phase = Phase.Closed;
    this.o.logger.debug({ err: (err as Error)?.message, admin: this.id }, "admin session closed on a protocol error");
    this.socket.destroy();
  }

  private idle(): void {
    clearTimeout(this.timer);
    if (this.phase === Phase.Closed) return;
    this.timer = setTimeout(() => this.socket.destroy(), this.o.idleTimeoutMs ?? 600000);
  }

  private async onPacket(seq: number, payload: Buffer): Promise<void> {
    switch (this.phase) {
      case Phase.Handshake: {
        let h;
        try {
          h = parseHandshakeResponse41(payload, ADMIN_CAPABILITIES);
        } catch (err) {
          this.refuse(1043, "08S01", `Bad handshake: ${(err as Error).message} (the admin port has no TLS; connect without it, e.g. --ssl=0)`, seq + 1);
          return;
        }
        this.username = h.username;
        this.clientCaps = (h.capabilities & ADMIN_CAPABILITIES) >>> 0;
        if (h.authPluginName !== null && h.authPluginName !== NATIVE && h.authPluginName !== "") {
          this.phase = Phase.AuthSwitch;
          this.socket.write(buildAuthSwitchRequest(NATIVE, this.nonce, seq + 1));
          return;
        }
        this.authenticate(h.authResponse, seq + 1);
        return;
      }
      case Phase.AuthSwitch:
        this.authenticate(payload, seq + 1);
        return;
      case Phase.Command:
        this.idle();
        await this.command(payload);
        return;
      default:
        return;
    }
  }

  private refuse(errno: number, sqlState: string, message: string, seq: number): void {
    this.phase = Phase.Closed;
    this.socket.end(buildErr({ errno, sqlState, message }, seq & 0xff));
  }

  private authenticate(token: Buffer, seq: number): void {
    const ok = this.username === this.o.user && verifyNativePassword(token, this.nonce, this.o.passwordHash);
    if (!ok) {
      const host = this.socket.remoteAddress ?? "?";
      this.o.logger.warn({ user: this.username, client: host }, "admin port: access denied");
      this.refuse(1045, "28000", `Access denied for user '${this.username}'@'${host}' (using password: ${token.length > 0 ? "YES" : "NO"})`, seq);
      return;
    }
    this.phase = Phase.Command;
    this.idle();
    this.socket.write(buildOk({ statusFlags: ServerStatus.Autocommit }, this.clientCaps, seq & 0xff));
  }

  private async command(payload: Buffer): Promise<void> {
    const cmd = payload.length === 0 ? -1 : payload[0];
    switch (cmd) {
      case Command.Quit:
        this.phase = Phase.Closed;
        this.socket.end();
        return;
      case Command.Ping:
      case Command.InitDb:
      case Command.ResetConnection:
        this.socket.write(buildOk({ statusFlags: ServerStatus.Autocommit }, this.clientCaps, 1));
        return;
      case Command.Query:
        await this.query(payload.subarray(1).toString("utf8"));
        return;
      default:
        this.socket.write(buildErr({ errno: 1047, sqlState: "08S01", message: `Unknown command ${cmd} on the admin port; it answers text queries (COM_QUERY), PING and QUIT` }, 1));
    }
  }

  private async query(sql: string): Promise<void> {
    const status = ServerStatus.Autocommit;
    try {
      const q = parseAdminQuery(sql);
      let columns: string[];
      let rows: (string | null)[][];
      if (q.type === "noop") {
        this.socket.write(buildOk({ statusFlags: status }, this.clientCaps, 1));
        return;
      } else if (q.type === "show-tables") {
        columns = ["Tables_in_mysqlgw"];
        rows = [...this.o.tables().keys()].sort().map((t) => [t]);
      } else if (q.type === "show-databases") {
        columns = ["Database"];
        rows = [["mysqlgw"]];
      } else if (q.type === "variables") {
        columns = q.names;
        rows = [q.names.map(variableValue)];
      } else {
        const r = await runSelect(q, this.o.tables());
        columns = r.columns;
        rows = r.rows.map((row) => row.map(textValue));
      }
      if (this.phase === Phase.Closed) return;
      this.socket.write(buildTextResultSet(columns, rows, false, status, 1));
    } catch (err) {
      if (this.phase === Phase.Closed) return;
      const e = err instanceof AdminSqlError ? err : new AdminSqlError(1105, "HY000", `mysqlgw admin: ${(err as Error)?.message ?? String(err)}`);
      this.socket.write(buildErr({ errno: e.errno, sqlState: e.sqlState, message: e.message }, 1));
    }
  }
}

/** What SELECT @@x / f() answers (clients ask for a few on connect). */
function variableValue(name: string): string | null {
  const n = name.toLowerCase().replace(/^@@(session\.|global\.)?/, "");
  switch (n) {
    case "version_comment":
      return "mysqlgw admin port (read-only)";
    case "version()":
    case "version":
      return ADMIN_SERVER_VERSION;
    case "database()":
      return "mysqlgw";
    case "max_allowed_packet":
      return String(1024 * 1024);
    case "autocommit":
      return "1";
    case "connection_id()":
      return "0";
    case "user()":
    case "current_user()":
      return "admin";
    default:
      return null;
  }
}

import {
  freePort,
  startControlPlane,
  startDataPlane,
  startEtcd,
  startMariaDB,
  type ControlPlane,
  type DataPlane,
  type EtcdServer,
  type MariaDBServer,
} from "@mysqlgw/sandbox";
import { connect } from "./mysql";
import { nativePasswordHash } from "./password";
import { applyPolicy } from "./policy";

export interface GatewayFixtureOptions {
  /** More mariadbd options. */
  mariadbArgs?: string[];
  /** --workers of the data plane. Default 1. */
  workers?: number;
  /** More data-plane flags. */
  dataPlaneArgs?: string[];
  /** Databases created on the server before the data plane starts. */
  databases?: string[];
  /**
   * More fields of the listener (e.g. `{ role: "LISTENER_ROLE_SPLIT" }` to run a
   * suite through the routed engine). Default: the environment's
   * MYSQLGW_FIXTURE_LISTENER (JSON), else none.
   */
  listener?: Record<string, unknown>;
}

/** Where one side of a comparison connects: host is always 127.0.0.1. */
export interface Endpoint {
  readonly port: number;
  readonly user: string;
  readonly password: string;
}

export interface GatewayFixture {
  readonly db: MariaDBServer;
  readonly etcd: EtcdServer;
  readonly cp: ControlPlane;
  readonly dp: DataPlane;
  /** Straight to MariaDB as `app`. */
  readonly direct: Endpoint;
  /** Through the data plane as mysqlgw user `app`, which logs in to MariaDB as `app`. */
  readonly gateway: Endpoint;
}

/**
 * One MariaDB, etcd, control plane and data plane, with one listener in front
 * of the server. The gateway's user and the backend account have the same name
 * and password, so that anything naming the user (USER(), error texts) reads
 * the same direct and through the gateway. Everything stops with the file.
 */
export async function startGatewayFixture(options: GatewayFixtureOptions = {}): Promise<GatewayFixture> {
  const password = "conformance-pw-1";
  const [etcd, db] = await Promise.all([
    startEtcd(),
    startMariaDB({ accounts: [{ user: "app", password }], extraArgs: options.mariadbArgs }),
  ]);
  for (const d of options.databases ?? []) await db.query(`CREATE DATABASE \`${d}\``);
  const cp = await startControlPlane({ etcd });
  const port = await freePort();
  const { version } = await applyPolicy(cp, {
    clusters: [{ name: "main", backends: [{ name: "db", address: db.address }] }],
    listeners: [{ name: "main", bindAddress: "127.0.0.1", port, cluster: "main", ...(options.listener ?? fixtureListenerFromEnv()) }],
    users: [{ name: "app", passwordHash: nativePasswordHash(password), backendCredentials: { user: "app", secretRef: "env:MGW_FIXTURE_PW" } }],
  });
  const dp = await startDataPlane({
    etcd,
    workers: options.workers ?? 1,
    env: { MGW_FIXTURE_PW: password },
    args: options.dataPlaneArgs,
    waitForConfig: version,
  });
  // One connection per worker first: a worker learns its cluster's version and
  // capabilities from its first backend login and announces them to later clients.
  for (let i = 0; i < Math.max(1, options.workers ?? 1) * 2; i++) await (await connect({ port, user: "app", password })).end();
  return {
    db,
    etcd,
    cp,
    dp,
    direct: { port: db.port, user: "app", password },
    gateway: { port, user: "app", password },
  };
}

/** Extra listener fields from MYSQLGW_FIXTURE_LISTENER (JSON), for suites run again through another listener kind. */
export function fixtureListenerFromEnv(): Record<string, unknown> {
  const raw = process.env.MYSQLGW_FIXTURE_LISTENER;
  return raw === undefined || raw === "" ? {} : (JSON.parse(raw) as Record<string, unknown>);
}

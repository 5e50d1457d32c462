import * as fs from "node:fs";
import * as path from "node:path";
import { MgwError } from "./errors";
import { randomPassword, startMariaDB, type MariaDBAccount, type MariaDBServer } from "./mariadb";
import { register, tempDir, isTempDir } from "./registry";
import { waitFor } from "./wait-for";

export interface Credentials {
  user: string;
  password: string;
}

export interface StartReplicatedClusterOptions {
  /** Number of replicas. Default 1. */
  replicas?: number;
  /** Parent dir for the servers' dirs. Default: a temp dir. */
  dir?: string;
  /** Password of `app`@'%' (ALL on *.*). Default random. */
  appPassword?: string;
  /** More accounts, created on every server. */
  accounts?: MariaDBAccount[];
  /** More mariadbd options for every server. */
  extraArgs?: string[];
  /** Bound on each replica's IO/SQL threads starting. Default 20 s. */
  replicationTimeoutMs?: number;
  /**
   * MariaDB's built-in semi-synchronous replication: the primary commits, and
   * acknowledges to the client, only once a replica has the transaction in its
   * relay log (wait point AFTER_SYNC; rpl_semi_sync_master_wait_no_slave ON, so
   * it waits even with no replica connected). The master side is on on the
   * primary only (a replica with it on would make its own SQL thread wait for
   * acks of replicas it does not have); the slave side on every server. A
   * failover turns the master side on on the promoted replica. `true`: with a
   * master timeout of 30 s before the primary falls back to asynchronous; or
   * give the timeout.
   */
  semiSync?: boolean | { timeoutMs: number };
}

/** The mariadbd options of StartReplicatedClusterOptions.semiSync, for the primary or a replica. */
export function semiSyncArgs(semiSync: boolean | { timeoutMs: number } | undefined, primary: boolean): string[] {
  if (semiSync === undefined || semiSync === false) return [];
  const timeoutMs = semiSync === true ? 30_000 : semiSync.timeoutMs;
  return [
    `--rpl-semi-sync-master-enabled=${primary ? "ON" : "OFF"}`,
    "--rpl-semi-sync-slave-enabled=ON",
    `--rpl-semi-sync-master-timeout=${timeoutMs}`,
    "--rpl-semi-sync-master-wait-point=AFTER_SYNC",
    "--rpl-semi-sync-master-wait-no-slave=ON",
  ];
}

export interface ReplicatedCluster {
  readonly primary: MariaDBServer;
  readonly replicas: MariaDBServer[];
  /** primary first. */
  readonly servers: MariaDBServer[];
  /** `app`@'%', ALL on *.*, on every server: the account gateway tests use. */
  readonly app: Credentials;
  /** `repl`@'%', REPLICATION SLAVE, on every server. */
  readonly repl: Credentials;
  /** Waits until every running replica has applied the primary's @@gtid_binlog_pos. */
  waitForReplicas(timeoutMs?: number): Promise<void>;
  /** Stops every server and removes their temp dirs. Idempotent. */
  stop(): Promise<void>;
}

/**
 * A primary (server id 1) and `replicas` read-only replicas (ids 2…) replicating
 * with MariaDB GTID (MASTER_USE_GTID=slave_pos). Accounts are created with
 * sql_log_bin=0 on each server, so every binlog starts empty and replicas
 * replicate only what tests write. Servers start in parallel.
 */
export async function startReplicatedCluster(options: StartReplicatedClusterOptions = {}): Promise<ReplicatedCluster> {
  const n = options.replicas ?? 1;
  const parent = options.dir ?? tempDir("cluster");
  fs.mkdirSync(parent, { recursive: true });
  const app: Credentials = { user: "app", password: options.appPassword ?? randomPassword() };
  const repl: Credentials = { user: "repl", password: randomPassword() };
  const accounts: MariaDBAccount[] = [
    { user: app.user, password: app.password, grants: "ALL PRIVILEGES" },
    { user: repl.user, password: repl.password, grants: "REPLICATION SLAVE, REPLICATION SLAVE ADMIN, BINLOG MONITOR" },
    ...(options.accounts ?? []),
  ];
  const started: MariaDBServer[] = [];
  let stopped = false;
  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    unregister();
    await Promise.allSettled(started.map((s) => s.destroy()));
    if (isTempDir(parent)) fs.rmSync(parent, { recursive: true, force: true });
  };
  const unregister = register({
    label: "replicated cluster",
    pids: () => started.flatMap((s) => (s.pid !== null ? [s.pid] : [])),
    destroy: stop,
  });
  try {
    const specs = Array.from({ length: n + 1 }, (_, i) => ({
      serverId: i + 1,
      name: i === 0 ? "primary" : `replica${i}`,
      readOnly: i > 0,
    }));
    const results = await Promise.allSettled(
      specs.map((s) =>
        startMariaDB({
          dir: path.join(parent, s.name),
          name: s.name,
          serverId: s.serverId,
          readOnly: s.readOnly,
          accounts,
          extraArgs: [...semiSyncArgs(options.semiSync, s.serverId === 1), ...(options.extraArgs ?? [])],
        }).then((srv) => {
          started.push(srv);
          return srv;
        }),
      ),
    );
    const failed = results.find((r): r is PromiseRejectedResult => r.status === "rejected");
    if (failed !== undefined) throw failed.reason;
    const servers = results.map((r) => (r as PromiseFulfilledResult<MariaDBServer>).value);
    const primary = servers[0];
    const replicas = servers.slice(1);
    await Promise.all(replicas.map((r) => startReplication(r, primary, repl, options.replicationTimeoutMs)));
    return {
      primary,
      replicas,
      servers,
      app,
      repl,
      async waitForReplicas(timeoutMs) {
        await Promise.all(replicas.filter((r) => r.state === "running").map((r) => waitForReplica(r, primary, timeoutMs)));
      },
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}

/**
 * Points `replica` at `primary` with GTID (slave_pos) and starts it; waits
 * (bounded) until both replication threads run. Usable again after a failover.
 */
export async function startReplication(
  replica: MariaDBServer,
  primary: MariaDBServer,
  repl: Credentials,
  timeoutMs = 20_000,
): Promise<void> {
  await replica.query("STOP SLAVE");
  await replica.query(
    "CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT=?, MASTER_USER=?, MASTER_PASSWORD=?, MASTER_USE_GTID=slave_pos, MASTER_CONNECT_RETRY=1",
    [primary.port, repl.user, repl.password],
  );
  await replica.query("START SLAVE");
  let last: Record<string, unknown> = {};
  try {
    await waitFor(
      async () => {
        const [status] = await replica.query("SHOW SLAVE STATUS");
        last = status ?? {};
        return status !== undefined && status.Slave_IO_Running === "Yes" && status.Slave_SQL_Running === "Yes";
      },
      { timeoutMs, intervalMs: 50, what: `${replica.name} replicating from ${primary.name}` },
    );
  } catch (err) {
    throw new MgwError(
      "MGW_ERR_SANDBOX_REPLICATION",
      `${replica.name} did not start replicating from ${primary.name} within ${timeoutMs} ms: IO=${String(last.Slave_IO_Running)} SQL=${String(last.Slave_SQL_Running)} ${String(last.Last_IO_Error ?? "")} ${String(last.Last_SQL_Error ?? "")}`,
      { cause: err },
    );
  }
}

/**
 * Waits (bounded) until `replica` has applied everything in `primary`'s
 * @@gtid_binlog_pos, with MASTER_GTID_WAIT on the replica.
 */
export async function waitForReplica(replica: MariaDBServer, primary: MariaDBServer, timeoutMs = 10_000): Promise<void> {
  const [{ pos }] = await primary.query<{ pos: string }>("SELECT @@GLOBAL.gtid_binlog_pos AS pos");
  if (pos === "" || pos === null) return;
  const [{ r }] = await replica.query<{ r: unknown }>("SELECT MASTER_GTID_WAIT(?, ?) AS r", [pos, timeoutMs / 1000]);
  if (Number(r) !== 0) {
    const [status] = await replica.query("SHOW SLAVE STATUS");
    throw new MgwError(
      "MGW_ERR_SANDBOX_REPLICATION",
      `${replica.name} did not reach ${primary.name}'s gtid_binlog_pos ${pos} within ${timeoutMs} ms (gtid_slave_pos ${String(status?.Gtid_Slave_Pos)}, IO=${String(status?.Slave_IO_Running)}, SQL=${String(status?.Slave_SQL_Running)}, ${String(status?.Last_SQL_Error ?? "")})`,
    );
  }
}

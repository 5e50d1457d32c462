import { clone, create } from "@bufbuild/protobuf";
import { handlerGuard } from "../api/handler-guard";
import { timestampNow } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, type HandlerContext, type ServiceImpl } from "@connectrpc/connect";
import {
  ApplyPolicyRequestSchema,
  BackendHealth_Role,
  BackendSchema,
  etcdKeys,
  OperationRecordSchema,
  PolicySchema,
  ReplicationService,
  type Backend,
  type BackendHealth,
  type Cluster,
  type ConfigVersion,
  type OperationRecord,
  type SwitchoverRequest,
  type SwitchoverResponse,
} from "@mysqlgw/proto";
import { isMgwError, MgwError } from "../errors";
import type { ControlPlaneMetrics } from "../metrics";
import { resolveMonitorSecret } from "../monitor/secret";
import type { ConfigStore } from "../store/config-store";
import { describeViolations, type AdminServiceImpl } from "../api/admin-service";
import { validatePolicy } from "../model/validate";
import { toConnectError } from "../api/connect-errors";
import { connectBackend, readBackendState, type BackendConnection, type BackendConnector, type BackendTarget } from "./backend-sql";
import { describeMissing, missingGtids, parseGtidSet, unionGtidSets, type GtidSet } from "./gtid";
import { createMonitorEtcdClient } from "../monitor/monitor";
import { createEtcdOperationStore, type OperationStore } from "./operation-store";
import { requestedBy } from "./requested-by";
import { findPrimary, replicasOf, sameAddress, splitAddress, type BackendState, type BackendView, type EpochView } from "./topology";

/** OperationRecord.operation values. */
export const OPERATION = {
  register: "REGISTER_BACKEND",
  unregister: "UNREGISTER_BACKEND",
  attach: "ATTACH_REPLICA",
  detach: "DETACH_REPLICA",
  pause: "PAUSE",
  resume: "RESUME",
  rejoin: "REJOIN",
  switchover: "SWITCHOVER",
} as const;

export const DEFAULT_STATEMENT_TIMEOUT_MS = 5000;
export const DEFAULT_LOCK_WAIT_MS = 10_000;
export const DEFAULT_REPLICATION_WAIT_MS = 15_000;
export const DEFAULT_OPERATIONS_LIMIT = 50;
export const MAX_OPERATIONS_LIMIT = 1000;

export interface ReplicationSettings {
  /** Bound on connecting to a backend and on each statement. Default 5000 ms. */
  statementTimeoutMs?: number;
  /** How long an operation waits for another holder of the cluster lock. Default 10 000 ms. */
  lockWaitMs?: number;
  /** Bound on a replica's threads running after START SLAVE (attach, resume, rejoin). Default 15 000 ms. */
  replicationWaitMs?: number;
}

export interface ReplicationLogger {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

export interface ReplicationServiceOptions {
  /** The current policy, and the monitor's last health (for backends that do not answer). */
  store: Pick<ConfigStore, "getCurrent" | "listBackendHealth">;
  /** Register/unregister write the policy through the one apply path (validation, diff, serialised writes). */
  admin: Pick<AdminServiceImpl, "applyPolicy">;
  operations: OperationStore;
  /** Where health.credentials secret refs resolve. Default process.env. */
  env?: NodeJS.ProcessEnv;
  logger?: ReplicationLogger;
  metrics?: Pick<ControlPlaneMetrics, "apiRequest">;
  settings?: ReplicationSettings;
  /** Replaces the mysql2 connection (tests). */
  connect?: BackendConnector;
  /**
   * The planned switchover (control-plane/src/switchover); absent: Switchover
   * answers Unimplemented. `requestedBy` is computed here, once.
   */
  switchover?: (req: SwitchoverRequest, requestedBy: string, ctx: HandlerContext) => Promise<SwitchoverResponse>;
}

export type ReplicationServiceImpl = ServiceImpl<typeof ReplicationService>;

/**
 * mysqlgw.admin.v1.ReplicationService: replication operations on a cluster's
 * servers as a DBA runs them by hand (docs/monitor.md, "Replication
 * operations"). Each one: checks first and refuses with the reason and what to
 * do (MGW_ERR_REPLICATION_REFUSED, nothing changed); with dry_run stops there
 * and reports the statements it would run; otherwise holds the cluster's etcd
 * lock (shared with switchover and failover) while it runs its statements on
 * the servers as the cluster's health.credentials account, and records an
 * OperationRecord (refusals and failures too). A failed or refused call's
 * ConnectError carries the OperationRecord as a detail. Handlers throw
 * ConnectErrors only.
 */
export function createReplicationService(options: ReplicationServiceOptions): ReplicationServiceImpl {
  const { store, admin, operations, logger: log, metrics } = options;
  const env = options.env ?? process.env;
  const stmtMs = options.settings?.statementTimeoutMs ?? DEFAULT_STATEMENT_TIMEOUT_MS;
  const lockWaitMs = options.settings?.lockWaitMs ?? DEFAULT_LOCK_WAIT_MS;
  const replWaitMs = options.settings?.replicationWaitMs ?? DEFAULT_REPLICATION_WAIT_MS;
  const connector = options.connect ?? connectBackend;

  const guard = handlerGuard({ metrics, logger: log });

  /**
   * Runs one operation: the record, the lock (not for a dry run), the
   * connections, the outcome. Returns the (stored) record, or throws a
   * ConnectError carrying it.
   */
  async function operate(kind: string, cluster: string, backend: string, dryRun: boolean, ctx: HandlerContext, body: (op: Operation) => Promise<void>): Promise<OperationRecord> {
    checkName("cluster", cluster);
    checkName("backend", backend);
    const rec = create(OperationRecordSchema, { operation: kind, cluster, backend, requestedBy: requestedBy(ctx), startedAt: timestampNow() });
    const op = new Operation(rec, dryRun, ctx, { connector, stmtMs, env });
    let failure: unknown = null;
    try {
      if (dryRun) await body(op);
      else await operations.withClusterLock(cluster, lockWaitMs, () => body(op));
      rec.ok = true;
    } catch (err) {
      failure = err;
      rec.ok = false;
      rec.error = err instanceof ConnectError ? err.rawMessage : err instanceof Error ? err.message : String(err);
    } finally {
      op.close();
    }
    rec.finishedAt = timestampNow();
    let out = rec;
    if (!dryRun) {
      try {
        out = await operations.record(rec);
      } catch (err) {
        log?.error({ cluster, backend, operation: kind, err: (err as Error).message }, "replication: cannot record the operation in etcd");
      }
      const fields = { cluster, backend, operation: kind, requestedBy: rec.requestedBy, sequence: String(out.sequence), steps: rec.steps };
      if (rec.ok) log?.info(fields, `replication: ${kind} ${cluster}/${backend} done`);
      else log?.warn({ ...fields, err: rec.error }, `replication: ${kind} ${cluster}/${backend} ${isMgwError(failure, "MGW_ERR_REPLICATION_REFUSED") ? "refused" : "failed"}: ${rec.error}`);
    }
    if (failure === null) return out;
    const ce = toConnectError(failure);
    if (!isMgwError(failure) && !(failure instanceof ConnectError)) log?.error({ err: failure, operation: kind }, "unexpected error in a replication operation");
    type Outgoing = NonNullable<ConstructorParameters<typeof ConnectError>[3]>[number];
    const kept = ce.details.filter((d): d is Outgoing => "desc" in d);
    throw new ConnectError(ce.rawMessage, ce.code, ce.metadata, [...kept, { desc: OperationRecordSchema, value: out }], ce.cause);
  }

  /** The current config, the cluster, and the credentials its operations connect with. */
  async function loadCluster(op: Operation, name: string): Promise<{ cfg: ConfigVersion; cluster: Cluster }> {
    const cfg = await store.getCurrent();
    if (cfg === undefined || cfg.policy === undefined) throw new MgwError("MGW_ERR_REPLICATION_NOT_FOUND", `no policy is applied yet, so there is no cluster ${name}; apply a policy first (mysqlgw apply)`);
    const cluster = cfg.policy.clusters.find((c) => c.name === name);
    if (cluster === undefined) {
      const names = cfg.policy.clusters.map((c) => c.name);
      throw new MgwError("MGW_ERR_REPLICATION_NOT_FOUND", `cluster ${name} is not in the current policy (version ${cfg.version}${names.length > 0 ? `; clusters: ${names.join(", ")}` : ""}); check the name (mysqlgw get clusters)`);
    }
    const creds = cluster.health?.credentials;
    if (creds === undefined || creds.user === "") {
      throw new MgwError(
        "MGW_ERR_REPLICATION_REFUSED",
        `cluster ${name} has no health.credentials; replication operations run their statements as that account (the monitor's) — set health.credentials (user and secretRef of an account with REPLICATION SLAVE ADMIN, READ_ONLY ADMIN, RELOAD, SLAVE MONITOR, BINLOG MONITOR and REPLICATION SLAVE) and apply the policy`,
      );
    }
    op.credentials = { user: creds.user, password: await resolveMonitorSecret(creds.secretRef, env) };
    return { cfg, cluster };
  }

  function backendOf(cluster: Cluster, name: string): Backend {
    const b = cluster.backends.find((x) => x.name === name);
    if (b === undefined) {
      throw new MgwError("MGW_ERR_REPLICATION_NOT_FOUND", `cluster ${cluster.name} has no backend ${name} (backends: ${cluster.backends.map((x) => x.name).join(", ")}); check the name (mysqlgw backends --cluster ${cluster.name})`);
    }
    return b;
  }

  /** Every backend's state (in parallel; one that does not answer has its error), the epoch, and the primary. */
  async function survey(op: Operation, cluster: Cluster): Promise<Survey> {
    const [views, epoch] = await Promise.all([
      Promise.all(cluster.backends.map((b) => op.view(b))),
      operations.readEpoch(cluster.name),
    ]);
    const ev: EpochView | null = epoch === undefined ? null : { epoch: epoch.epoch, primary: epoch.primary, fenced: epoch.fenced };
    // The automatic failover does not take the cluster lock: before each statement the epoch is
    // read again, and a failover (or a switchover by a control plane that ignored the lock) that
    // happened since the survey stops the operation.
    op.beforeStatement = async () => {
      const now = await operations.readEpoch(cluster.name);
      if ((now?.epoch ?? 0n) !== (ev?.epoch ?? 0n) || (now?.primary ?? "") !== (ev?.primary ?? "")) {
        throw new MgwError(
          "MGW_ERR_REPLICATION_FAILED",
          `cluster ${cluster.name} failed over while this operation ran (epoch ${ev?.epoch ?? 0n} → ${now?.epoch ?? 0n}, primary now ${now?.primary ?? "unknown"}); it stopped before its next statement — check the cluster (mysqlgw backends, mysqlgw failovers) and run the command again`,
        );
      }
    };
    return { cluster, views, epoch: ev, primary: findPrimary(views, ev) };
  }

  function requirePrimary(s: Survey): BackendView {
    if (s.primary.primary === null) throw new MgwError("MGW_ERR_REPLICATION_REFUSED", `${s.cluster.name}: ${s.primary.why}`);
    return s.views.find((v) => v.name === s.primary.primary)!;
  }

  function requireState(v: BackendView, what: string): BackendState {
    if (v.state === null) throw new MgwError("MGW_ERR_REPLICATION_FAILED", `cannot ${what}: ${v.error}; nothing was done — bring it back and run the command again`);
    return v.state;
  }

  function fencedNote(s: Survey, name: string): string | null {
    if (s.epoch === null || !s.epoch.fenced.includes(name)) return null;
    return `${name} is a former primary fenced at failover epoch ${s.epoch.epoch} (the primary is now ${s.epoch.primary})`;
  }

  /**
   * Makes `b` a read_only replica of the primary `p`: read_only first, then
   * (refused if it has transactions the primary lacks) semi-sync master side
   * off, gtid_slave_pos set to what it has, CHANGE MASTER TO the primary with
   * MASTER_USE_GTID=slave_pos, START SLAVE, and a bounded wait until both
   * threads run.
   */
  async function joinPrimary(op: Operation, b: BackendView, p: BackendView, verb: string): Promise<void> {
    const before = requireState(b, `read ${b.name}`);
    requireState(p, `read the primary ${p.name}`);
    const wasWritable = !before.readOnly;
    if (wasWritable) await op.run(b, "SET GLOBAL read_only=1");
    // Read again once nothing more can be written on it, and the primary after it.
    const now = op.dryRun ? before : await op.state(b);
    const ps = op.dryRun ? p.state! : await op.state(p);
    const mine = gtidsOf(now, b.name);
    const theirs = gtidsOf(ps, p.name);
    const missing = missingGtids(mine, theirs);
    if (missing.length > 0) {
      if (wasWritable && !op.dryRun) await op.run(b, "SET GLOBAL read_only=0", undefined, { why: "(undo: it was writable before this refused operation)" });
      throw new MgwError(
        "MGW_ERR_REPLICATION_REFUSED",
        `${b.name} has transactions the primary ${p.name} lacks: ${describeMissing(missing, p.name)} — writes made on ${b.name} while it did not replicate, or lost from it at a failover; replicating would ` +
          `diverge from ${p.name} or stop with a duplicate/out-of-order GTID, so nothing was changed. Look at them (mysqlbinlog on ${b.name}'s binlog, from those GTIDs), re-apply on ${p.name} what must be kept, then drop them from ${b.name} ` +
          `(RESET MASTER on ${b.name}, which clears its binlog, or re-clone it from a backup of ${p.name}) and ${verb} it again`,
      );
    }
    op.note(`check: ${b.name}'s GTIDs (${now.gtidBinlogState || "none"} in its binlog, ${now.gtidSlavePos || "none"} applied) are all on ${p.name}${now.logBin ? "" : ` (${b.name} has no binlog, log_bin OFF: writes made on it leave no GTID and cannot be checked)`}`);
    if (now.semiSyncMaster === true) await op.run(b, "SET GLOBAL rpl_semi_sync_master_enabled=OFF");
    if (ps.semiSyncMaster === true && now.semiSyncSlave === false) await op.run(b, "SET GLOBAL rpl_semi_sync_slave_enabled=ON");
    if (now.replicationConfigured) await op.run(b, "STOP SLAVE");
    if (now.gtidCurrentPos !== now.gtidSlavePos) await op.run(b, "SET GLOBAL gtid_slave_pos=?", [now.gtidCurrentPos]);
    const [host, port] = splitAddress(p.address);
    if (now.replicationConfigured && now.masterUser !== "") {
      await op.run(b, "CHANGE MASTER TO MASTER_HOST=?, MASTER_PORT=?, MASTER_USE_GTID=slave_pos", [host, port]);
    } else {
      const c = op.credentials!;
      await op.run(b, "CHANGE MASTER TO MASTER_HOST=?, MASTER_PORT=?, MASTER_USER=?, MASTER_PASSWORD=?, MASTER_USE_GTID=slave_pos", [host, port, c.user, c.password], {
        shown: `CHANGE MASTER TO MASTER_HOST='${host}', MASTER_PORT=${port}, MASTER_USER='${c.user}', MASTER_PASSWORD=<health.credentials secret>, MASTER_USE_GTID=slave_pos`,
      });
    }
    await op.run(b, "START SLAVE");
    await waitReplicating(op, b, p);
  }

  /** Polls SHOW SLAVE STATUS until both threads run (bounded); a thread that stopped with an error fails at once. */
  async function waitReplicating(op: Operation, b: BackendView, source: BackendView | null): Promise<void> {
    if (op.dryRun) {
      op.note(`wait: until ${b.name}'s IO and SQL threads run (at most ${replWaitMs} ms)`);
      return;
    }
    const started = Date.now();
    let last: BackendState | null = null;
    for (let i = 0; i < 100_000; i++) {
      last = await op.state(b);
      if (last.ioRunning && last.sqlRunning && (source === null || sameAddress(last.sourceAddress, source.address))) {
        op.note(`wait: ${b.name} replicates from ${source?.name ?? last.sourceAddress} (both threads running after ${Date.now() - started} ms)`);
        return;
      }
      if (last.lastSqlError !== "" && !last.sqlRunning) break;
      if (Date.now() - started > replWaitMs) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    const why = last === null ? "" : ` (IO ${last.ioRunning ? "running" : "not running"}${last.lastIoError !== "" ? `: ${last.lastIoError}` : ""}; SQL ${last.sqlRunning ? "running" : "not running"}${last.lastSqlError !== "" ? `: ${last.lastSqlError}` : ""})`;
    throw new MgwError(
      "MGW_ERR_REPLICATION_FAILED",
      `${b.name} does not replicate${source !== null ? ` from ${source.name}` : ""} after START SLAVE${why}; fix what its replication error says (SHOW SLAVE STATUS on ${b.name}: account, network, GTID position), then run the command again`,
    );
  }

  async function applyPolicyChange(op: Operation, cfg: ConfigVersion, next: Cluster, what: string, ctx: HandlerContext): Promise<void> {
    const policy = clone(PolicySchema, cfg.policy ?? create(PolicySchema));
    policy.clusters = policy.clusters.map((c) => (c.name === next.name ? next : c));
    const r = await admin.applyPolicy(
      create(ApplyPolicyRequestSchema, { policy, dryRun: op.dryRun, appliedBy: `${op.record.requestedBy} (${what})`, expectedVersion: cfg.version }),
      ctx,
    );
    if (op.dryRun) {
      op.note(`policy: would write version ${(r.version ?? cfg.version) + 1n}: ${what}`);
      return;
    }
    op.record.configVersion = r.version ?? 0n;
    op.note(`policy: version ${r.version ?? 0n}: ${what}`);
  }

  /** The monitor's last health of a cluster's backends (for backends that do not answer now); {} when etcd fails. */
  async function lastHealth(cluster: string): Promise<Map<string, BackendHealth>> {
    try {
      return new Map((await store.listBackendHealth(cluster)).map((h) => [h.backend, h]));
    } catch {
      return new Map();
    }
  }

  return {
    switchover: guard("Switchover", async (req, ctx) => {
      if (options.switchover === undefined) {
        throw new ConnectError(
          "planned switchover is not built into this control plane yet (control-plane/src/switchover); move the primary by hand: pause the primary (mysqlgw backend pause), wait for the target to apply its last GTID, promote it, then attach the others (mysqlgw replica attach)",
          Code.Unimplemented,
        );
      }
      return options.switchover(req, requestedBy(ctx), ctx);
    }),

    registerBackend: guard("RegisterBackend", async (req, ctx) => {
      const nb = req.backend ?? create(BackendSchema);
      if (nb.name === "") throw new MgwError("MGW_ERR_API_BAD_REQUEST", "backend.name is missing; give the new backend a name, unique in its cluster");
      if (nb.address === "") throw new MgwError("MGW_ERR_API_BAD_REQUEST", "backend.address is missing; give host:port of the server");
      const rec = await operate(OPERATION.register, req.cluster, nb.name, req.dryRun, ctx, async (op) => {
        const { cfg, cluster } = await loadCluster(op, req.cluster);
        if (cluster.backends.some((b) => b.name === nb.name)) {
          throw new MgwError("MGW_ERR_REPLICATION_REFUSED", `cluster ${cluster.name} already has a backend named ${nb.name}; pick another name`);
        }
        const dup = cluster.backends.find((b) => sameAddress(b.address, nb.address));
        if (dup !== undefined) throw new MgwError("MGW_ERR_REPLICATION_REFUSED", `${nb.address} is already backend ${dup.name} of cluster ${cluster.name}; a server is registered once`);
        // the policy with it must be valid before anything is asked of the server
        const next = clone(BackendSchema, nb);
        const grown: Cluster = { ...cluster, backends: [...cluster.backends, next] };
        const violations = validatePolicy({ ...cfg.policy!, clusters: cfg.policy!.clusters.map((c) => (c.name === cluster.name ? grown : c)) });
        if (violations.length > 0) throw new MgwError("MGW_ERR_POLICY_INVALID", describeViolations(violations), { violations });
        const view = await op.view(nb);
        const st = requireState(view, `reach the new server ${nb.address} as health.credentials' account (the control plane checks it before registering)`);
        op.note(`check: ${nb.name} (${nb.address}) answers: server_id ${st.serverId}, read_only ${st.readOnly ? "ON" : "OFF"}, ${st.replicationConfigured ? `replicates from ${st.sourceAddress}` : "replicates from nobody"}`);
        const [others, health] = await Promise.all([Promise.all(cluster.backends.map((b) => op.view(b))), lastHealth(cluster.name)]);
        for (const o of others) {
          const sid = o.state?.serverId ?? health.get(o.name)?.serverId ?? 0;
          if (sid !== 0 && sid === st.serverId) {
            throw new MgwError("MGW_ERR_REPLICATION_REFUSED", `${nb.address} has server_id ${st.serverId}, as backend ${o.name} does; every server of a replication topology needs its own server_id — set server_id in its configuration, restart it and register it again`);
          }
        }
        if (!st.readOnly && !st.replicationConfigured && cluster.backends.length > 0) {
          throw new MgwError(
            "MGW_ERR_REPLICATION_REFUSED",
            `${nb.name} (${nb.address}) is writable and replicates from nobody: the monitor would report it as a second PRIMARY of ${cluster.name}; SET GLOBAL read_only=1 on it, register it, then attach it (mysqlgw replica attach --cluster ${cluster.name} --backend ${nb.name})`,
          );
        }
        await applyPolicyChange(op, cfg, grown, `register backend ${nb.name} (${nb.address}) in cluster ${cluster.name}`, ctx);
      });
      return { operation: rec };
    }),

    unregisterBackend: guard("UnregisterBackend", async (req, ctx) => {
      const rec = await operate(OPERATION.unregister, req.cluster, req.backend, req.dryRun, ctx, async (op) => {
        const { cfg, cluster } = await loadCluster(op, req.cluster);
        const b = backendOf(cluster, req.backend);
        if (cluster.backends.length === 1) {
          throw new MgwError("MGW_ERR_REPLICATION_REFUSED", `${b.name} is the last backend of cluster ${cluster.name}; a cluster needs one — delete the cluster from the policy instead (with its listeners)`);
        }
        const [s, health] = await Promise.all([survey(op, cluster), lastHealth(cluster.name)]);
        const me = s.views.find((v) => v.name === b.name)!;
        const lastRole = health.get(b.name)?.role;
        if (s.primary.primary === b.name || (me.state !== null && !me.state.readOnly && !me.state.replicationConfigured) || (me.state === null && lastRole === BackendHealth_Role.PRIMARY)) {
          throw new MgwError(
            "MGW_ERR_REPLICATION_REFUSED",
            `${b.name} is the primary of cluster ${cluster.name}${s.primary.primary === b.name ? ` (${s.primary.why})` : ""}; unregistering it would leave the cluster without one — switch over to a replica first (mysqlgw switchover --cluster ${cluster.name}), then unregister it`,
          );
        }
        const followers = new Set(replicasOf(s.views, b.address));
        for (const v of s.views) {
          const h = health.get(v.name);
          if (v.state === null && h !== undefined && h.sourceAddress !== "" && sameAddress(h.sourceAddress, b.address)) followers.add(v.name);
        }
        followers.delete(b.name);
        if (followers.size > 0) {
          throw new MgwError(
            "MGW_ERR_REPLICATION_REFUSED",
            `${[...followers].join(", ")} replicate${followers.size === 1 ? "s" : ""} from ${b.name}; re-point ${followers.size === 1 ? "it" : "them"} first (mysqlgw replica detach, then mysqlgw replica attach), then unregister ${b.name}`,
          );
        }
        op.note(`check: ${b.name} is not the primary (${s.primary.primary ?? "unknown"} is) and no backend replicates from it`);
        await applyPolicyChange(op, cfg, { ...cluster, backends: cluster.backends.filter((x) => x.name !== b.name) }, `unregister backend ${b.name} (${b.address}) from cluster ${cluster.name}`, ctx);
      });
      return { operation: rec };
    }),

    attachReplica: guard("AttachReplica", async (req, ctx) => {
      const rec = await operate(OPERATION.attach, req.cluster, req.backend, req.dryRun, ctx, async (op) => {
        const { cluster } = await loadCluster(op, req.cluster);
        backendOf(cluster, req.backend);
        const s = await survey(op, cluster);
        const fenced = fencedNote(s, req.backend);
        if (fenced !== null) throw new MgwError("MGW_ERR_REPLICATION_REFUSED", `${fenced}; rejoin it instead: mysqlgw backend rejoin --cluster ${cluster.name} --backend ${req.backend}`);
        const p = requirePrimary(s);
        const b = s.views.find((v) => v.name === req.backend)!;
        if (p.name === b.name) {
          throw new MgwError("MGW_ERR_REPLICATION_REFUSED", `${b.name} is the primary of cluster ${cluster.name} (${s.primary.why}); attach makes a backend replicate from the primary — name a replica, or switch over first (mysqlgw switchover)`);
        }
        const bs = requireState(b, `read ${b.name}`);
        requireState(p, `read the primary ${p.name}`);
        if (bs.replicationConfigured && !sameAddress(bs.sourceAddress, p.address)) {
          throw new MgwError("MGW_ERR_REPLICATION_REFUSED", `${b.name} replicates from ${bs.sourceAddress}, not from the primary ${p.name}; detach it first (mysqlgw replica detach --cluster ${cluster.name} --backend ${b.name}), then attach it`);
        }
        if (bs.replicationConfigured && bs.ioRunning && bs.sqlRunning) {
          op.note(`check: ${b.name} already replicates from ${p.name} with both threads running; nothing to do`);
          return;
        }
        await joinPrimary(op, b, p, "attach");
      });
      return { operation: rec };
    }),

    detachReplica: guard("DetachReplica", async (req, ctx) => {
      const rec = await operate(OPERATION.detach, req.cluster, req.backend, req.dryRun, ctx, async (op) => {
        const { cluster } = await loadCluster(op, req.cluster);
        backendOf(cluster, req.backend);
        const s = await survey(op, cluster);
        const b = s.views.find((v) => v.name === req.backend)!;
        if (s.primary.primary === b.name) {
          throw new MgwError("MGW_ERR_REPLICATION_REFUSED", `${b.name} is the primary of cluster ${cluster.name} (${s.primary.why}); only a replica can be detached`);
        }
        const bs = requireState(b, `read ${b.name}`);
        if (!bs.replicationConfigured) {
          throw new MgwError("MGW_ERR_REPLICATION_REFUSED", `${b.name} does not replicate (no source configured); there is nothing to detach — attach it (mysqlgw replica attach) if it should replicate`);
        }
        await op.run(b, "STOP SLAVE");
        await op.run(b, "RESET SLAVE ALL");
        if (!bs.readOnly) await op.run(b, "SET GLOBAL read_only=1");
        else op.note(`check: ${b.name} stays read_only`);
      });
      return { operation: rec };
    }),

    pauseBackend: guard("PauseBackend", async (req, ctx) => {
      const rec = await operate(OPERATION.pause, req.cluster, req.backend, req.dryRun, ctx, async (op) => {
        const { cluster } = await loadCluster(op, req.cluster);
        backendOf(cluster, req.backend);
        const s = await survey(op, cluster);
        const b = s.views.find((v) => v.name === req.backend)!;
        const bs = requireState(b, `read ${b.name}`);
        if (bs.replicationConfigured && s.primary.primary !== b.name) {
          if (!bs.ioRunning && !bs.sqlRunning) {
            op.note(`check: ${b.name}'s replication threads are already stopped; nothing to do`);
            return;
          }
          await op.run(b, "STOP SLAVE");
          return;
        }
        if (s.primary.primary === b.name) {
          if (bs.readOnly) {
            op.note(`check: the primary ${b.name} is already read_only; nothing to do`);
            return;
          }
          await op.run(b, "SET GLOBAL read_only=1");
          return;
        }
        throw new MgwError(
          "MGW_ERR_REPLICATION_REFUSED",
          `${b.name} neither replicates nor is the primary of cluster ${cluster.name}${s.primary.primary === null ? ` (${s.primary.why})` : ` (${s.primary.primary} is)`}; there is nothing to pause — attach it (mysqlgw replica attach) to make it a replica`,
        );
      });
      return { operation: rec };
    }),

    resumeBackend: guard("ResumeBackend", async (req, ctx) => {
      const rec = await operate(OPERATION.resume, req.cluster, req.backend, req.dryRun, ctx, async (op) => {
        const { cluster } = await loadCluster(op, req.cluster);
        backendOf(cluster, req.backend);
        const s = await survey(op, cluster);
        const b = s.views.find((v) => v.name === req.backend)!;
        const fenced = fencedNote(s, b.name);
        if (fenced !== null) {
          throw new MgwError("MGW_ERR_REPLICATION_REFUSED", `${fenced}; it must never take writes again beside ${s.epoch!.primary} — rejoin it as a replica instead: mysqlgw backend rejoin --cluster ${cluster.name} --backend ${b.name}`);
        }
        const bs = requireState(b, `read ${b.name}`);
        if (bs.replicationConfigured && s.primary.primary !== b.name) {
          if (bs.ioRunning && bs.sqlRunning) {
            op.note(`check: ${b.name}'s replication threads already run; nothing to do`);
            return;
          }
          await op.run(b, "START SLAVE");
          await waitReplicating(op, b, null);
          return;
        }
        if (s.primary.primary === b.name) {
          if (!bs.readOnly) {
            op.note(`check: the primary ${b.name} is already writable; nothing to do`);
            return;
          }
          const rival = s.views.find((v) => v.name !== b.name && v.state !== null && !v.state.readOnly && !v.state.replicationConfigured);
          if (rival !== undefined) {
            throw new MgwError("MGW_ERR_REPLICATION_REFUSED", `${rival.name} is writable and replicates from nobody: making ${b.name} writable too would give cluster ${cluster.name} two primaries; set ${rival.name} read_only (or detach/attach it) first`);
          }
          await op.run(b, "SET GLOBAL read_only=0");
          return;
        }
        throw new MgwError(
          "MGW_ERR_REPLICATION_REFUSED",
          `${b.name} neither replicates nor is the primary of cluster ${cluster.name}${s.primary.primary === null ? ` (${s.primary.why})` : ` (${s.primary.primary} is)`}; there is nothing to resume — attach it (mysqlgw replica attach) or rejoin it (mysqlgw backend rejoin)`,
        );
      });
      return { operation: rec };
    }),

    rejoinBackend: guard("RejoinBackend", async (req, ctx) => {
      const rec = await operate(OPERATION.rejoin, req.cluster, req.backend, req.dryRun, ctx, async (op) => {
        const { cluster } = await loadCluster(op, req.cluster);
        backendOf(cluster, req.backend);
        const s = await survey(op, cluster);
        const p = requirePrimary(s);
        const b = s.views.find((v) => v.name === req.backend)!;
        if (p.name === b.name) throw new MgwError("MGW_ERR_REPLICATION_REFUSED", `${b.name} is the current primary of cluster ${cluster.name} (${s.primary.why}); there is nothing to rejoin`);
        const fenced = fencedNote(s, b.name);
        if (fenced !== null) op.note(`check: ${fenced}`);
        const bs = requireState(b, `read ${b.name}`);
        requireState(p, `read the primary ${p.name}`);
        if (bs.replicationConfigured && !sameAddress(bs.sourceAddress, p.address)) {
          throw new MgwError("MGW_ERR_REPLICATION_REFUSED", `${b.name} replicates from ${bs.sourceAddress}, not from the primary ${p.name}; detach it first (mysqlgw replica detach --cluster ${cluster.name} --backend ${b.name}), then rejoin it`);
        }
        if (bs.replicationConfigured) {
          if (!bs.readOnly) await op.run(b, "SET GLOBAL read_only=1");
          if (!bs.ioRunning || !bs.sqlRunning) {
            await op.run(b, "START SLAVE");
          }
          await waitReplicating(op, b, p);
        } else {
          await joinPrimary(op, b, p, "rejoin");
        }
        if (fenced !== null) {
          if (op.dryRun) op.note(`etcd: would take ${b.name} off the fenced list of ${cluster.name}'s epoch ${s.epoch!.epoch}`);
          else {
            await operations.unfence(cluster.name, b.name);
            op.note(`etcd: ${b.name} taken off the fenced list of ${cluster.name}'s epoch ${s.epoch!.epoch}; it may serve reads`);
          }
        }
      });
      return { operation: rec };
    }),

    listOperations: guard("ListOperations", async (req) => {
      const limit = req.limit === 0 ? DEFAULT_OPERATIONS_LIMIT : req.limit;
      if (limit > MAX_OPERATIONS_LIMIT) throw new MgwError("MGW_ERR_API_BAD_REQUEST", `limit ${limit} is over ${MAX_OPERATIONS_LIMIT}; ask for fewer`);
      return { operations: await operations.list(req.cluster, limit) };
    }),
  };
}

interface Survey {
  cluster: Cluster;
  views: BackendView[];
  epoch: EpochView | null;
  primary: ReturnType<typeof findPrimary>;
}

function checkName(what: string, name: string): void {
  if (name === "") throw new MgwError("MGW_ERR_API_BAD_REQUEST", `${what} is missing; name the ${what}`);
  if (!/^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/.test(name)) throw new MgwError("MGW_ERR_API_BAD_REQUEST", `${what} ${JSON.stringify(name)} is not a valid name; use the name as in the policy`);
}

/** What a server has: its binlog state and what it applied from sources. */
function gtidsOf(st: BackendState, name: string): GtidSet {
  const a = parseGtidSet(st.gtidBinlogState);
  const b = parseGtidSet(st.gtidSlavePos);
  if (a === null || b === null) {
    throw new MgwError("MGW_ERR_REPLICATION_FAILED", `${name}'s GTID positions do not parse (gtid_binlog_state ${JSON.stringify(st.gtidBinlogState)}, gtid_slave_pos ${JSON.stringify(st.gtidSlavePos)}); is it MariaDB? nothing was changed`);
  }
  return unionGtidSets(a, b);
}

/** One operation in progress: its record, connections, and the statements it runs (or, dry, would run). */
class Operation {
  credentials: { user: string; password: string } | null = null;
  /** Run before each statement (not in a dry run); throws to stop the operation. */
  beforeStatement: (() => Promise<void>) | null = null;
  private readonly conns = new Map<string, Promise<BackendConnection>>();

  constructor(
    readonly record: OperationRecord,
    readonly dryRun: boolean,
    readonly ctx: HandlerContext,
    private readonly o: { connector: BackendConnector; stmtMs: number; env: NodeJS.ProcessEnv },
  ) {}

  private conn(b: { name: string; address: string }): Promise<BackendConnection> {
    let c = this.conns.get(b.name);
    if (c === undefined) {
      const target: BackendTarget = { name: b.name, address: b.address, user: this.credentials!.user, password: this.credentials!.password };
      c = this.o.connector(target, this.o.stmtMs);
      c.catch(() => undefined);
      this.conns.set(b.name, c);
    }
    return c;
  }

  /** A backend's state, or why it could not be read (never throws). */
  async view(b: { name: string; address: string }): Promise<BackendView> {
    try {
      return { name: b.name, address: b.address, state: await readBackendState(await this.conn(b)), error: "" };
    } catch (err) {
      // a failed connection is tried afresh next time
      this.conns.delete(b.name);
      return { name: b.name, address: b.address, state: null, error: (err as Error).message };
    }
  }

  /** A backend's state now (throws MGW_ERR_REPLICATION_FAILED when it cannot be read). */
  async state(b: { name: string; address: string }): Promise<BackendState> {
    const v = await this.view(b);
    if (v.state === null) throw new MgwError("MGW_ERR_REPLICATION_FAILED", `cannot read ${b.name}: ${v.error}; the steps listed ran, check ${b.name} and run the command again`);
    return v.state;
  }

  /** Runs (or, dry, lists) one statement on a backend; a failure is recorded with the step and thrown. */
  async run(b: { name: string; address: string }, sql: string, params?: unknown[], opts?: { shown?: string; why?: string }): Promise<void> {
    const text = `${b.name}: ${opts?.shown ?? (params === undefined ? sql : inline(sql, params))}${opts?.why !== undefined ? ` ${opts.why}` : ""}`;
    if (this.dryRun) {
      this.record.steps.push(`would run ${text}`);
      return;
    }
    if (this.beforeStatement !== null) await this.beforeStatement();
    try {
      const c = await this.conn(b);
      await c.query(sql, params);
    } catch (err) {
      this.conns.delete(b.name);
      this.record.steps.push(`${text} — failed: ${(err as Error).message}`);
      throw new MgwError("MGW_ERR_REPLICATION_FAILED", `${text} failed (${(err as Error).message}); the steps before it ran (mysqlgw operations shows them) — fix the cause and run the command again`);
    }
    this.record.steps.push(text);
  }

  /** A step that is not a statement (a check passed, a policy version, etcd). */
  note(text: string): void {
    this.record.steps.push(text);
  }

  close(): void {
    for (const c of this.conns.values()) c.then((x) => x.close(), () => undefined);
    this.conns.clear();
  }
}

/** The statement as recorded: placeholders replaced by the quoted values (no secret goes through here). */
function inline(sql: string, params: readonly unknown[]): string {
  let i = 0;
  return sql.replace(/\?/g, () => {
    const v = params[i++];
    return typeof v === "number" ? String(v) : `'${String(v).replace(/'/g, "''")}'`;
  });
}

/** What main.ts needs to serve the ReplicationService from etcd. */
export interface EtcdReplicationOptions extends Omit<ReplicationServiceOptions, "operations"> {
  endpoints: string[];
  prefix: string;
  callTimeoutMs: number;
}

/**
 * The ReplicationService over its own etcd client (lock, records, epochs);
 * `close` releases that client.
 */
export function createEtcdReplication(o: EtcdReplicationOptions): { service: ReplicationServiceImpl; close(): void } {
  const client = createMonitorEtcdClient(o.endpoints, o.callTimeoutMs);
  const operations = createEtcdOperationStore({ client, keys: etcdKeys(o.prefix), description: `etcd at ${o.endpoints.join(",")}`, callTimeoutMs: o.callTimeoutMs });
  return { service: createReplicationService({ ...o, operations }), close: () => client.close() };
}

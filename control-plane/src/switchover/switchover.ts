import { create, fromJsonString, toJsonString } from "@bufbuild/protobuf";
import { durationMs, timestampFromMs, timestampMs } from "@bufbuild/protobuf/wkt";
import { EtcdLockFailedError, type Etcd3, type Lease, type Lock } from "etcd3";
import {
  BackendHealth_Role,
  BackendHealth_State,
  etcdKeys,
  BackendHealthSchema,
  ClusterEpochSchema,
  FailoverRecord_Kind,
  FailoverRecord_Outcome,
  FailoverRecordSchema,
  OperationRecordSchema,
  SwitchoverAckSchema,
  SwitchoverHold_Phase,
  SwitchoverHoldSchema,
  SwitchoverResponseSchema,
  type BackendHealth,
  type Cluster,
  type ClusterEpoch,
  type ConfigVersion,
  type EtcdKeys,
  type FailoverRecord,
  type OperationRecord,
  type SwitchoverAck,
  type SwitchoverHold,
  type SwitchoverRequest,
  type SwitchoverResponse,
} from "@mysqlgw/proto";
import { MgwError } from "../errors";
import { runSql, type SqlRunner } from "../monitor/failover";
import { resolveMonitorSecret } from "../monitor/secret";
import { planSwitchover, splitAddress, switchoverWindows, type BackendState, type SwitchoverPlan } from "./plan";

/**
 * Planned switchover of a cluster's primary (docs/monitor.md, "Planned
 * switchover"). Run by whichever control plane the API call reaches; the
 * cluster's etcd lock (keys.clusterLock) keeps two from running at once, and
 * the automatic failover of the monitor leader does not act while the
 * cluster's SwitchoverHold exists.
 *
 *  1. every backend is read (read_only, GTID positions, replica threads, lag)
 *     and the switchover planned (plan.ts) — or refused, saying why;
 *  2. the SwitchoverHold (PHASE_HOLD) is written under a lease: data planes
 *     hold new writes and transactions of the cluster and let open ones finish
 *     until drain_until (then end them with an error); each acks (SwitchoverAck);
 *  3. every live data plane acked `drained` (bounded by the drain window + slack);
 *  4. the old primary is set read_only; its @@gtid_binlog_pos read;
 *  5. the target waits until it applied that (MASTER_GTID_WAIT, bounded by the hold);
 *  6. the target is promoted (STOP SLAVE; RESET SLAVE ALL; semi-sync master
 *     side on when it was a semi-sync replica; read_only=0);
 *  7. the cluster's epoch names it as primary; the other replicas and the old
 *     primary are re-pointed to it (CHANGE MASTER TO … MASTER_USE_GTID=slave_pos);
 *  8. the monitor's health shows the new roles (bounded), PHASE_RELEASE: data
 *     planes send held statements to the new primary; the hold is deleted;
 *  9. a FailoverRecord (KIND_SWITCHOVER) with the timeline is written to the
 *     failover history (`mysqlgw failovers`).
 * A failure before the promotion undoes what was done (old primary writable
 * again), writes PHASE_ABORT (held statements go back to the old primary) and
 * records OUTCOME_ABORTED with the error.
 */
export interface SwitchoverDeps {
  client: Etcd3;
  keys: EtcdKeys;
  /** The current config version (the cluster, its backends and health.credentials). */
  currentConfig(): Promise<ConfigVersion | undefined>;
  /** This control plane's id (in the hold and the record). */
  controlPlaneId: string;
  log: SwitchoverLogger;
  /** Where secret refs are resolved. Default process.env. */
  env?: NodeJS.ProcessEnv;
  /**
   * The account the old primary replicates from the new one with (MASTER_USER /
   * MASTER_PASSWORD; needs REPLICATION SLAVE), its secret ref resolved in `env`.
   * Absent: the cluster's health.credentials (then that account needs REPLICATION SLAVE too).
   */
  replication?: { user: string; secretRef: string } | null;
  /** Replaces the mysql2 runner (tests). */
  sql?: SqlRunner;
  /** Bound on each etcd call. Default 3000 ms. */
  callTimeoutMs?: number;
  /** Bound on each SQL step (connect, one statement). Default 2000 ms. */
  statementTimeoutMs?: number;
  /** Stores the OperationRecord (the ReplicationService's ListOperations); absent: not stored. */
  recordOperation?(op: OperationRecord): Promise<OperationRecord | void>;
}

export interface SwitchoverLogger {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

/**
 * The ReplicationService's `switchover` option: runSwitchover over `client`
 * (its OperationRecord stored through `recordOperation`, e.g. the replication
 * operations' store, so that ListOperations lists it).
 */
export function createSwitchoverHandler(o: Omit<SwitchoverDeps, "keys"> & { prefix: string }): (req: SwitchoverRequest, requestedBy: string) => Promise<SwitchoverResponse> {
  const deps: SwitchoverDeps = { ...o, keys: etcdKeys(o.prefix) };
  return (req, requestedBy) => runSwitchover(deps, req, requestedBy);
}

const DEFAULT_CALL_TIMEOUT_MS = 3000;
const DEFAULT_STATEMENT_TIMEOUT_MS = 2000;
/** Waited for acks beyond the drain window (the data planes' own ending of transactions, the etcd round trips). */
const ACK_SLACK_MS = 1000;
/** Between two reads of the acks / the health. */
const POLL_MS = 20;
/** Longest the roles are waited for in the monitor's health before releasing anyway. */
const ROLES_WAIT_MS = 3000;
/** Longest the data planes are waited for to report their held statements released before the hold is deleted. */
const RELEASE_WAIT_MS = 2000;

/**
 * Runs (or with dry_run, plans) a switchover. Refusals throw MgwError
 * MGW_ERR_SWITCHOVER_REFUSED (FailedPrecondition) / MGW_ERR_SWITCHOVER_NOT_FOUND,
 * nothing changed; once the hold was written the answer carries the record,
 * OUTCOME_PROMOTED or OUTCOME_ABORTED (with `error`).
 */
export async function runSwitchover(deps: SwitchoverDeps, request: SwitchoverRequest, requestedBy: string): Promise<SwitchoverResponse> {
  const op = create(OperationRecordSchema, { operation: "SWITCHOVER", cluster: request.cluster, backend: request.to, requestedBy, startedAt: timestampFromMs(Date.now()) });
  const finishOp = async (ok: boolean, error: string): Promise<OperationRecord> => {
    op.ok = ok;
    op.error = error;
    op.finishedAt = timestampFromMs(Date.now());
    if (request.dryRun || deps.recordOperation === undefined) return op;
    try {
      return (await deps.recordOperation(op)) ?? op;
    } catch (err) {
      deps.log.error({ cluster: request.cluster, err: (err as Error).message }, "switchover: cannot record the operation");
      return op;
    }
  };
  let run: Run;
  try {
    run = await prepare(deps, request, requestedBy, op);
  } catch (err) {
    await finishOp(false, (err as Error).message);
    throw err;
  }
  if (request.dryRun) {
    op.steps.push(...planSteps(run.plan, run.cluster));
    return create(SwitchoverResponseSchema, { record: run.rec, operation: await finishOp(true, "") });
  }
  try {
    await execute(deps, run, op);
  } finally {
    await run.lock?.release().catch((err: unknown) => deps.log.warn({ cluster: run.cluster.name, err: (err as Error).message }, "switchover: cannot release the cluster lock (it expires with its lease)"));
  }
  const ok = run.rec.outcome === FailoverRecord_Outcome.PROMOTED;
  return create(SwitchoverResponseSchema, { record: run.rec, operation: await finishOp(ok, run.rec.error) });
}

interface Run {
  cluster: Cluster;
  plan: SwitchoverPlan;
  rec: FailoverRecord;
  epoch: ClusterEpoch | null;
  /** The epoch key's mod revision when read ("0": absent), for the conditional write. */
  epochRevision: string;
  holdMs: number;
  drainMs: number;
  creds: { user: string; secretRef: string };
  replication: { user: string; secretRef: string };
  /** Null for a dry run. */
  lock: Lock | null;
  statementMs: number;
  callMs: number;
}

function refused(reason: string): MgwError {
  return new MgwError("MGW_ERR_SWITCHOVER_REFUSED", `switchover refused: ${reason}`);
}

/** Reads, plans and (unless dry_run) takes the cluster lock. Throws a refusal. */
async function prepare(deps: SwitchoverDeps, request: SwitchoverRequest, requestedBy: string, op: OperationRecord): Promise<Run> {
  const callMs = deps.callTimeoutMs ?? DEFAULT_CALL_TIMEOUT_MS;
  const statementMs = deps.statementTimeoutMs ?? DEFAULT_STATEMENT_TIMEOUT_MS;
  const { client, keys } = deps;
  if (request.cluster === "") throw new MgwError("MGW_ERR_API_BAD_REQUEST", "cluster is empty; name the cluster to switch over (mysqlgw switchover --cluster NAME)");
  const windows = switchoverWindows(request.holdTimeout === undefined ? null : durationMs(request.holdTimeout), request.drainTimeout === undefined ? null : durationMs(request.drainTimeout));
  if (!windows.ok) throw new MgwError("MGW_ERR_API_BAD_REQUEST", windows.reason);
  const cfg = await deps.currentConfig();
  const cluster = cfg?.policy?.clusters.find((c) => c.name === request.cluster);
  if (cluster === undefined) {
    throw new MgwError("MGW_ERR_SWITCHOVER_NOT_FOUND", `switchover refused: the current policy has no cluster '${request.cluster}' (clusters: ${cfg?.policy?.clusters.map((c) => c.name).join(", ") || "none"})`);
  }
  const creds = cluster.health?.credentials;
  if (creds === undefined || creds.user === "") {
    throw refused(`cluster ${cluster.name} has no health.credentials: the switchover runs its SQL (read_only, STOP SLAVE, CHANGE MASTER …) with the monitor's account; add one (docs/monitor.md)`);
  }
  const replication = deps.replication ?? { user: creds.user, secretRef: creds.secretRef };
  const [holdValue, healthKvs, epochRes] = await Promise.all([
    withTimeout(client.get(keys.switchoverHold(cluster.name)).string(), callMs, "read the switchover hold"),
    withTimeout(client.getAll().prefix(`${keys.healthPrefix}${cluster.name}/`).strings(), callMs, "read the backends' health"),
    withTimeout(client.get(keys.clusterEpoch(cluster.name)).exec(), callMs, "read the cluster epoch"),
  ]);
  if (holdValue !== null) throw refused(`a switchover of ${cluster.name} is already running (${keys.switchoverHold(cluster.name)} exists); wait for it to finish`);
  const health = new Map<string, BackendHealth>();
  for (const value of Object.values(healthKvs)) {
    try {
      const h = fromJsonString(BackendHealthSchema, value, { ignoreUnknownFields: true });
      health.set(h.backend, h);
    } catch {
      // undecodable: as if not reported
    }
  }
  const epochKv = epochRes.kvs[0];
  let epoch: ClusterEpoch | null = null;
  if (epochKv !== undefined) {
    try {
      epoch = fromJsonString(ClusterEpochSchema, epochKv.value.toString(), { ignoreUnknownFields: true });
    } catch {
      throw refused(`the epoch of ${cluster.name} (${keys.clusterEpoch(cluster.name)}) does not decode; fix or delete it`);
    }
  }
  const password = await resolveMonitorSecret(creds.secretRef, deps.env ?? process.env);
  await resolveMonitorSecret(replication.secretRef, deps.env ?? process.env);
  const sql = deps.sql ?? runSql;
  const states = await Promise.all(cluster.backends.map((b) => readBackend(sql, b.name, b.address, creds.user, password, statementMs)));
  const planned = planSwitchover(cluster, states, health, epoch, request.to, Math.floor(windows.holdMs / 1000));
  if (!planned.ok) throw refused(planned.reason);
  const plan = planned.plan;
  const now = Date.now();
  const rec = create(FailoverRecordSchema, {
    kind: FailoverRecord_Kind.SWITCHOVER,
    cluster: cluster.name,
    epoch: (epoch?.epoch ?? 0n) + 1n,
    oldPrimary: plan.oldPrimary.name,
    newPrimary: plan.target.name,
    monitorId: deps.controlPlaneId,
    requestedBy,
    candidates: plan.candidates,
    detectedAt: op.startedAt ?? timestampFromMs(now),
    chosenAt: timestampFromMs(now),
  });
  op.backend = plan.target.name;
  let lock: Lock | null = null;
  if (!request.dryRun) {
    lock = client.lock(keys.clusterLock(cluster.name)).ttl(Math.ceil(windows.holdMs / 1000) + 30);
    try {
      await withTimeout(lock.acquire(), callMs, "take the cluster lock");
    } catch (err) {
      if (err instanceof EtcdLockFailedError) throw refused(`another switchover or replication operation of ${cluster.name} holds its lock (${keys.clusterLock(cluster.name)}); wait for it to finish`);
      throw err;
    }
  }
  return { cluster, plan, rec, epoch, epochRevision: epochKv?.mod_revision ?? "0", holdMs: windows.holdMs, drainMs: windows.drainMs, creds: { user: creds.user, secretRef: creds.secretRef }, replication, lock, statementMs, callMs };
}

/** What the switchover would run, for dry_run ("db1: SET GLOBAL read_only=1", …). */
function planSteps(plan: SwitchoverPlan, cluster: Cluster): string[] {
  const t = plan.target.name;
  const o = plan.oldPrimary.name;
  const [host, port] = splitAddress(plan.target.address);
  return [
    `hold new writes and transactions of ${cluster.name} on every data plane; let open transactions finish`,
    `${o}: SET GLOBAL read_only=1`,
    `${o}: SELECT @@GLOBAL.gtid_binlog_pos`,
    `${t}: SELECT MASTER_GTID_WAIT(<that position>, …)`,
    `${t}: STOP SLAVE`,
    `${t}: RESET SLAVE ALL`,
    ...(plan.target.semiSyncSlave ? [`${t}: SET GLOBAL rpl_semi_sync_master_enabled=ON`] : []),
    `${t}: SET GLOBAL read_only=0`,
    ...plan.others.map((s) => `${s.name}: STOP SLAVE; CHANGE MASTER TO MASTER_HOST='${host}', MASTER_PORT=${port}, MASTER_USE_GTID=slave_pos; START SLAVE`),
    `${o}: SET GLOBAL gtid_slave_pos=@@gtid_binlog_pos; CHANGE MASTER TO MASTER_HOST='${host}', MASTER_PORT=${port}, MASTER_USER=…, MASTER_PASSWORD=…, MASTER_USE_GTID=slave_pos; START SLAVE`,
    `release held statements to ${t}`,
    ...plan.skipped.map((s) => `skipped: ${s}`),
  ];
}

/** One backend's state, or its error. */
async function readBackend(sql: SqlRunner, name: string, address: string, user: string, password: string, timeoutMs: number): Promise<BackendState> {
  const [host, port] = splitAddress(address);
  const base: BackendState = { name, address, error: null, readOnly: false, replicating: false, sourceAddress: "", ioRunning: false, sqlRunning: false, lagSeconds: null, gtidBinlogPos: "", gtidSlavePos: "", gtidIoPos: "", semiSyncSlave: false };
  try {
    const [vars, status] = await sql({ host, port, user, password, timeoutMs }, [
      "SELECT @@GLOBAL.read_only AS ro, @@GLOBAL.gtid_binlog_pos AS binlog, @@GLOBAL.gtid_slave_pos AS slave, @@GLOBAL.rpl_semi_sync_slave_enabled AS sss",
      "SHOW SLAVE STATUS",
    ]);
    const v = vars?.[0] ?? {};
    const s = status?.[0];
    const masterHost = String(s?.Master_Host ?? "");
    const lag = s?.Seconds_Behind_Master;
    return {
      ...base,
      readOnly: Number(v.ro) === 1,
      gtidBinlogPos: String(v.binlog ?? ""),
      gtidSlavePos: String(v.slave ?? ""),
      semiSyncSlave: Number(v.sss) === 1,
      replicating: masterHost !== "",
      sourceAddress: masterHost === "" ? "" : `${masterHost}:${String(s?.Master_Port ?? "")}`,
      ioRunning: s?.Slave_IO_Running === "Yes",
      sqlRunning: s?.Slave_SQL_Running === "Yes",
      lagSeconds: lag === null || lag === undefined || lag === "" ? null : Number(lag),
      gtidIoPos: String(s?.Gtid_IO_Pos ?? ""),
    };
  } catch (err) {
    return { ...base, error: (err as Error).message };
  }
}

/** Steps 2–9. Never throws: the outcome and error are in run.rec. */
async function execute(deps: SwitchoverDeps, run: Run, op: OperationRecord): Promise<void> {
  const { client, log } = deps;
  const { cluster, plan, rec } = run;
  const env = deps.env ?? process.env;
  const sql = deps.sql ?? runSql;
  const ms = (t: typeof rec.detectedAt): number => (t === undefined ? NaN : timestampMs(t));
  const exec = async (b: BackendState, statements: string[], params?: unknown[][], timeoutMs = run.statementMs, creds = run.creds): Promise<Record<string, unknown>[][]> => {
    const [host, port] = splitAddress(b.address);
    const password = await resolveMonitorSecret(creds.secretRef, env);
    statements.forEach((s) => op.steps.push(`${b.name}: ${s}`));
    return sql({ host, port, user: creds.user, password, timeoutMs }, statements, params);
  };
  const start = Date.now();
  const hold = create(SwitchoverHoldSchema, {
    cluster: cluster.name,
    epoch: rec.epoch,
    oldPrimary: plan.oldPrimary.name,
    newPrimary: plan.target.name,
    phase: SwitchoverHold_Phase.HOLD,
    holdUntil: timestampFromMs(start + run.holdMs),
    drainUntil: timestampFromMs(start + run.drainMs),
    controlPlaneId: deps.controlPlaneId,
  });
  log.info({ cluster: cluster.name, oldPrimary: rec.oldPrimary, newPrimary: rec.newPrimary, epoch: rec.epoch.toString(), holdMs: run.holdMs, drainMs: run.drainMs }, `switchover of ${cluster.name}: ${rec.oldPrimary} → ${rec.newPrimary}; holding writes`);
  // The hold lives under a lease: if this control plane dies, it vanishes and data planes stop holding.
  const lease: Lease = client.lease(Math.ceil(run.holdMs / 1000) + 5, { autoKeepAlive: true });
  lease.on("lost", () => undefined);
  let readOnlySet = false;
  let promoted = false;
  try {
    await withTimeout(lease.grant(), run.callMs, "grant the hold lease");
    await putHold(deps, run, lease, hold);
    rec.holdStartedAt = timestampFromMs(Date.now());
    // 3. every live data plane drained (or ended what outlasted the window)
    const acks = await waitForAcks(deps, run, start + run.drainMs + ACK_SLACK_MS, (a) => a.drained);
    rec.transactionsEnded = acks.reduce((n, a) => n + a.transactionsEnded, 0);
    rec.drainedAt = timestampFromMs(Date.now());
    // 4. old primary read_only; what it wrote last
    await exec(plan.oldPrimary, ["SET GLOBAL read_only=1"]);
    readOnlySet = true;
    rec.oldPrimaryReadOnly = true;
    const [pos] = await exec(plan.oldPrimary, ["SELECT @@GLOBAL.gtid_binlog_pos AS pos"]);
    const lastGtid = String(pos?.[0]?.pos ?? "");
    // 5. the target applied it
    const left = Math.max(100, start + run.holdMs - Date.now() - 500);
    if (lastGtid !== "") {
      const [r] = await exec(plan.target, ["SELECT MASTER_GTID_WAIT(?, ?) AS r"], [[lastGtid, left / 1000]], left + run.statementMs);
      if (Number(r?.[0]?.r) !== 0) throw new Error(`${plan.target.name} did not apply ${plan.oldPrimary.name}'s last transactions (${lastGtid}) within ${left} ms (the hold window); not promoted`);
    }
    rec.caughtUpAt = timestampFromMs(Date.now());
    rec.candidates.push(`${plan.oldPrimary.name} gtid_binlog_pos=${lastGtid} (read_only)`);
    // 6. promote
    try {
      await exec(plan.target, ["STOP SLAVE", "RESET SLAVE ALL", ...(plan.target.semiSyncSlave ? ["SET GLOBAL rpl_semi_sync_master_enabled=ON"] : []), "SET GLOBAL read_only=0"]);
    } catch (err) {
      // half done: the target replicates again, as before
      await exec(plan.target, ["SET GLOBAL read_only=1", "START SLAVE"]).catch(() => undefined);
      throw err;
    }
    promoted = true;
    rec.promotedAt = timestampFromMs(Date.now());
    log.warn({ cluster: cluster.name, backend: plan.target.name, epoch: rec.epoch.toString() }, `switchover: promoted ${cluster.name}/${plan.target.name}`);
  } catch (err) {
    rec.outcome = FailoverRecord_Outcome.ABORTED;
    rec.error = (err as Error).message;
    log.error({ cluster: cluster.name, err: rec.error }, `switchover of ${cluster.name} aborted: ${rec.error}`);
    if (readOnlySet) {
      await exec(plan.oldPrimary, ["SET GLOBAL read_only=0"]).catch((e: unknown) => {
        rec.error += `; and ${plan.oldPrimary.name} could not be made writable again (${(e as Error).message}): SET GLOBAL read_only=0 on it by hand`;
      });
    }
    if (!promoted) {
      hold.phase = SwitchoverHold_Phase.ABORT;
      await putHold(deps, run, lease, hold).catch(() => undefined);
      await sleep(200);
    }
    lease.revoke().catch(() => undefined);
    rec.releasedAt = timestampFromMs(Date.now());
    await writeRecord(deps, run);
    return;
  }
  const problems: string[] = [];
  // 7. the epoch (the monitor then probes the cluster at once) while the others and the old primary are re-pointed
  const next = create(ClusterEpochSchema, {
    cluster: cluster.name,
    epoch: rec.epoch,
    primary: plan.target.name,
    fenced: (run.epoch?.fenced ?? []).filter((f) => f !== plan.target.name),
    at: timestampFromMs(Date.now()),
  });
  const [host, port] = splitAddress(plan.target.address);
  const epochWritten = writeEpoch(deps, run, next).then(
    (revision) => revision,
    (err: unknown) => {
      problems.push(`the epoch was not written (${(err as Error).message})`);
      return null;
    },
  );
  const repointOthers = plan.others.map(async (s) => {
    try {
      await exec(s, ["STOP SLAVE", "CHANGE MASTER TO MASTER_HOST=?, MASTER_PORT=?, MASTER_USE_GTID=slave_pos", "START SLAVE"], [[], [host, port], []]);
      rec.repointed.push(s.name);
    } catch (err) {
      problems.push(`${s.name} not re-pointed (${(err as Error).message}); do it by hand`);
    }
  });
  const repointOld = (async (): Promise<boolean> => {
    try {
      const replPassword = await resolveMonitorSecret(run.replication.secretRef, env);
      const semi = plan.target.semiSyncSlave ? ["SET GLOBAL rpl_semi_sync_master_enabled=OFF", "SET GLOBAL rpl_semi_sync_slave_enabled=ON"] : [];
      const statements = [...semi, "SET GLOBAL gtid_slave_pos=@@GLOBAL.gtid_binlog_pos", "CHANGE MASTER TO MASTER_HOST=?, MASTER_PORT=?, MASTER_USER=?, MASTER_PASSWORD=?, MASTER_USE_GTID=slave_pos", "START SLAVE"];
      const params = statements.map((t) => (t.startsWith("CHANGE MASTER") ? [host, port, run.replication.user, replPassword] : []));
      await exec(plan.oldPrimary, statements, params);
      rec.repointed.push(plan.oldPrimary.name);
      return true;
    } catch (err) {
      problems.push(`${plan.oldPrimary.name} (the old primary, read_only) could not replicate from ${plan.target.name} (${(err as Error).message}); it is fenced until it does (rejoin it)`);
      return false;
    }
  })();
  const [revision, , oldRepointed] = await Promise.all([epochWritten, Promise.all(repointOthers), repointOld]);
  rec.repointedAt = timestampFromMs(Date.now());
  if (!oldRepointed && revision !== null) {
    // read_only but replicating from nobody, its reads would go stale: fenced until rejoined
    next.fenced.push(plan.oldPrimary.name);
    await writeEpoch(deps, { ...run, epochRevision: revision }, next).catch((err: unknown) => problems.push(`${plan.oldPrimary.name} could not be fenced in the epoch (${(err as Error).message})`));
  }
  // 8. roles as data planes will route by them, then release
  if (!(await waitForRoles(deps, run))) problems.push(`the monitor did not report ${plan.target.name} as PRIMARY within ${ROLES_WAIT_MS} ms; released anyway (data planes hold statements until they see it, at most until hold_until)`);
  rec.rolesPublishedAt = timestampFromMs(Date.now());
  hold.phase = SwitchoverHold_Phase.RELEASE;
  try {
    await putHold(deps, run, lease, hold);
  } catch (err) {
    problems.push(`the release was not written (${(err as Error).message}); data planes release when the hold's lease expires`);
  }
  rec.releasedAt = timestampFromMs(Date.now());
  await waitForAcks(deps, run, Date.now() + RELEASE_WAIT_MS, (a) => a.heldStatements === 0 && a.at !== undefined && timestampMs(a.at) >= ms(rec.releasedAt) - 50).catch(() => undefined);
  await withTimeout(lease.revoke(), run.callMs, "revoke the hold lease").catch(() => undefined);
  rec.outcome = FailoverRecord_Outcome.PROMOTED;
  rec.error = problems.join("; ");
  log.warn(
    { cluster: cluster.name, oldPrimary: rec.oldPrimary, newPrimary: rec.newPrimary, epoch: rec.epoch.toString(), repointed: rec.repointed, transactionsEnded: rec.transactionsEnded, holdToReleaseMs: ms(rec.releasedAt) - ms(rec.holdStartedAt), problems },
    `switchover of ${cluster.name} done: ${rec.oldPrimary} → ${rec.newPrimary}`,
  );
  await writeRecord(deps, run);
}

async function putHold(deps: SwitchoverDeps, run: Run, lease: Lease, hold: SwitchoverHold): Promise<void> {
  await withTimeout(lease.put(deps.keys.switchoverHold(run.cluster.name)).value(toJsonString(SwitchoverHoldSchema, hold)).exec(), run.callMs, "write the switchover hold");
}

/**
 * Waits until every live data plane (registry) has an ack of this epoch
 * satisfying `done`; resolves with them. Throws at `deadline` naming the
 * data planes that did not.
 */
async function waitForAcks(deps: SwitchoverDeps, run: Run, deadline: number, done: (a: SwitchoverAck) => boolean): Promise<SwitchoverAck[]> {
  const { client, keys } = deps;
  const ackPrefix = `${keys.switchoverAckPrefix}${run.cluster.name}/`;
  let missing: string[] = [];
  for (let i = 0; i < 100_000; i++) {
    const [dps, acks] = await Promise.all([
      withTimeout(client.getAll().prefix(keys.dataPlanesPrefix).keys(), run.callMs, "list data planes"),
      withTimeout(client.getAll().prefix(ackPrefix).strings(), run.callMs, "read the switchover acks"),
    ]);
    const byDp = new Map<string, SwitchoverAck>();
    for (const value of Object.values(acks)) {
      try {
        const a = fromJsonString(SwitchoverAckSchema, value, { ignoreUnknownFields: true });
        if (a.epoch === run.rec.epoch) byDp.set(a.dataPlaneId, a);
      } catch {
        // not an ack
      }
    }
    const live = dps.map((k) => k.slice(keys.dataPlanesPrefix.length));
    missing = live.filter((id) => {
      const a = byDp.get(id);
      return a === undefined || !done(a);
    });
    if (missing.length === 0) return live.map((id) => byDp.get(id)!);
    if (Date.now() >= deadline) break;
    await sleep(POLL_MS);
  }
  throw new Error(`data plane(s) ${missing.join(", ")} did not report their open transactions finished in time (did they see the hold? a data plane older than this control plane does not answer it)`);
}

/** The monitor's health of the target says PRIMARY and the old primary's not (or they are not reported). Bounded. */
async function waitForRoles(deps: SwitchoverDeps, run: Run): Promise<boolean> {
  const { client, keys } = deps;
  const deadline = Date.now() + ROLES_WAIT_MS;
  const role = (value: string | null): BackendHealth_Role | null => {
    if (value === null) return null;
    try {
      const h = fromJsonString(BackendHealthSchema, value, { ignoreUnknownFields: true });
      return h.state === BackendHealth_State.UP ? h.role : BackendHealth_Role.UNSPECIFIED;
    } catch {
      return null;
    }
  };
  for (let i = 0; i < 10_000; i++) {
    const [t, o] = await Promise.all([
      withTimeout(client.get(keys.backendHealth(run.cluster.name, run.plan.target.name)).string(), run.callMs, "read the health"),
      withTimeout(client.get(keys.backendHealth(run.cluster.name, run.plan.oldPrimary.name)).string(), run.callMs, "read the health"),
    ]).catch(() => [null, null] as const);
    const tr = role(t);
    const or = role(o);
    if ((tr === null || tr === BackendHealth_Role.PRIMARY) && or !== BackendHealth_Role.PRIMARY) return true;
    if (Date.now() >= deadline) return false;
    await sleep(POLL_MS);
  }
  return false;
}

/** The new epoch, only if the epoch key did not change since it was read (a failover in between wins); its new mod revision. */
async function writeEpoch(deps: SwitchoverDeps, run: Pick<Run, "epochRevision" | "callMs">, e: ClusterEpoch): Promise<string> {
  const { client, keys } = deps;
  const key = keys.clusterEpoch(e.cluster);
  const res = await withTimeout(
    client.if(key, "Mod", "==", run.epochRevision).then(client.put(key).value(toJsonString(ClusterEpochSchema, e))).commit(),
    run.callMs,
    "write the cluster epoch",
  );
  if (!res.succeeded) throw new Error(`${key} changed during the switchover (a failover?)`);
  return res.header.revision;
}

async function writeRecord(deps: SwitchoverDeps, run: Run): Promise<void> {
  const rec = run.rec;
  try {
    await withTimeout(
      deps.client.put(deps.keys.failoverRecord(rec.cluster, rec.detectedAt === undefined ? Date.now() : timestampMs(rec.detectedAt))).value(toJsonString(FailoverRecordSchema, rec)).exec(),
      run.callMs,
      "write the failover record",
    );
  } catch (err) {
    deps.log.error({ cluster: rec.cluster, err: (err as Error).message }, "switchover: cannot record it in the failover history");
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

async function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new MgwError("MGW_ERR_STORE_UNAVAILABLE", `${what}: no answer from etcd within ${ms} ms`)), ms + 250);
  });
  try {
    return await Promise.race([p, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

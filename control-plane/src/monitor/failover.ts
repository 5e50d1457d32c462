import { create, fromJsonString, toJsonString } from "@bufbuild/protobuf";
import { timestampFromMs, timestampMs } from "@bufbuild/protobuf/wkt";
import type { Etcd3 } from "etcd3";
import * as mysql from "mysql2/promise";
import {
  BackendHealth_Role,
  BackendHealth_State,
  BackendViewSchema,
  ClusterEpochSchema,
  FailoverRecord_Outcome,
  FailoverRecordSchema,
  type BackendHealth,
  type BackendView,
  type ClusterEpoch,
  type EtcdKeys,
  type FailoverRecord,
} from "@mysqlgw/proto";
import type { BackendTracker, ProbeSettings } from "./health";
import { discoverRole } from "./health";
import { resolveMonitorSecret } from "./secret";
import type { MonitorMetrics } from "../metrics";

/**
 * Automatic failover, run by the monitor leader (docs/monitor.md).
 *
 * The primary is down when the monitor's own probes failed
 * failure_threshold times in a row AND the data planes that report on it
 * (BackendView, under their leases) cannot reach it either: all of them when
 * one or two report, a majority of them when more do. With no data plane
 * reporting, the monitor acts alone only with `withoutDataPlanes`.
 *
 * Then: the old primary is set read_only if it still answers; on the replicas
 * that answer the SQL thread is started and the IO thread stopped (what each
 * has received is frozen), the one that RECEIVED the most (Gtid_IO_Pos) is
 * chosen — semi-sync acknowledges a write once it is in a replica's relay log,
 * so the acknowledged writes are in what was received, not necessarily in what
 * was applied — it is waited for until it has APPLIED all it received
 * (MASTER_GTID_WAIT on its own Gtid_IO_Pos, bounded), the cluster's epoch and
 * new primary are written to etcd, it is promoted (STOP SLAVE; RESET SLAVE
 * ALL; semi-sync master side on if it was a semi-sync replica; read_only=0),
 * the other replicas are re-pointed once they too applied what they received,
 * and every backend is probed at once so that the new roles reach the data
 * planes. A fenced old primary is reported DOWN (whatever it answers) until it
 * replicates, read_only, from the current primary.
 */
export interface FailoverSettings {
  /** No second automatic failover of a cluster within this. Default 60 000 ms. */
  cooldownMs?: number;
  /** With no data plane reporting on the primary, fail over on the monitor's probes alone. Default false. */
  withoutDataPlanes?: boolean;
  /** Bound on a replica applying what it received. Default 10 000 ms. */
  catchUpTimeoutMs?: number;
  /** Bound on each SQL step on a backend (connect, one statement). Default 2000 ms. */
  statementTimeoutMs?: number;
}

export const DEFAULT_FAILOVER_COOLDOWN_MS = 60_000;
export const DEFAULT_CATCH_UP_TIMEOUT_MS = 10_000;
const DEFAULT_STATEMENT_TIMEOUT_MS = 2000;

/** What the controller needs of one prober. */
export interface BackendHandle {
  readonly spec: { cluster: string; backend: string; address: string; user: string; secretRef: string; settings: ProbeSettings };
  readonly tracker: BackendTracker;
  /** Probes now and publishes the health (waits for a probe under way first). */
  probeNow(): Promise<void>;
}

export interface FailoverLogger {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

/** Runs SQL on a backend (replaceable in tests). */
export type SqlRunner = (target: { host: string; port: number; user: string; password: string; timeoutMs: number }, statements: string[], params?: unknown[][]) => Promise<Record<string, unknown>[][]>;

export interface FailoverControllerOptions {
  client: Etcd3;
  keys: EtcdKeys;
  /** Writes are conditional on it: a deposed leader writes nothing. */
  campaignKey: string;
  callTimeoutMs: number;
  env: NodeJS.ProcessEnv;
  log: FailoverLogger;
  monitorId: string;
  settings: FailoverSettings;
  /** The probers of a cluster, in policy order. */
  backends(cluster: string): BackendHandle[];
  /** The term ended: stop at the next step. */
  stopped(): boolean;
  sql?: SqlRunner;
  metrics?: Pick<MonitorMetrics, "failover"> | null;
}

// ---------------------------------------------------------------- pure parts

/** "0-1-5,1-2-9" → domain → seq; null for junk. "" → empty. */
export function parseGtidPos(text: string): Map<number, bigint> | null {
  const out = new Map<number, bigint>();
  const t = text.trim();
  if (t === "") return out;
  for (const part of t.split(",")) {
    const m = /^\s*(\d+)-(\d+)-(\d+)\s*$/.exec(part);
    if (m === null) return null;
    const d = Number(m[1]);
    const s = BigInt(m[3]!);
    if ((out.get(d) ?? -1n) < s) out.set(d, s);
  }
  return out;
}

/** a ≥ b in every domain of b. */
export function gtidCovers(a: Map<number, bigint>, b: Map<number, bigint>): boolean {
  for (const [d, s] of b) if ((a.get(d) ?? -1n) < s) return false;
  return true;
}

export interface Candidate {
  backend: string;
  /** rpl_semi_sync_slave_enabled: semi-sync is in use; the promoted one gets the master side. */
  semiSync?: boolean;
  /** Gtid_IO_Pos: what it received. */
  received: string;
  /** @@gtid_slave_pos: what it applied. */
  applied: string;
}

/**
 * The candidate that received the most: one whose received position covers
 * every other's; if none covers all (divergent domains), the largest sum of
 * sequence numbers. Ties: the first in policy order. Null when there are none
 * or a position does not parse.
 */
export function chooseCandidate(cands: readonly Candidate[]): Candidate | null {
  const parsed = cands.map((c) => ({ c, pos: parseGtidPos(c.received) }));
  if (parsed.length === 0 || parsed.some((p) => p.pos === null)) return null;
  const ok = parsed as { c: Candidate; pos: Map<number, bigint> }[];
  const dominant = ok.find((p) => ok.every((q) => gtidCovers(p.pos, q.pos)));
  if (dominant !== undefined) return dominant.c;
  const sum = (m: Map<number, bigint>): bigint => [...m.values()].reduce((a, b) => a + b, 0n);
  let best = ok[0]!;
  for (const p of ok) if (sum(p.pos) > sum(best.pos)) best = p;
  return best.c;
}

export interface Confirmation {
  confirmed: boolean;
  /** Data planes (live, reporting on the backend) that cannot reach it. */
  unreachableFrom: string[];
  reporting: number;
  reason: string;
}

/**
 * Do the data planes confirm that `backend` is unreachable? Only views of live
 * data planes (registered) count. 1–2 reporting: all must say unreachable;
 * more: a strict majority. None: `withoutDataPlanes` decides.
 */
export function confirmDown(views: readonly BackendView[], live: ReadonlySet<string>, withoutDataPlanes: boolean): Confirmation {
  const reporting = views.filter((v) => live.has(v.dataPlaneId));
  const unreachableFrom = reporting.filter((v) => !v.reachable).map((v) => v.dataPlaneId).sort();
  const n = reporting.length;
  if (n === 0) {
    return withoutDataPlanes
      ? { confirmed: true, unreachableFrom, reporting: 0, reason: "no data plane reports on it; the monitor decides alone (withoutDataPlanes)" }
      : { confirmed: false, unreachableFrom, reporting: 0, reason: "no live data plane reports on it, and failing over on the monitor's probes alone is off (--failover-without-data-planes)" };
  }
  const need = n <= 2 ? n : Math.floor(n / 2) + 1;
  const confirmed = unreachableFrom.length >= need;
  return {
    confirmed,
    unreachableFrom,
    reporting: n,
    reason: confirmed
      ? `${unreachableFrom.length} of ${n} reporting data planes cannot reach it`
      : `only ${unreachableFrom.length} of ${n} reporting data planes cannot reach it (${need} needed): the monitor may be cut off from it, not the data planes`,
  };
}

// ---------------------------------------------------------------- controller

interface ClusterRun {
  running: boolean;
  /** When the last failover attempt began (ms), for the cooldown. */
  lastAttemptMs: number;
  epoch: ClusterEpoch | null;
  /** Last "not confirmed"/"cooldown" reason logged, so it is said once per episode. */
  lastNote: string;
  detectedMs: number;
  /** Fenced backends being set read_only right now. */
  fencing: Set<string>;
}

export class FailoverController {
  private readonly clusters = new Map<string, ClusterRun>();
  private readonly cooldownMs: number;
  private readonly catchUpMs: number;
  private readonly stmtMs: number;
  private readonly sql: SqlRunner;

  constructor(private readonly o: FailoverControllerOptions) {
    this.cooldownMs = o.settings.cooldownMs ?? DEFAULT_FAILOVER_COOLDOWN_MS;
    this.catchUpMs = o.settings.catchUpTimeoutMs ?? DEFAULT_CATCH_UP_TIMEOUT_MS;
    this.stmtMs = o.settings.statementTimeoutMs ?? DEFAULT_STATEMENT_TIMEOUT_MS;
    this.sql = o.sql ?? runSql;
  }

  /** Reads every cluster's epoch (fencing and cooldown carry over from the previous leader). Bounded. */
  async load(): Promise<void> {
    const all = await withTimeout(this.o.client.getAll().prefix(this.o.keys.epochPrefix).strings(), this.o.callTimeoutMs, "read the cluster epochs");
    for (const value of Object.values(all)) {
      try {
        const e = fromJsonString(ClusterEpochSchema, value, { ignoreUnknownFields: true });
        const run = this.run(e.cluster);
        run.epoch = e;
        run.lastAttemptMs = e.at === undefined ? 0 : timestampMs(e.at);
      } catch (err) {
        this.o.log.warn({ err: String(err) }, "monitor: a cluster epoch does not decode; ignored");
      }
    }
  }

  private run(cluster: string): ClusterRun {
    let r = this.clusters.get(cluster);
    if (r === undefined) {
      r = { running: false, lastAttemptMs: 0, epoch: null, lastNote: "", detectedMs: 0, fencing: new Set() };
      this.clusters.set(cluster, r);
    }
    return r;
  }

  /** The cluster's epoch changed in etcd (a planned switchover, see switchover/): its primary and fencing are followed. */
  epochChanged(e: ClusterEpoch): void {
    const run = this.run(e.cluster);
    if (run.epoch === null || e.epoch >= run.epoch.epoch) run.epoch = e;
  }

  /** A fenced former primary is published DOWN, as a replica, saying why. */
  adjustHealth(h: BackendHealth): BackendHealth {
    const e = this.clusters.get(h.cluster)?.epoch;
    if (e === undefined || e === null || !e.fenced.includes(h.backend)) return h;
    return {
      ...h,
      state: BackendHealth_State.DOWN,
      role: BackendHealth_Role.REPLICA,
      lastError: `fenced: former primary, replaced by ${e.primary} at failover epoch ${e.epoch}; it takes no statements until it replicates (read_only) from ${e.primary}${h.lastError !== "" ? `; last probe: ${h.lastError}` : ""}`,
    };
  }

  /** After each probe of a backend: fences a returning old primary, and starts a failover when the primary is down. */
  onProbed(h: BackendHandle): void {
    if (this.o.stopped()) return;
    const { cluster, backend } = h.spec;
    const run = this.run(cluster);
    const epoch = run.epoch;
    const obs = h.tracker.last;
    if (epoch !== null && epoch.fenced.includes(backend) && h.tracker.state === BackendHealth_State.UP && obs !== null) {
      void this.checkFenced(h, run, epoch);
      return;
    }
    if (run.running) return;
    const primaryName = epoch?.primary ?? (obs !== null && discoverRole(obs) === BackendHealth_Role.PRIMARY ? backend : null);
    if (primaryName !== backend) return;
    if (h.tracker.state !== BackendHealth_State.DOWN) {
      run.detectedMs = 0;
      run.lastNote = "";
      return;
    }
    if (run.detectedMs === 0) run.detectedMs = Date.now();
    const since = Date.now() - run.lastAttemptMs;
    if (run.lastAttemptMs > 0 && since < this.cooldownMs) {
      this.note(run, cluster, `monitor: primary ${cluster}/${backend} is down, but a failover of ${cluster} ran ${Math.round(since / 1000)} s ago (cooldown ${this.cooldownMs / 1000} s); not failing over again — check the cluster by hand`, "cooldown");
      return;
    }
    run.running = true;
    void this.attempt(h, run).finally(() => {
      run.running = false;
    });
  }

  private note(run: ClusterRun, cluster: string, msg: string, kind: string): void {
    if (run.lastNote === kind) return;
    run.lastNote = kind;
    this.o.log.warn({ cluster }, msg);
  }

  /** A fenced backend answers: set it read_only; unfence it once it replicates, read_only, from the current primary. */
  private async checkFenced(h: BackendHandle, run: ClusterRun, epoch: ClusterEpoch): Promise<void> {
    const obs = h.tracker.last!;
    const { cluster, backend } = h.spec;
    const primary = this.o.backends(cluster).find((b) => b.spec.backend === epoch.primary);
    if (obs.readOnly && obs.replicationConfigured && primary !== undefined && sameAddress(obs.sourceAddress, primary.spec.address)) {
      const next = create(ClusterEpochSchema, { ...epoch, fenced: epoch.fenced.filter((f) => f !== backend) });
      try {
        if (await this.writeEpoch(next)) {
          run.epoch = next;
          this.o.log.info({ cluster, backend }, `monitor: ${cluster}/${backend} replicates from ${epoch.primary} and is read_only: no longer fenced`);
        }
      } catch (err) {
        this.o.log.warn({ cluster, backend, err: (err as Error).message }, "monitor: cannot write the cluster epoch; unfencing retried at the next probe");
      }
      return;
    }
    if (obs.readOnly || run.fencing.has(backend)) return;
    run.fencing.add(backend);
    try {
      await this.exec(h, ["SET GLOBAL read_only=1"]);
      this.o.log.warn({ cluster, backend }, `monitor: former primary ${cluster}/${backend} is back with read_only OFF; set it read_only (fenced at epoch ${epoch.epoch}); rejoin it as a replica of ${epoch.primary}`);
    } catch (err) {
      this.o.log.error({ cluster, backend, err: (err as Error).message }, `monitor: cannot set the fenced former primary ${cluster}/${backend} read_only; data planes still send it nothing (it is published DOWN)`);
    } finally {
      run.fencing.delete(backend);
    }
  }

  private async attempt(old: BackendHandle, run: ClusterRun): Promise<void> {
    const { cluster, backend: oldName } = old.spec;
    const rec = create(FailoverRecordSchema, {
      cluster,
      oldPrimary: oldName,
      monitorId: this.o.monitorId,
      detectedAt: timestampFromMs(run.detectedMs || Date.now()),
    });
    // a planned switchover of the cluster is running (it set the primary read_only on purpose): not ours to act
    if (await this.switchoverRunning(cluster)) {
      this.note(run, cluster, `monitor: primary ${cluster}/${oldName} fails the monitor's probes, but a planned switchover of ${cluster} is running; not failing over`, "switchover");
      return;
    }
    // 1. the data planes' view
    let conf: Confirmation;
    try {
      conf = await this.confirm(cluster, oldName);
    } catch (err) {
      this.note(run, cluster, `monitor: cannot read the data planes' views of ${cluster}/${oldName} (${(err as Error).message}); not failing over yet`, "views");
      return;
    }
    if (!conf.confirmed) {
      this.note(run, cluster, `monitor: primary ${cluster}/${oldName} fails the monitor's probes; not failing over: ${conf.reason}`, `unconfirmed:${conf.reason}`);
      return;
    }
    if (this.o.stopped()) return;
    rec.confirmedAt = timestampFromMs(Date.now());
    rec.confirmedBy = conf.unreachableFrom;
    rec.reportingDataPlanes = conf.reporting;
    run.lastAttemptMs = Date.now();
    run.lastNote = "";
    const epochNo = (run.epoch?.epoch ?? 0n) + 1n;
    rec.epoch = epochNo;
    this.o.log.warn({ cluster, backend: oldName, confirmedBy: conf.unreachableFrom, reporting: conf.reporting }, `monitor: primary ${cluster}/${oldName} is down (${conf.reason}); failing over (epoch ${epochNo})`);
    try {
      await this.failover(old, run, rec);
    } catch (err) {
      rec.outcome = FailoverRecord_Outcome.ABORTED;
      rec.error = (err as Error).message;
      this.o.log.error({ cluster, err: rec.error }, `monitor: failover of ${cluster} aborted: ${rec.error}`);
    }
    const ms = (t: typeof rec.detectedAt): number => (t === undefined ? NaN : timestampMs(t));
    const promoted = rec.outcome === FailoverRecord_Outcome.PROMOTED;
    this.o.metrics?.failover?.(rec.cluster, promoted ? "promoted" : "aborted", promoted ? (ms(rec.rolesPublishedAt) - ms(rec.detectedAt)) / 1000 : null);
    // the next outage (of the new primary) is detected afresh
    run.detectedMs = 0;
    await this.writeRecord(rec);
  }

  /** A SwitchoverHold exists for the cluster (an unreadable key counts as one). */
  private async switchoverRunning(cluster: string): Promise<boolean> {
    const key = this.o.keys.switchoverHold(cluster);
    return (await withTimeout(this.o.client.get(key).string(), this.o.callTimeoutMs, "read the switchover hold").catch(() => "?")) !== null;
  }

  private async confirm(cluster: string, backend: string): Promise<Confirmation> {
    const { client, keys, callTimeoutMs } = this.o;
    const [dps, views] = await Promise.all([
      withTimeout(client.getAll().prefix(keys.dataPlanesPrefix).keys(), callTimeoutMs, "list data planes"),
      withTimeout(client.getAll().prefix(keys.viewsPrefix).strings(), callTimeoutMs, "list backend views"),
    ]);
    const live = new Set(dps.map((k) => k.slice(keys.dataPlanesPrefix.length)));
    const mine: BackendView[] = [];
    for (const [key, value] of Object.entries(views)) {
      if (!key.endsWith(`/${cluster}/${backend}`)) continue;
      try {
        const v = fromJsonString(BackendViewSchema, value, { ignoreUnknownFields: true });
        if (v.cluster === cluster && v.backend === backend) mine.push(v);
      } catch {
        // a view that does not decode counts as no report
      }
    }
    return confirmDown(mine, live, this.o.settings.withoutDataPlanes === true);
  }

  private async failover(old: BackendHandle, run: ClusterRun, rec: FailoverRecord): Promise<void> {
    const { cluster } = old.spec;
    const replicas = this.o.backends(cluster).filter(
      (b) => b !== old && b.tracker.state === BackendHealth_State.UP && b.tracker.last !== null && !(run.epoch?.fenced.includes(b.spec.backend) ?? false),
    );
    if (replicas.length === 0) throw new Error(`no replica of ${cluster} answers the monitor's probes; nothing to promote`);
    // 2. fence the old primary FIRST if it still answers (a slow, not dead,
    // primary): read_only, so that sessions still connected to it write nothing
    // more while its replicas stop receiving. Its commits waiting for a
    // semi-sync ack keep waiting (never acknowledged), so none is lost.
    try {
      await this.exec(old, ["SET GLOBAL read_only=1"], undefined, Math.min(this.stmtMs, 500));
      rec.oldPrimaryReadOnly = true;
    } catch {
      // down, as expected: it is fenced when it returns
    }
    // 3. freeze what each received, read it
    const cands: (Candidate & { h: BackendHandle })[] = [];
    await Promise.all(
      replicas.map(async (h) => {
        try {
          // The SQL thread is started FIRST (a no-op when it runs), then the IO
          // thread stopped: what it received is frozen and will be applied. Never
          // the other way round: in GTID mode, starting a slave thread while both
          // are stopped discards the relay log (MariaDB re-fetches from
          // gtid_slave_pos) — from a dead primary, the acknowledged writes in it
          // would be lost.
          const [vars, , , status] = await this.exec(h, ["SELECT @@GLOBAL.gtid_slave_pos AS applied, @@GLOBAL.rpl_semi_sync_slave_enabled AS semisync", "START SLAVE SQL_THREAD", "STOP SLAVE IO_THREAD", "SHOW SLAVE STATUS"]);
          const row = status?.[0];
          if (row === undefined) return;
          const v = vars?.[0];
          cands.push({ h, backend: h.spec.backend, received: String(row.Gtid_IO_Pos ?? ""), applied: String(v?.applied ?? ""), semiSync: Number(v?.semisync) === 1 });
        } catch (err) {
          this.o.log.warn({ cluster, backend: h.spec.backend, err: (err as Error).message }, "monitor: failover: a replica did not answer; it is not a candidate");
        }
      }),
    );
    const order = this.o.backends(cluster).map((b) => b.spec.backend);
    cands.sort((a, b) => order.indexOf(a.backend) - order.indexOf(b.backend));
    rec.candidates = cands.map((c) => `${c.backend} received=${c.received} applied=${c.applied}`);
    try {
      await this.promoteBest(old, run, rec, cands);
    } catch (err) {
      if (rec.promotedAt === undefined) await this.resumeReceiving(cands);
      throw err;
    }
  }

  private async promoteBest(old: BackendHandle, run: ClusterRun, rec: FailoverRecord, cands: (Candidate & { h: BackendHandle })[]): Promise<void> {
    const { cluster } = old.spec;
    const chosen = chooseCandidate(cands);
    if (chosen === null) throw new Error(`no replica of ${cluster} could be read (candidates: ${rec.candidates.join("; ") || "none"})`);
    const target = cands.find((c) => c.backend === chosen.backend)!;
    rec.newPrimary = target.backend;
    rec.chosenAt = timestampFromMs(Date.now());
    this.check();
    // 4. each applies what it received (the chosen one must)
    const caught = await Promise.all(cands.map(async (c) => ({ c, ok: await this.catchUp(c).catch(() => false) })));
    if (!caught.find((x) => x.c === target)!.ok) {
      throw new Error(`${target.backend} did not apply what it received (${target.received}) within ${this.catchUpMs} ms; not promoted (its SQL thread stopped or too far behind?)`);
    }
    rec.caughtUpAt = timestampFromMs(Date.now());
    this.check();
    // 5. epoch in etcd (fencing for data planes and the next leader), then promote
    const epoch = create(ClusterEpochSchema, {
      cluster,
      epoch: rec.epoch,
      primary: target.backend,
      fenced: [...new Set([...(run.epoch?.fenced ?? []).filter((f) => f !== target.backend), old.spec.backend])],
      at: timestampFromMs(Date.now()),
    });
    if (!(await this.writeEpoch(epoch))) throw new Error("no longer the monitor leader (the epoch was not written)");
    run.epoch = epoch;
    // A semi-sync replica becomes a semi-sync primary before it takes a write.
    await this.exec(target.h, ["STOP SLAVE", "RESET SLAVE ALL", ...(target.semiSync === true ? ["SET GLOBAL rpl_semi_sync_master_enabled=ON"] : []), "SET GLOBAL read_only=0"]);
    rec.promotedAt = timestampFromMs(Date.now());
    this.o.log.warn({ cluster, backend: target.backend, received: target.received }, `monitor: promoted ${cluster}/${target.backend} (epoch ${epoch.epoch})`);
    // 6. re-point the others
    const [host, port] = splitAddress(target.h.spec.address);
    await Promise.all(
      caught
        .filter((x) => x.c !== target)
        .map(async ({ c, ok }) => {
          if (!ok) {
            this.o.log.warn({ cluster, backend: c.backend }, `monitor: ${c.backend} did not apply what it received in time; left with its IO thread stopped, re-point it by hand`);
            return;
          }
          try {
            await this.exec(c.h, ["STOP SLAVE", "CHANGE MASTER TO MASTER_HOST=?, MASTER_PORT=?, MASTER_USE_GTID=slave_pos", "START SLAVE"], [[], [host, port], []]);
            rec.repointed.push(c.backend);
          } catch (err) {
            this.o.log.error({ cluster, backend: c.backend, err: (err as Error).message }, `monitor: cannot re-point ${c.backend} to ${target.backend}; do it by hand`);
          }
        }),
    );
    rec.repointedAt = timestampFromMs(Date.now());
    // 7. publish: every backend probed now, health written; the new primary's
    // is what data planes wait for (a probe of an unreachable old primary may
    // take its whole timeout)
    const others = this.o.backends(cluster).filter((b) => b !== target.h).map((b) => b.probeNow().catch(() => undefined));
    await target.h.probeNow().catch(() => undefined);
    rec.rolesPublishedAt = timestampFromMs(Date.now());
    void Promise.all(others);
    rec.outcome = FailoverRecord_Outcome.PROMOTED;
    const ms = (t: typeof rec.detectedAt): number => (t === undefined ? 0 : timestampMs(t));
    this.o.log.warn(
      { cluster, oldPrimary: rec.oldPrimary, newPrimary: rec.newPrimary, epoch: rec.epoch.toString(), repointed: rec.repointed, detectedToPublishedMs: ms(rec.rolesPublishedAt) - ms(rec.detectedAt) },
      `monitor: failover of ${cluster} done: ${rec.oldPrimary} → ${rec.newPrimary}`,
    );
  }

  /**
   * Not promoted: a replica that applied all it received gets its IO thread
   * back (from the old primary, if it returns); one that did not keeps it
   * stopped (restarting it could discard the unapplied relay log) and is
   * named in the log.
   */
  private async resumeReceiving(cands: readonly (Candidate & { h: BackendHandle })[]): Promise<void> {
    await Promise.all(
      cands.map(async (c) => {
        try {
          const [rows] = await this.exec(c.h, ["SELECT @@GLOBAL.gtid_slave_pos AS applied"]);
          const applied = parseGtidPos(String(rows?.[0]?.applied ?? ""));
          const received = parseGtidPos(c.received);
          if (applied !== null && received !== null && gtidCovers(applied, received)) {
            await this.exec(c.h, ["START SLAVE IO_THREAD"]);
            return;
          }
        } catch {
          // fall through: say so
        }
        this.o.log.error({ cluster: c.h.spec.cluster, backend: c.backend }, `monitor: ${c.backend}'s IO thread stays stopped (it has not applied all it received, ${c.received}); START SLAVE IO_THREAD by hand once it has`);
      }),
    );
  }

  private check(): void {
    if (this.o.stopped()) throw new Error("the monitor lost leadership during the failover");
  }

  /** MASTER_GTID_WAIT on its own received position. */
  private async catchUp(c: Candidate & { h: BackendHandle }): Promise<boolean> {
    if (c.received.trim() === "") return true;
    const [rows] = await this.exec(c.h, ["SELECT MASTER_GTID_WAIT(?, ?) AS r"], [[c.received, this.catchUpMs / 1000]], this.catchUpMs + this.stmtMs);
    return Number(rows?.[0]?.r) === 0;
  }

  private async exec(h: BackendHandle, statements: string[], params?: unknown[][], timeoutMs = this.stmtMs): Promise<Record<string, unknown>[][]> {
    const password = await resolveMonitorSecret(h.spec.secretRef, this.o.env);
    const [host, port] = splitAddress(h.spec.address);
    return this.sql({ host, port, user: h.spec.user, password, timeoutMs }, statements, params);
  }

  private async writeEpoch(e: ClusterEpoch): Promise<boolean> {
    const { client, keys, campaignKey, callTimeoutMs } = this.o;
    const res = await withTimeout(
      client.if(campaignKey, "Create", ">", 0).then(client.put(keys.clusterEpoch(e.cluster)).value(toJsonString(ClusterEpochSchema, e))).commit(),
      callTimeoutMs,
      "write the cluster epoch",
    );
    return res.succeeded;
  }

  private async writeRecord(rec: FailoverRecord): Promise<void> {
    const { client, keys, campaignKey, callTimeoutMs } = this.o;
    try {
      await withTimeout(
        client.if(campaignKey, "Create", ">", 0).then(client.put(keys.failoverRecord(rec.cluster, rec.detectedAt === undefined ? Date.now() : timestampMs(rec.detectedAt))).value(toJsonString(FailoverRecordSchema, rec))).commit(),
        callTimeoutMs,
        "write the failover record",
      );
    } catch (err) {
      this.o.log.error({ cluster: rec.cluster, err: (err as Error).message }, "monitor: cannot record the failover in etcd");
    }
  }
}

/** One connection, the statements in order, closed; the whole bounded by `timeoutMs`. */
export const runSql: SqlRunner = async (t, statements, params) => {
  let conn: mysql.Connection | undefined;
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${t.host}:${t.port} did not answer within ${t.timeoutMs} ms`)), t.timeoutMs);
  });
  const work = async (): Promise<Record<string, unknown>[][]> => {
    conn = await mysql.createConnection({ host: t.host, port: t.port, user: t.user, password: t.password, connectTimeout: t.timeoutMs, supportBigNumbers: true, bigNumberStrings: true });
    const out: Record<string, unknown>[][] = [];
    for (let i = 0; i < statements.length; i++) {
      const [rows] = await conn.query(statements[i]!, params?.[i]);
      out.push(Array.isArray(rows) ? (rows as Record<string, unknown>[]) : []);
    }
    return out;
  };
  try {
    return await Promise.race([work(), timeout]);
  } catch (err) {
    const e = err as { sqlMessage?: string; message?: string; code?: string };
    throw new Error(`${t.host}:${t.port}: ${e.code !== undefined ? `${e.code}: ` : ""}${e.sqlMessage ?? e.message ?? String(err)}`, { cause: err });
  } finally {
    clearTimeout(timer);
    const c = conn as mysql.Connection | undefined;
    c?.destroy();
  }
};

/** host:port → [host, port] (IPv6 in brackets; no port: 3306). */
export function splitAddress(address: string): [string, number] {
  const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d+)$/.exec(address);
  return [m?.[1] ?? m?.[2] ?? address, m !== null ? Number(m[3]) : 3306];
}

/** Same host and port, "localhost"/"::1" counting as 127.0.0.1. */
export function sameAddress(a: string, b: string): boolean {
  const [ha, pa] = splitAddress(a);
  const [hb, pb] = splitAddress(b);
  const local = (h: string): string => (h === "localhost" || h === "::1" ? "127.0.0.1" : h);
  return pa === pb && local(ha) === local(hb);
}

async function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer from etcd within ${ms} ms`)), ms + 250);
  });
  try {
    return await Promise.race([p, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

import { Backend_Role, BackendHealth_Role, BackendHealth_State, LoadBalancing, type BackendHealth } from "@mysqlgw/proto";
import type { BackendTarget } from "../session/config-snapshot";
import { mergeGtidLists, parseGtidList, type GtidList } from "./gtid";

/**
 * Per-cluster backend state of one worker: which backend is the primary,
 * which replica serves a read, and which backends are usable at all. Fed from
 * three places:
 *
 * - every config version (setBackends): the backends, their weights and the
 *   policy's expected roles, the cluster's LoadBalancing and maxReplicationLag;
 * - the monitor's BackendHealth from etcd (applyHealth), delivered to every
 *   worker by the supervisor as soon as it changes;
 * - this worker's own traffic: connect failures and successes (local
 *   ejection with exponential backoff and a half-open trial) and statements
 *   in flight with their latency (for the balancers).
 *
 * One instance per cluster name per worker, kept across config versions (it
 * hangs on ClusterRuntime): what was learned about a backend survives a new
 * config version as long as the backend keeps its name. Health may arrive
 * before any config names the cluster or the backend: it is kept by backend
 * name and applies once the backend appears.
 *
 * Single-threaded (one worker's event loop); no method throws or does I/O
 * besides logging. Every `now` is milliseconds on the clock of
 * `ClusterStateOptions.clock` (Date.now by default); the pick methods do not
 * allocate.
 */

/** Role of a backend as routing sees it. */
export const enum BackendRole {
  Unknown = 0,
  Primary = 1,
  Replica = 2,
}

/**
 * Where a backend's role comes from: the monitor's fresh report (state UP),
 * the cluster's failover epoch (the primary it names, when the monitor reports
 * nothing fresh), the policy's expectedRole, or nowhere.
 */
export type RoleSource = "monitor" | "epoch" | "policy" | "none";

/** One backend, for logs, metrics and admin output. */
export interface BackendStateView {
  name: string;
  /** False for a backend known from health only (no config version names it yet). */
  inConfig: boolean;
  role: "PRIMARY" | "REPLICA" | "UNKNOWN";
  roleSource: RoleSource;
  /** What the monitor says: UP, DOWN, or NONE (no report, or not answering yet). */
  monitorState: "UP" | "DOWN" | "NONE";
  /** Would be picked now (monitor not DOWN, not ejected, or ejection over with its trial free). */
  up: boolean;
  /** Local ejection ends at (ms, the state's clock); 0 when not ejected. */
  ejectedUntil: number;
  consecutiveConnectFailures: number;
  /** Replication lag the monitor reports; null when unknown or not a replica. */
  lagMs: number | null;
  /** Skipped for reads because of maxReplicationLag. */
  lagging: boolean;
  outstanding: number;
  /** Moving average of statement round trips, µs; null before the first. */
  latencyEwmaUs: number | null;
}

/** What ClusterState logs through (pino's Logger fits). */
export interface StateLogger {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

export interface ClusterStateOptions {
  logger?: StateLogger | null;
  /** Consecutive connect failures that eject a backend; default 2. */
  ejectAfterFailures?: number;
  /** First ejection lasts this long, doubling with each failed trial; default 1000 ms. */
  ejectBaseMs?: number;
  /** Longest ejection; default 30000 ms. */
  ejectMaxMs?: number;
  /** A half-open trial with no outcome reported after this lets another trial through; default 15000 ms. */
  trialTimeoutMs?: number;
  /** Weight of a new latency sample in the moving average; default 0.3. */
  latencyEwmaAlpha?: number;
  /**
   * Time constant of latency forgetting, ms (default 10000): an average not
   * refreshed for t counts as exp(-t/decay) of itself in POWER_OF_TWO_LATENCY, so a
   * backend that lost every draw gets tried again now and then (a 10× slower
   * one about every 23 s), and its first new sample outweighs stale ones.
   */
  latencyDecayMs?: number;
  /** Uniform [0, 1) source for POWER_OF_TWO_LATENCY; default Math.random. */
  random?: () => number;
  /** Clock of statementFinished(); must be the clock the callers' `now` comes from. Default Date.now. */
  clock?: () => number;
}

/** What ClusterState keeps of one BackendHealth. */
interface HealthRecord {
  readonly state: BackendHealth_State;
  readonly role: BackendHealth_Role;
  readonly lagMs: number | null;
  /** Per-domain max of gtid_current_pos and gtid_slave_pos; null when neither parses. */
  readonly applied: GtidList | null;
  readonly disagreement: string;
  readonly lastError: string;
}

const ROLE_TEXT = ["UNKNOWN", "PRIMARY", "REPLICA"] as const;
// @mysqlgw/proto's exports are CommonJS re-exports, read through a getter on every access: copied once for pick()
const LB_LEAST_OUTSTANDING = LoadBalancing.LEAST_OUTSTANDING;
const LB_POWER_OF_TWO_LATENCY = LoadBalancing.POWER_OF_TWO_LATENCY;
/** Among several usable primaries: the monitor's before the epoch's before the policy's. */
const SOURCE_RANK: Record<RoleSource, number> = { monitor: 3, epoch: 2, policy: 1, none: 0 };

class BackendEntry {
  target: BackendTarget;
  weight: number;
  expected: BackendRole;
  // derived from health + policy by refresh()
  role: BackendRole = BackendRole.Unknown;
  roleSource: RoleSource = "none";
  monitorDown = false;
  /** A former primary fenced by a failover epoch: takes nothing. */
  fenced = false;
  lagging = false;
  /** From the monitor's last report (kept while DOWN); null: unknown. */
  applied: GtidList | null = null;
  // local ejection
  failures = 0;
  ejections = 0;
  ejectedUntil = 0;
  trialAt = 0;
  // balancing
  outstanding = 0;
  ewmaUs = -1;
  ewmaAt = 0;
  swrr = 0;
  // what was logged last, so that each change is logged once
  loggedRole: BackendRole = BackendRole.Unknown;
  loggedSource: RoleSource = "none";
  loggedDisagreement = "";

  constructor(target: BackendTarget) {
    this.target = target;
    this.weight = weightOf(target);
    this.expected = target.expectedRole ?? BackendRole.Unknown;
  }
}

function weightOf(t: BackendTarget): number {
  const w = t.weight | 0;
  return w < 1 ? 1 : w > 100 ? 100 : w;
}

/** The policy's Backend.expected_role as a BackendRole. */
export function backendRoleOf(r: Backend_Role): BackendRole {
  return r === Backend_Role.PRIMARY ? BackendRole.Primary : r === Backend_Role.REPLICA ? BackendRole.Replica : BackendRole.Unknown;
}

function toBackendRole(r: BackendHealth_Role): BackendRole {
  return r === BackendHealth_Role.PRIMARY ? BackendRole.Primary : r === BackendHealth_Role.REPLICA ? BackendRole.Replica : BackendRole.Unknown;
}

/** A GTID list to be covered, flattened for the pick loop. */
interface NeededGtid {
  readonly domains: number[];
  readonly seqs: bigint[];
}

function neededOf(text: string): NeededGtid | null {
  const list = parseGtidList(text);
  if (list === null) return null;
  return { domains: [...list.keys()], seqs: [...list.values()] };
}

const enum Pick {
  Replica = 0,
  Any = 1,
}

export class ClusterState {
  readonly name: string;
  private entries: BackendEntry[] = [];
  private readonly byName = new Map<string, BackendEntry>();
  private readonly health = new Map<string, HealthRecord>();
  private lb: LoadBalancing = LoadBalancing.ROUND_ROBIN;
  private maxLagMs: number | null = null;
  private rotation = 0;
  private lastNeededText = "";
  private lastNeeded: NeededGtid | null = null;
  /** Eligible backends of the pick under way (reused, so that a pick allocates nothing). */
  private readonly scratch: BackendEntry[] = [];
  private warnedPrimaries = "";
  /** The cluster's failover epoch (ClusterEpoch in etcd): its former primaries take nothing. */
  private epoch: { epoch: bigint; primary: string; fenced: ReadonlySet<string> } | null = null;
  private readonly log: StateLogger | null;
  private readonly ejectAfter: number;
  private readonly ejectBaseMs: number;
  private readonly ejectMaxMs: number;
  private readonly trialTimeoutMs: number;
  private readonly alpha: number;
  private readonly decayMs: number;
  private readonly random: () => number;
  private readonly clock: () => number;

  constructor(name: string, options: ClusterStateOptions = {}) {
    this.name = name;
    this.log = options.logger ?? null;
    this.ejectAfter = Math.max(1, options.ejectAfterFailures ?? 2);
    this.ejectBaseMs = Math.max(1, options.ejectBaseMs ?? 1000);
    this.ejectMaxMs = Math.max(this.ejectBaseMs, options.ejectMaxMs ?? 30000);
    this.trialTimeoutMs = Math.max(1, options.trialTimeoutMs ?? 15000);
    const a = options.latencyEwmaAlpha ?? 0.3;
    this.alpha = a > 0 && a <= 1 ? a : 0.3;
    this.decayMs = Math.max(1, options.latencyDecayMs ?? 10000);
    this.random = options.random ?? Math.random;
    this.clock = options.clock ?? Date.now;
  }

  /**
   * The backends of a config version, in policy order. A backend keeps its
   * ejection, latency and in-flight count across versions while its name stays;
   * `maxReplicationLagMs` null (or ≤ 0): no bound.
   */
  setBackends(backends: readonly BackendTarget[], lb: LoadBalancing, maxReplicationLagMs: number | null): void {
    this.lb = lb === LoadBalancing.UNSPECIFIED ? LoadBalancing.ROUND_ROBIN : lb;
    this.maxLagMs = maxReplicationLagMs !== null && maxReplicationLagMs > 0 ? maxReplicationLagMs : null;
    const next: BackendEntry[] = [];
    const seen = new Set<string>();
    for (const t of backends) {
      if (seen.has(t.name)) continue;
      seen.add(t.name);
      let e = this.byName.get(t.name);
      if (e === undefined) {
        e = new BackendEntry(t);
        this.byName.set(t.name, e);
      } else {
        e.target = t;
        e.weight = weightOf(t);
        e.expected = t.expectedRole ?? BackendRole.Unknown;
      }
      next.push(e);
    }
    for (const name of [...this.byName.keys()]) if (!seen.has(name)) this.byName.delete(name);
    this.entries = next;
    for (const e of next) this.refresh(e);
  }

  /**
   * The monitor's report for `backend` (null: its key was deleted or its lease
   * expired — the backend counts as unreported). A report turning UP lets a
   * locally ejected backend's half-open trial through at once.
   */
  applyHealth(backend: string, h: BackendHealth | null, now: number): void {
    const prev = this.health.get(backend) ?? null;
    if (h === null) {
      if (prev === null) return;
      this.health.delete(backend);
      this.log?.info({ cluster: this.name, backend }, `backend ${backend} of cluster ${this.name} has no health report any more (monitor stopped, lease expired, or backend removed); routing on the policy's roles`);
    } else {
      const rec: HealthRecord = {
        state: h.state,
        role: h.role,
        lagMs: h.replicationLag === undefined ? null : Number(h.replicationLag.seconds) * 1000 + Math.floor(h.replicationLag.nanos / 1e6),
        applied: appliedOf(h),
        disagreement: h.roleDisagreement,
        lastError: h.lastError,
      };
      this.health.set(backend, rec);
      const was = prev?.state ?? BackendHealth_State.UNSPECIFIED;
      if (rec.state !== was) {
        if (rec.state === BackendHealth_State.DOWN) {
          this.log?.warn({ cluster: this.name, backend, lastError: rec.lastError }, `backend ${backend} of cluster ${this.name} is DOWN (monitor): ${rec.lastError || "probes fail"}; no new statements go to it`);
        } else if (rec.state === BackendHealth_State.UP) {
          this.log?.info({ cluster: this.name, backend }, `backend ${backend} of cluster ${this.name} is UP (monitor)`);
          const e = this.byName.get(backend);
          if (e !== undefined && e.ejectedUntil > now) e.ejectedUntil = now;
        }
      }
    }
    const e = this.byName.get(backend);
    if (e !== undefined) this.refresh(e);
  }

  /**
   * The cluster's failover epoch (null: none, or its key deleted). Its
   * `fenced` backends — former primaries replaced by a failover — are never
   * picked again, whatever the monitor's health (or its absence, when its
   * keys expired) or the policy's expectedRole say, until an epoch no longer
   * lists them (the monitor unfences a rejoined one). (Addition to the interface.)
   */
  applyEpoch(epoch: { epoch: bigint; primary: string; fenced: readonly string[] } | null): void {
    const prev = this.epoch;
    this.epoch = epoch === null ? null : { epoch: epoch.epoch, primary: epoch.primary, fenced: new Set(epoch.fenced) };
    if (epoch !== null && (prev === null || prev.epoch !== epoch.epoch)) {
      this.log?.warn({ cluster: this.name, epoch: String(epoch.epoch), primary: epoch.primary, fenced: epoch.fenced }, `cluster ${this.name} failed over to ${epoch.primary} (epoch ${epoch.epoch})${epoch.fenced.length > 0 ? `; ${epoch.fenced.join(", ")} fenced: no statements go to them` : ""}`);
    }
    for (const e of this.entries) this.refresh(e);
  }

  /** The monitor's fresh report (state UP) if any, else the policy's expected_role, else Unknown. */
  roleOf(name: string): BackendRole {
    return this.byName.get(name)?.role ?? BackendRole.Unknown;
  }

  /**
   * The usable backend whose role is Primary (a monitor-reported primary before
   * the failover epoch's, before one only expected by policy; the first in
   * policy order among equals; never a fenced former primary). A
   * one-backend cluster with no role information: that backend. Null when none
   * is usable. Claims the half-open trial of the backend returned.
   */
  primary(now: number): BackendTarget | null {
    let best: BackendEntry | null = null;
    let count = 0;
    for (const e of this.entries) {
      if (e.role !== BackendRole.Primary || !this.candidate(e, now)) continue;
      count++;
      if (best === null || SOURCE_RANK[e.roleSource] > SOURCE_RANK[best.roleSource]) best = e;
    }
    if (count > 1) this.warnPrimaries(now);
    else this.warnedPrimaries = "";
    if (best === null && this.entries.length === 1) {
      const only = this.entries[0]!;
      if (only.role === BackendRole.Unknown && this.candidate(only, now)) best = only;
    }
    if (best === null) return null;
    this.claim(best, now);
    return best.target;
  }

  /**
   * A usable replica for a read, chosen by the cluster's LoadBalancing among
   * replicas not lagging beyond maxReplicationLag, not named `exclude`, and —
   * with `gtid` — whose gtid_current_pos / gtid_slave_pos (as the monitor last
   * read them) cover that GTID list (a replica without a report, or junk in
   * `gtid`, does not qualify). Null when none qualifies: falling back to the
   * primary is the caller's choice. Claims the half-open trial of the replica returned.
   */
  pickReplica(now: number, opts?: { gtid?: string; exclude?: string }): BackendTarget | null {
    return this.pick(Pick.Replica, now, opts?.exclude ?? null, opts?.gtid);
  }

  /**
   * Like pickReplica, over every usable backend whatever its role (no lag or
   * GTID condition): for a cluster whose roles are unknown, e.g. a READ_WRITE
   * listener's connections when no primary is known. (Addition to the interface.)
   */
  pickAny(now: number, opts?: { exclude?: string }): BackendTarget | null {
    return this.pick(Pick.Any, now, opts?.exclude ?? null, undefined);
  }

  /**
   * Up per the monitor (or no report) and not ejected locally. Once an
   * ejection is over, the first call returns true and claims the one trial
   * (others get false until connectSucceeded/connectFailed, or trialTimeoutMs):
   * call it when about to connect; `snapshot()` looks without claiming.
   * False for a name no config version gave this cluster.
   */
  usable(name: string, now: number): boolean {
    const e = this.byName.get(name);
    if (e === undefined || !this.candidate(e, now)) return false;
    this.claim(e, now);
    return true;
  }

  /** As usable(), without claiming a half-open trial: would `name` be picked now? */
  available(name: string, now: number): boolean {
    const e = this.byName.get(name);
    return e !== undefined && this.candidate(e, now);
  }

  /**
   * A connect (or backend login) to `name` failed. After ejectAfterFailures
   * consecutive ones the backend is ejected for ejectBaseMs, doubling (up to
   * ejectMaxMs) each time its half-open trial fails too. A failure reported
   * while an ejection runs (a connect started before it) only counts.
   */
  connectFailed(name: string, now: number): void {
    const e = this.byName.get(name);
    if (e === undefined) return;
    e.failures = Math.min(e.failures + 1, 1_000_000);
    const ejected = e.ejectedUntil !== 0;
    if (ejected && now < e.ejectedUntil) return;
    if (!ejected && e.failures < this.ejectAfter) return;
    e.ejections = Math.min(e.ejections + 1, 64);
    const ms = Math.min(this.ejectMaxMs, this.ejectBaseMs * 2 ** Math.min(e.ejections - 1, 30));
    e.ejectedUntil = now + ms;
    e.trialAt = 0;
    this.log?.warn(
      { cluster: this.name, backend: name, failures: e.failures, ejectedMs: ms },
      `backend ${name} of cluster ${this.name} ejected on this data plane for ${ms} ms after ${e.failures} consecutive connect failures; one connection is tried then`,
    );
  }

  /** A connect to `name` succeeded: failures forgotten, ejection (if any) ended. */
  connectSucceeded(name: string): void {
    const e = this.byName.get(name);
    if (e === undefined) return;
    e.failures = 0;
    if (e.ejectedUntil !== 0) this.log?.info({ cluster: this.name, backend: name }, `backend ${name} of cluster ${this.name} accepts connections again; no longer ejected`);
    e.ejections = 0;
    e.ejectedUntil = 0;
    e.trialAt = 0;
  }

  /** A statement was sent to `name` (LEAST_OUTSTANDING, POWER_OF_TWO_LATENCY). */
  statementStarted(name: string): void {
    const e = this.byName.get(name);
    if (e !== undefined) e.outstanding++;
  }

  /**
   * The statement's result (or error) came back after `latencyUs`; a negative
   * or non-finite latency only ends the statement (no sample: pass -1 when the
   * backend did not answer). An answer proves the backend reachable, so it also
   * ends an ejection (a pooled connection may run a half-open trial without a
   * new login). `now` (the options' clock by default) saves a clock read.
   */
  statementFinished(name: string, latencyUs: number, now?: number): void {
    const e = this.byName.get(name);
    if (e === undefined) return;
    if (e.outstanding > 0) e.outstanding--;
    if (!(latencyUs >= 0) || latencyUs === Infinity) return;
    if (e.failures !== 0 || e.ejectedUntil !== 0) this.connectSucceeded(name);
    if (now === undefined) now = this.clock();
    if (e.ewmaUs < 0) {
      e.ewmaUs = latencyUs;
    } else {
      // a stale average weighs less against the new sample
      const keep = (1 - this.alpha) * Math.exp(-Math.max(0, now - e.ewmaAt) / this.decayMs);
      e.ewmaUs = keep * e.ewmaUs + (1 - keep) * latencyUs;
    }
    e.ewmaAt = now;
  }

  /** Every backend of the config (policy order), then those known from health only. Does not claim trials. */
  snapshot(now: number = this.clock()): BackendStateView[] {
    const out: BackendStateView[] = [];
    for (const e of this.entries) {
      const h = this.health.get(e.target.name) ?? null;
      out.push({
        name: e.target.name,
        inConfig: true,
        role: ROLE_TEXT[e.role],
        roleSource: e.roleSource,
        monitorState: monitorStateText(h),
        up: this.candidate(e, now),
        ejectedUntil: e.ejectedUntil,
        consecutiveConnectFailures: e.failures,
        lagMs: h?.lagMs ?? null,
        lagging: e.lagging,
        outstanding: e.outstanding,
        latencyEwmaUs: e.ewmaUs < 0 ? null : Math.round(e.ewmaUs),
      });
    }
    for (const [name, h] of this.health) {
      if (this.byName.has(name)) continue;
      const role = h.state === BackendHealth_State.UP ? toBackendRole(h.role) : BackendRole.Unknown;
      out.push({
        name,
        inConfig: false,
        role: ROLE_TEXT[role],
        roleSource: role === BackendRole.Unknown ? "none" : "monitor",
        monitorState: monitorStateText(h),
        up: false,
        ejectedUntil: 0,
        consecutiveConnectFailures: 0,
        lagMs: h.lagMs,
        lagging: false,
        outstanding: 0,
        latencyEwmaUs: null,
      });
    }
    return out;
  }

  // ---- internals ----

  private candidate(e: BackendEntry, now: number): boolean {
    if (e.monitorDown || e.fenced) return false;
    if (e.ejectedUntil !== 0) {
      if (now < e.ejectedUntil) return false;
      if (e.trialAt !== 0 && now - e.trialAt < this.trialTimeoutMs) return false;
    }
    return true;
  }

  private claim(e: BackendEntry, now: number): void {
    if (e.ejectedUntil !== 0 && now >= e.ejectedUntil) e.trialAt = now;
  }

  private eligible(e: BackendEntry, kind: Pick, now: number, exclude: string | null, needed: NeededGtid | null): boolean {
    if (exclude !== null && e.target.name === exclude) return false;
    if (!this.candidate(e, now)) return false;
    if (kind === Pick.Any) return true;
    if (e.role !== BackendRole.Replica || e.lagging) return false;
    if (needed !== null) {
      const applied = e.applied;
      if (applied === null) return false;
      for (let i = 0; i < needed.domains.length; i++) {
        const have = applied.get(needed.domains[i]!);
        if (have === undefined || have < needed.seqs[i]!) return false;
      }
    }
    return true;
  }

  private pick(kind: Pick, now: number, exclude: string | null, gtid: string | undefined): BackendTarget | null {
    let needed: NeededGtid | null = null;
    if (gtid !== undefined) {
      if (gtid !== this.lastNeededText || this.lastNeeded === null) {
        this.lastNeededText = gtid;
        this.lastNeeded = neededOf(gtid);
      }
      needed = this.lastNeeded;
      if (needed === null) return null; // junk: nothing is known to have applied it
    }
    // one pass over the backends: the eligible ones into the (reused) scratch array
    const c = this.scratch;
    let n = 0;
    let total = 0;
    for (const e of this.entries) {
      if (!this.eligible(e, kind, now, exclude, needed)) continue;
      c[n++] = e;
      total += e.weight;
    }
    let chosen: BackendEntry | null;
    if (n <= 1) chosen = n === 1 ? c[0]! : null;
    else if (this.lb === LB_LEAST_OUTSTANDING) chosen = this.pickLeastOutstanding(n);
    else if (this.lb === LB_POWER_OF_TWO_LATENCY) chosen = this.pickTwoChoices(n, total, now);
    else chosen = this.pickRoundRobin(n, total);
    if (chosen === null) return null;
    this.claim(chosen, now);
    return chosen.target;
  }

  /**
   * Smooth weighted round robin (nginx) over the eligible backends only: the
   * same sequence config-snapshot's buildRing unrolls, computed per pick so
   * that skipping a backend (down, lagging, excluded) keeps the others' weights
   * exact instead of handing its turns to its ring neighbour.
   */
  private pickRoundRobin(n: number, total: number): BackendEntry {
    const c = this.scratch;
    let best = c[0]!;
    for (let k = 0; k < n; k++) {
      const e = c[k]!;
      e.swrr += e.weight;
      if (e.swrr > best.swrr) best = e;
    }
    best.swrr -= total;
    return best;
  }

  /** Fewest statements in flight; ties: higher weight, then in turn. */
  private pickLeastOutstanding(n: number): BackendEntry {
    const c = this.scratch;
    let best = c[0]!;
    let ties = 1;
    for (let k = 1; k < n; k++) {
      const e = c[k]!;
      if (e.outstanding < best.outstanding || (e.outstanding === best.outstanding && e.weight > best.weight)) {
        best = e;
        ties = 1;
      } else if (e.outstanding === best.outstanding && e.weight === best.weight) {
        ties++;
      }
    }
    if (ties === 1) return best;
    let turn = this.rotation++ % ties;
    if (this.rotation >= 0x40000000) this.rotation = 0;
    for (let k = 0; k < n; k++) {
      const e = c[k]!;
      if (e.outstanding === best.outstanding && e.weight === best.weight && turn-- === 0) return e;
    }
    return best;
  }

  /**
   * Power of two choices: two distinct eligible backends drawn by weight; the
   * lower cost wins, cost = latency average (decayed by age) × (in flight + 1).
   * An unknown latency counts as best while nothing is in flight on it, so a
   * new backend gets tried, and as worst while its first statements run.
   */
  private pickTwoChoices(n: number, total: number, now: number): BackendEntry {
    const a = this.drawByWeight(n, total, null);
    const b = this.drawByWeight(n, total - a.weight, a);
    return this.cost(b, now) < this.cost(a, now) ? b : a;
  }

  private drawByWeight(n: number, total: number, skip: BackendEntry | null): BackendEntry {
    const c = this.scratch;
    let r = this.random() * total;
    let last = c[0]!;
    for (let k = 0; k < n; k++) {
      const e = c[k]!;
      if (e === skip) continue;
      last = e;
      r -= e.weight;
      if (r < 0) return e;
    }
    return last; // r ≥ total only by rounding: the last one
  }

  private cost(e: BackendEntry, now: number): number {
    if (e.ewmaUs < 0) return e.outstanding === 0 ? 0 : Infinity;
    const age = now - e.ewmaAt;
    const decayed = age > 0 ? e.ewmaUs * Math.exp(-age / this.decayMs) : e.ewmaUs;
    return decayed * (e.outstanding + 1);
  }

  /** Recomputes role, monitor state and lag of one backend; logs changes once. */
  private refresh(e: BackendEntry): void {
    const name = e.target.name;
    const h = this.health.get(name) ?? null;
    const fresh = h !== null && h.state === BackendHealth_State.UP;
    const monitorRole = fresh ? toBackendRole(h.role) : BackendRole.Unknown;
    if (monitorRole !== BackendRole.Unknown) {
      e.role = monitorRole;
      e.roleSource = "monitor";
    } else if (this.epoch !== null && this.epoch.primary === name) {
      // newer than the policy's expectation: a failover made it the primary
      e.role = BackendRole.Primary;
      e.roleSource = "epoch";
    } else if (e.expected !== BackendRole.Unknown) {
      e.role = e.expected;
      e.roleSource = "policy";
    } else {
      e.role = BackendRole.Unknown;
      e.roleSource = "none";
    }
    e.monitorDown = h !== null && h.state === BackendHealth_State.DOWN;
    const fenced = this.epoch?.fenced.has(name) ?? false;
    if (fenced !== e.fenced) {
      e.fenced = fenced;
      if (!fenced) this.log?.info({ cluster: this.name, backend: name }, `backend ${name} of cluster ${this.name} is no longer fenced`);
    }
    e.applied = h?.applied ?? null;
    e.lagging =
      this.maxLagMs !== null && fresh && monitorRole === BackendRole.Replica && (h.lagMs === null || h.lagMs > this.maxLagMs);

    if (e.role !== e.loggedRole || e.roleSource !== e.loggedSource) {
      if (e.role !== BackendRole.Unknown) {
        this.log?.info(
          { cluster: this.name, backend: name, backendRole: ROLE_TEXT[e.role], roleSource: e.roleSource },
          `backend ${name} of cluster ${this.name} is now ${ROLE_TEXT[e.role]} (${e.roleSource})`,
        );
      } else if (e.loggedRole !== BackendRole.Unknown) {
        this.log?.info({ cluster: this.name, backend: name, backendRole: "UNKNOWN", roleSource: "none" }, `backend ${name} of cluster ${this.name} has no known role now`);
      }
      e.loggedRole = e.role;
      e.loggedSource = e.roleSource;
    }
    const disagreement =
      monitorRole !== BackendRole.Unknown && e.expected !== BackendRole.Unknown && monitorRole !== e.expected
        ? `${ROLE_TEXT[monitorRole]}/${ROLE_TEXT[e.expected]}`
        : "";
    if (disagreement !== e.loggedDisagreement) {
      e.loggedDisagreement = disagreement;
      if (disagreement !== "") {
        this.log?.warn(
          { cluster: this.name, backend: name, monitorRole: ROLE_TEXT[monitorRole], expectedRole: ROLE_TEXT[e.expected], detail: h?.disagreement ?? "" },
          `backend ${name} of cluster ${this.name}: the monitor reports ${ROLE_TEXT[monitorRole]}, the policy expects ${ROLE_TEXT[e.expected]}; routing follows the monitor (fix the server or the policy's expectedRole)`,
        );
      }
    }
  }

  private warnPrimaries(now: number): void {
    let names = "";
    for (const e of this.entries) if (e.role === BackendRole.Primary && this.candidate(e, now)) names += (names === "" ? "" : ", ") + e.target.name;
    if (names === this.warnedPrimaries) return;
    this.warnedPrimaries = names;
    this.log?.warn({ cluster: this.name, primaries: names }, `cluster ${this.name} has several usable PRIMARY backends (${names}); writes go to the first (a monitor report before a policy expectation); check replication`);
  }
}

function appliedOf(h: BackendHealth): GtidList | null {
  const cur = parseGtidList(h.gtidCurrentPos);
  const slave = parseGtidList(h.gtidSlavePos);
  if (cur === null) return slave;
  if (slave === null) return cur;
  return mergeGtidLists(cur, slave);
}

function monitorStateText(h: HealthRecord | null): "UP" | "DOWN" | "NONE" {
  return h === null ? "NONE" : h.state === BackendHealth_State.UP ? "UP" : h.state === BackendHealth_State.DOWN ? "DOWN" : "NONE";
}

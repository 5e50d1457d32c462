import type { Logger } from "pino";
import type { Quota } from "@mysqlgw/proto";
import { realClock, type QuotaClock } from "./clock";
import { compileQuotaSpec, QuotaState, type QuotaSink, type QuotaSpec } from "./quota-state";
import { SessionQuotas, type QuotaSource, type SessionQuota } from "./session-quotas";
import { fleetWorkers, SOLO, type FleetPosition } from "./share";

/** The quotas of one config version that can apply on one listener (its name and cluster matched). */
export class ListenerQuotas {
  constructor(private readonly specs: readonly QuotaSpec[]) {}

  /** Some quota counts statements of `user` here: its sessions must run on the routed engine. */
  covers(user: string): boolean {
    return this.specs.some((s) => s.users === null || s.users.has(user));
  }
}

/**
 * The quotas of one config version, compiled (pure: nothing in force yet).
 * QuotaRegistry.activate() puts them in force once the version is served.
 */
export interface CompiledQuotas {
  /** Unique by name, in policy order. */
  readonly specs: readonly QuotaSpec[];
  /** The quotas that can count statements on a listener of `cluster`; null: none. */
  forListener(listener: string, cluster: string): ListenerQuotas | null;
}

const matchesListener = (s: QuotaSpec, listener: string, cluster: string): boolean =>
  (s.listeners === null || s.listeners.has(listener)) && (s.clusters === null || s.clusters.has(cluster));

export const NO_QUOTAS: CompiledQuotas = { specs: [], forListener: () => null };

/** Compiles a config version's Policy.quotas (duplicate names: the first wins; validation refuses them). */
export function compileQuotas(quotas: readonly Quota[]): CompiledQuotas {
  if (quotas.length === 0) return NO_QUOTAS;
  const specs: QuotaSpec[] = [];
  const names = new Set<string>();
  for (const q of quotas) {
    if (names.has(q.name)) continue;
    names.add(q.name);
    specs.push(compileQuotaSpec(q));
  }
  return {
    specs,
    forListener(listener: string, cluster: string): ListenerQuotas | null {
      const mine = specs.filter((s) => matchesListener(s, listener, cluster));
      return mine.length === 0 ? null : new ListenerQuotas(mine);
    },
  };
}

const NO_SINK: QuotaSink = { outcome: () => undefined };

/**
 * The quotas of one worker: a QuotaState per quota name, kept across config
 * versions (a changed definition changes its figures in place, so tokens and
 * running statements carry over; per_user flipping starts afresh), and this
 * worker's place in the fleet, from which every quota's share is computed.
 * One per worker process (quota/index.ts); tests make their own.
 *
 * The quotas in force are those of the version activated last (when the
 * worker serves it: a version the worker fails to apply changes nothing);
 * sessions pick them up at their next statement (SessionQuotas).
 */
export class QuotaRegistry implements QuotaSource {
  private readonly states = new Map<string, QuotaState>();
  /** In force: each spec with its state, in policy order. */
  private active: readonly { readonly spec: QuotaSpec; readonly state: QuotaState }[] = [];
  private fleet: FleetPosition = SOLO;
  private sink: QuotaSink;
  private log: Logger | null = null;
  /** Bumped by each activate(). */
  generation = 0;
  /** Quotas in force. */
  count = 0;

  constructor(
    private readonly clock: QuotaClock = realClock,
    sink: QuotaSink = NO_SINK,
  ) {
    this.sink = sink;
  }

  setSink(sink: QuotaSink): void {
    this.sink = sink;
  }

  setLogger(log: Logger): void {
    this.log = log;
  }

  get position(): FleetPosition {
    return this.fleet;
  }

  /** A session's view of the quotas in force (admit/release per statement). */
  session(listener: string, cluster: string, user: string): SessionQuotas {
    return new SessionQuotas(this, listener, cluster, user);
  }

  entriesFor(listener: string, cluster: string, user: string): readonly SessionQuota[] {
    const out: SessionQuota[] = [];
    for (const a of this.active) {
      const s = a.spec;
      if (matchesListener(s, listener, cluster) && (s.users === null || s.users.has(user))) out.push({ quota: a.state, rules: s.rules });
    }
    return out;
  }

  /** Every quota in force (for figures). */
  all(): Iterable<QuotaState> {
    return this.states.values();
  }

  /** This worker's index and its data plane's worker count (set once at start). */
  setWorker(workerIndex: number, workerCount: number): void {
    this.fleet = { ...this.fleet, workerIndex, workerCount: Math.max(1, workerCount) };
    this.reshare();
  }

  /** The registry in etcd changed: `dataPlanes` live (this one included), this one at `rank` by id. */
  setFleet(dataPlanes: number, rank: number): void {
    const n = Math.max(1, dataPlanes);
    if (n === this.fleet.dataPlanes && rank === this.fleet.rank) return;
    this.fleet = { ...this.fleet, dataPlanes: n, rank: Math.max(0, Math.min(rank, n - 1)) };
    this.reshare();
    this.warnSmallConcurrency();
  }

  /** Compiles a version's quotas without putting them in force (compileQuotas). */
  compile(quotas: readonly Quota[]): CompiledQuotas {
    return compileQuotas(quotas);
  }

  /**
   * Puts a compiled version's quotas in force: states kept by name (new
   * figures applied in place), created for new names, retired for names no
   * longer defined (their waiting statements go ahead). Returns the states in
   * policy order.
   */
  activate(c: CompiledQuotas): readonly QuotaState[] {
    const active: { spec: QuotaSpec; state: QuotaState }[] = [];
    for (const spec of c.specs) {
      let st = this.states.get(spec.name);
      if (st !== undefined && st.spec.perUser === spec.perUser) st.reconfigure(spec, this.fleet);
      else {
        st?.retire();
        st = new QuotaState(spec, this.fleet, this.clock, { outcome: (n, o) => this.sink.outcome(n, o) });
        this.states.set(spec.name, st);
      }
      active.push({ spec, state: st });
    }
    const names = new Set(c.specs.map((s) => s.name));
    for (const [name, st] of this.states) {
      if (!names.has(name)) {
        st.retire();
        this.states.delete(name);
      }
    }
    this.active = active;
    this.count = active.length;
    this.generation++;
    this.warnSmallConcurrency();
    return active.map((a) => a.state);
  }

  private reshare(): void {
    for (const st of this.states.values()) st.reconfigure(st.spec, this.fleet);
  }

  private warnSmallConcurrency(): void {
    const workers = fleetWorkers(this.fleet);
    for (const st of this.states.values()) {
      const m = st.spec.maxConcurrent;
      if (m > 0 && m < workers && this.fleet.workerIndex === 0) {
        this.log?.warn(
          { quota: st.name, maxConcurrent: m, fleetWorkers: workers, slotsHere: st.currentShare.concurrency },
          "quota maxConcurrent is below the fleet's worker count: some data-plane workers get no slot and their statements wait or are refused; raise maxConcurrent to at least data planes × workers",
        );
      }
    }
  }
}

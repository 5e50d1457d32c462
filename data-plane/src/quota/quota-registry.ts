import type { Logger } from "pino";
import type { Quota } from "@mysqlgw/proto";
import { realClock, type QuotaClock } from "./clock";
import { compileQuotaSpec, QuotaState, type QuotaSink, type QuotaSpec } from "./quota-state";
import { SessionQuotas, type QuotaSource, type SessionQuota } from "./session-quotas";
import { fleetWorkers, SOLO, type FleetPosition } from "./share";

/** The quotas of one config version that can apply on one listener (its name and cluster matched). */
export class ListenerQuotas {
  constructor(private readonly entries: readonly { readonly quota: QuotaState; readonly users: ReadonlySet<string> | null; readonly rules: ReadonlySet<string> | null }[]) {}

  /** Some quota counts statements of `user` here: its sessions must run on the routed engine. */
  covers(user: string): boolean {
    return this.entries.some((e) => e.users === null || e.users.has(user));
  }

  /** The quotas counting statements of `user` here, in policy order. */
  entriesFor(user: string): SessionQuota[] {
    const mine: SessionQuota[] = [];
    for (const e of this.entries) if (e.users === null || e.users.has(user)) mine.push({ quota: e.quota, rules: e.rules });
    return mine;
  }
}

/** The quotas of one config version. */
export interface CompiledQuotas {
  readonly states: readonly QuotaState[];
  /** The quotas that can count statements on a listener of `cluster`; null: none. */
  forListener(listener: string, cluster: string): ListenerQuotas | null;
}

export const NO_QUOTAS: CompiledQuotas = { states: [], forListener: () => null };

const NO_SINK: QuotaSink = { outcome: () => undefined };

/**
 * The quotas of one worker: a QuotaState per quota name, kept across config
 * versions (a changed definition changes its figures in place, so tokens and
 * running statements carry over; per_user flipping starts afresh), and this
 * worker's place in the fleet, from which every quota's share is computed.
 * One per worker process (quota/index.ts); tests make their own.
 *
 * The quotas in force are those of the version compiled last; sessions pick
 * them up at their next statement (SessionQuotas).
 */
export class QuotaRegistry implements QuotaSource {
  private readonly states = new Map<string, QuotaState>();
  private current: CompiledQuotas = NO_QUOTAS;
  /** Bumped by each compile(). */
  generation = 0;
  /** Quotas in force (of the version compiled last). */
  count = 0;
  private fleet: FleetPosition = SOLO;
  private sink: QuotaSink;
  private log: Logger | null = null;

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
    return this.current.forListener(listener, cluster)?.entriesFor(user) ?? [];
  }

  /** Every live quota (for figures). */
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

  /** A config version's quotas, now in force; states of names no longer defined are retired (their waiters admitted). */
  compile(quotas: readonly Quota[]): CompiledQuotas {
    const c = this.build(quotas);
    this.current = c;
    this.count = c.states.length;
    this.generation++;
    return c;
  }

  private build(quotas: readonly Quota[]): CompiledQuotas {
    if (quotas.length === 0 && this.states.size === 0) return NO_QUOTAS;
    const list: QuotaState[] = [];
    const specs: QuotaSpec[] = [];
    const names = new Set<string>();
    for (const q of quotas) {
      if (names.has(q.name)) continue; // validation refuses duplicates; first wins
      names.add(q.name);
      const spec = compileQuotaSpec(q);
      let st = this.states.get(q.name);
      if (st !== undefined && st.spec.perUser === spec.perUser) st.reconfigure(spec, this.fleet);
      else {
        st?.retire();
        st = new QuotaState(spec, this.fleet, this.clock, { outcome: (n, o) => this.sink.outcome(n, o) });
        this.states.set(q.name, st);
      }
      list.push(st);
      specs.push(spec);
    }
    for (const [name, st] of this.states) {
      if (!names.has(name)) {
        st.retire();
        this.states.delete(name);
      }
    }
    this.warnSmallConcurrency();
    if (list.length === 0) return NO_QUOTAS;
    return {
      states: list,
      forListener(listener: string, cluster: string): ListenerQuotas | null {
        const entries = [];
        for (let i = 0; i < list.length; i++) {
          const s = specs[i];
          if (s.listeners !== null && !s.listeners.has(listener)) continue;
          if (s.clusters !== null && !s.clusters.has(cluster)) continue;
          entries.push({ quota: list[i], users: s.users, rules: s.rules });
        }
        return entries.length === 0 ? null : new ListenerQuotas(entries);
      },
    };
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

import { durationMs } from "@bufbuild/protobuf/wkt";
import { Quota_OnExceed, type Quota } from "@mysqlgw/proto";
import { QuotaExceededError, toSqlError } from "../errors";
import type { ErrPacket } from "../protocol/packets/err";
import type { QuotaClock } from "./clock";
import { Blocked, Limiter, Waited, type LimiterShare } from "./limiter";
import { burstShare, rateShare, slotShare, type FleetPosition } from "./share";

/** Quota.max_queue when 0. */
export const DEFAULT_MAX_QUEUE = 1000;
/** Quota.max_wait when absent or 0. */
export const DEFAULT_MAX_WAIT_MS = 1000;

/** A Quota as the data plane applies it (defaults filled in, lists as sets; null: the list is empty, anything matches). */
export interface QuotaSpec {
  readonly name: string;
  readonly users: ReadonlySet<string> | null;
  readonly listeners: ReadonlySet<string> | null;
  readonly clusters: ReadonlySet<string> | null;
  readonly rules: ReadonlySet<string> | null;
  readonly perUser: boolean;
  /** Fleet-wide figures as configured; 0: that limit is off. */
  readonly queriesPerSecond: number;
  readonly burst: number;
  readonly maxConcurrent: number;
  readonly reject: boolean;
  readonly maxQueue: number;
  readonly maxWaitMs: number;
}

const setOf = (names: readonly string[]): ReadonlySet<string> | null => (names.length === 0 ? null : new Set(names));

export function compileQuotaSpec(q: Quota): QuotaSpec {
  const wait = q.maxWait === undefined ? 0 : durationMs(q.maxWait);
  return {
    name: q.name,
    users: setOf(q.users),
    listeners: setOf(q.listeners),
    clusters: setOf(q.clusters),
    rules: setOf(q.rules),
    perUser: q.perUser,
    queriesPerSecond: Number.isFinite(q.queriesPerSecond) && q.queriesPerSecond > 0 ? q.queriesPerSecond : 0,
    burst: q.burst,
    maxConcurrent: q.maxConcurrent,
    reject: q.onExceed === Quota_OnExceed.REJECT,
    maxQueue: q.maxQueue > 0 ? q.maxQueue : DEFAULT_MAX_QUEUE,
    maxWaitMs: wait > 0 ? wait : DEFAULT_MAX_WAIT_MS,
  };
}

/** Outcomes counted per quota (mysqlgw_quota_statements_total{outcome}). */
export type QuotaOutcome = "admitted" | "queued" | "rejected";

/** Where a quota's figures go (metrics); a no-op in unit tests. */
export interface QuotaSink {
  outcome(quota: string, outcome: QuotaOutcome): void;
}

/** This worker's part of a quota's figures. */
export function limiterShare(spec: QuotaSpec, fleet: FleetPosition): LimiterShare {
  const rate = spec.queriesPerSecond > 0 ? rateShare(spec.queriesPerSecond, fleet) : 0;
  return {
    ratePerSecond: rate,
    burst: rate > 0 ? burstShare(spec.burst, spec.queriesPerSecond, fleet) : 0,
    concurrency: spec.maxConcurrent > 0 ? slotShare(spec.maxConcurrent, fleet) : null,
  };
}

/**
 * One quota in one worker: its limiter (or one per user with per_user), kept
 * across config versions while the quota keeps its name (figures change in
 * place), re-shared when the fleet changes.
 */
export class QuotaState {
  private single: Limiter | null = null;
  private readonly byUser = new Map<string, Limiter>();
  private share: LimiterShare;

  constructor(
    private specNow: QuotaSpec,
    fleet: FleetPosition,
    private readonly clock: QuotaClock,
    private readonly sink: QuotaSink,
  ) {
    this.share = limiterShare(specNow, fleet);
  }

  get spec(): QuotaSpec {
    return this.specNow;
  }

  get name(): string {
    return this.specNow.name;
  }

  /** This worker's share now. */
  get currentShare(): LimiterShare {
    return this.share;
  }

  /** The limiter a statement of `user` goes through. */
  limiterFor(user: string): Limiter {
    if (!this.specNow.perUser) return (this.single ??= new Limiter(this.clock, this.share));
    let l = this.byUser.get(user);
    if (l === undefined) {
      l = new Limiter(this.clock, this.share);
      this.byUser.set(user, l);
    }
    return l;
  }

  /** Statements waiting now in this worker. */
  queued(): number {
    let n = this.single?.queued ?? 0;
    for (const l of this.byUser.values()) n += l.queued;
    return n;
  }

  /** A new definition of the same name (per_user unchanged) and/or a new fleet position. */
  reconfigure(spec: QuotaSpec, fleet: FleetPosition): void {
    this.specNow = spec;
    this.share = limiterShare(spec, fleet);
    this.single?.configure(this.share);
    for (const l of this.byUser.values()) l.configure(this.share);
  }

  /** The quota was removed: whoever waits goes ahead (an operator removing a quota means to let them through). */
  retire(): void {
    this.single?.releaseAll();
    for (const l of this.byUser.values()) l.releaseAll();
  }

  counted(outcome: QuotaOutcome): void {
    this.sink.outcome(this.specNow.name, outcome);
  }

  /** The ERR (1226, 42000) for a refused statement: which quota, which figure, why, and what to do. */
  refusal(user: string, blocked: Blocked, why: Waited | null): ErrPacket {
    const s = this.specNow;
    const figure = blocked === Blocked.Concurrency || s.queriesPerSecond === 0 ? `${s.maxConcurrent} concurrent statements` : `${s.queriesPerSecond} queries per second`;
    const scope = s.perUser ? "per user, fleet-wide" : "fleet-wide";
    const how =
      why === Waited.QueueFull
        ? `; ${s.maxQueue} statements already wait for it in this data-plane worker (maxQueue)`
        : why === Waited.Timeout
          ? `; not admitted within ${s.maxWaitMs} ms (maxWait)`
          : "";
    const message =
      `User '${user}' has exceeded the 'quota ${s.name}: ${figure}' resource (${scope})${how}; ` +
      `slow down and retry, or raise the quota (mysqlgw get quotas)`;
    return toSqlError(new QuotaExceededError(s.name, message));
  }
}

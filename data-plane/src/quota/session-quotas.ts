import type { ErrPacket } from "../protocol/packets/err";
import { Waited, type Limiter } from "./limiter";
import type { QuotaState } from "./quota-state";

/** A quota that may count a session's statements; `rules` non-null: only those a query rule of these names matched. */
export interface SessionQuota {
  readonly quota: QuotaState;
  readonly rules: ReadonlySet<string> | null;
}

/** Where a session finds the quotas in force (QuotaRegistry). */
export interface QuotaSource {
  /** Changes with every config version compiled. */
  readonly generation: number;
  /** Quotas in force in this worker; 0: none (nothing to check). */
  readonly count: number;
  /** The quotas that count statements of `user` on `listener` (of `cluster`), in policy order. */
  entriesFor(listener: string, cluster: string, user: string): readonly SessionQuota[];
}

const NONE: readonly SessionQuota[] = [];

/**
 * The quotas one session's statements go through (those whose users,
 * listeners and clusters lists hold its user, listener and cluster), and the
 * limiters the statement under way was admitted by. The list is chosen again
 * when a new config version was compiled (one integer compare per statement),
 * so added, changed and removed quotas apply to open sessions at once, and
 * after COM_CHANGE_USER.
 *
 * Per statement, when `active`: admit() before it is sent; always release()
 * when its response is complete (or it failed, or the session ended). Every
 * matching quota must admit the statement, in policy order; if one refuses,
 * those that admitted it get their token and slot back.
 */
export class SessionQuotas {
  private readonly taken: Limiter[] = [];
  private entries: readonly SessionQuota[] = NONE;
  private generation = -1;

  constructor(
    private readonly source: QuotaSource,
    private readonly listener: string,
    private readonly cluster: string,
    private user: string,
  ) {}

  /** Some quota is in force in this worker (else admit() need not be called). */
  get active(): boolean {
    return this.source.count !== 0;
  }

  /** Quotas counting this session's statements now. */
  get size(): number {
    this.refresh();
    return this.entries.length;
  }

  /** COM_CHANGE_USER: the new user's quotas from the next statement on. */
  setUser(user: string): void {
    this.release();
    this.user = user;
    this.generation = -1;
  }

  /**
   * null: admitted now (synchronously). An ErrPacket: refused now (REJECT).
   * A promise: the statement waits in a queue (QUEUE); it settles to null
   * (admitted) or the ERR to answer with (queue full, maxWait passed).
   */
  admit(rule: string | null): ErrPacket | null | Promise<ErrPacket | null> {
    if (this.generation !== this.source.generation) this.refresh();
    if (this.entries.length === 0) return null;
    const r = this.run(0, rule);
    if (r === -1) return null;
    if (typeof r === "number") return this.waitFrom(r, rule);
    return r;
  }

  /** Gives back the slots the statement held; call once its response is complete. Idempotent. */
  release(): void {
    const taken = this.taken;
    if (taken.length === 0) return;
    for (let i = 0; i < taken.length; i++) taken[i].release();
    taken.length = 0;
  }

  /** Admits through entries from `from` on: -1 all did; k: entry k must wait; an ERR: refused (REJECT). */
  private run(from: number, rule: string | null): number | ErrPacket {
    const entries = this.entries;
    for (let i = from; i < entries.length; i++) {
      const e = entries[i];
      if (e.rules !== null && (rule === null || !e.rules.has(rule))) continue;
      const q = e.quota;
      const lim = q.limiterFor(this.user);
      if (lim.tryNow()) {
        this.taken.push(lim);
        q.counted("admitted");
        continue;
      }
      if (!q.spec.reject) return i;
      q.counted("rejected");
      const blocked = lim.blockedBy();
      this.undo();
      return q.refusal(this.user, blocked, null);
    }
    return -1;
  }

  private async waitFrom(first: number, rule: string | null): Promise<ErrPacket | null> {
    let k = first;
    // each turn waits for one quota; bounded by the number of entries
    for (let turns = 0; turns < this.entries.length; turns++) {
      const q = this.entries[k].quota;
      const lim = q.limiterFor(this.user);
      const blocked = lim.blockedBy();
      const w = await lim.wait(q.spec.maxQueue, q.spec.maxWaitMs);
      if (w !== Waited.Admitted) {
        q.counted("rejected");
        this.undo();
        return q.refusal(this.user, blocked, w);
      }
      this.taken.push(lim);
      q.counted("queued");
      const r = this.run(k + 1, rule);
      if (r === -1) return null;
      if (typeof r !== "number") return r;
      k = r;
    }
    return null;
  }

  private refresh(): void {
    if (this.generation === this.source.generation) return;
    this.generation = this.source.generation;
    this.entries = this.source.count === 0 ? NONE : this.source.entriesFor(this.listener, this.cluster, this.user);
  }

  private undo(): void {
    const taken = this.taken;
    for (let i = 0; i < taken.length; i++) taken[i].undo();
    taken.length = 0;
  }
}

import type { ErrPacket } from "../protocol/packets/err";
import { Waited, type Limiter } from "./limiter";
import type { QuotaState } from "./quota-state";

/** A quota that may count a session's statements; `rules` non-null: only those a query rule of these names matched. */
export interface SessionQuota {
  readonly quota: QuotaState;
  readonly rules: ReadonlySet<string> | null;
}

/**
 * The quotas one session's statements go through (those whose users,
 * listeners and clusters lists hold its user, listener and cluster; chosen
 * once per session and again after COM_CHANGE_USER), and the limiters the
 * statement under way was admitted by.
 *
 * Per statement: admit() before it is sent, release() when its response is
 * complete (or it failed, or the session ended). Every matching quota must
 * admit the statement, in policy order; if one refuses, those that admitted
 * it get their token and slot back.
 */
export class SessionQuotas {
  private readonly taken: Limiter[] = [];

  constructor(
    private readonly entries: readonly SessionQuota[],
    private readonly user: string,
  ) {}

  /**
   * null: admitted now (synchronously). An ErrPacket: refused now (REJECT).
   * A promise: the statement waits in a queue (QUEUE); it settles to null
   * (admitted) or the ERR to answer with (queue full, maxWait passed).
   */
  admit(rule: string | null): ErrPacket | null | Promise<ErrPacket | null> {
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

  private undo(): void {
    const taken = this.taken;
    for (let i = 0; i < taken.length; i++) taken[i].undo();
    taken.length = 0;
  }
}

import type { QuotaClock } from "./clock";
import { ConcurrencyGate } from "./concurrency-gate";
import { TokenBucket } from "./token-bucket";
import { WaitQueue, type Waiting } from "./wait-queue";

/** How a wait in a limiter's queue ended. */
export const enum Waited {
  Admitted = 0,
  /** maxQueue statements were already waiting: refused at once. */
  QueueFull = 1,
  /** Not admitted within maxWait. */
  Timeout = 2,
}

/** What held a statement back: the rate (no token) or the concurrency (no slot). */
export const enum Blocked {
  Rate = 0,
  Concurrency = 1,
}

interface Waiter extends Waiting {
  resolve(w: Waited): void;
  timer: unknown;
}

/** One worker's share of a quota, as admitted statements see it. */
export interface LimiterShare {
  /** Tokens per second; 0: no rate limit. */
  readonly ratePerSecond: number;
  /** Bucket size (≥ 1 when there is a rate). */
  readonly burst: number;
  /** Slots; null: no concurrency limit. */
  readonly concurrency: number | null;
}

/**
 * One bucket (and/or concurrency gate) with its FIFO of waiting statements:
 * the whole of a shared quota in one worker, or one user's of a per-user quota.
 *
 * A statement is admitted at once only when nobody waits (FIFO: a newcomer
 * never overtakes a waiter) and there is a slot and a token. Waiters are
 * served in order when a token accrues (one timer, set for when the next
 * whole token is due) or a slot is released.
 */
export class Limiter {
  readonly bucket: TokenBucket | null;
  readonly gate: ConcurrencyGate | null;
  private readonly waiters = new WaitQueue<Waiter>();
  private wake: unknown = null;

  constructor(
    private readonly clock: QuotaClock,
    share: LimiterShare,
  ) {
    this.bucket = share.ratePerSecond > 0 ? new TokenBucket(share.ratePerSecond, share.burst, clock.now()) : null;
    this.gate = share.concurrency !== null ? new ConcurrencyGate(share.concurrency) : null;
  }

  /** Statements waiting now. */
  get queued(): number {
    return this.waiters.length;
  }

  /** A new share (fleet change, config change): figures change in place; waiters are served if they now can be. */
  configure(share: LimiterShare): void {
    if (this.bucket !== null) this.bucket.configure(share.ratePerSecond, share.burst, this.clock.now());
    if (this.gate !== null && share.concurrency !== null) this.gate.setLimit(share.concurrency);
    this.pump();
  }

  /** Admits at once (taking a token and a slot) if nobody waits and both are there. */
  tryNow(): boolean {
    return this.waiters.length === 0 && this.take();
  }

  /** Why a statement could not be admitted at once. */
  blockedBy(): Blocked {
    if (this.gate !== null && this.gate.full) return Blocked.Concurrency;
    return Blocked.Rate;
  }

  /** Waits in the FIFO for a token and a slot, for at most `maxWaitMs`; a full queue refuses at once. */
  wait(maxQueue: number, maxWaitMs: number): Promise<Waited> {
    if (this.waiters.length >= maxQueue) return Promise.resolve(Waited.QueueFull);
    return new Promise<Waited>((resolve) => {
      const w: Waiter = { done: false, resolve, timer: null };
      w.timer = this.clock.setTimer(() => {
        if (w.done) return;
        this.waiters.remove(w);
        resolve(Waited.Timeout);
      }, maxWaitMs);
      this.waiters.push(w);
      this.pump();
    });
  }

  /** The statement's response is complete: its slot is free for the next waiter. */
  release(): void {
    if (this.gate === null) return;
    this.gate.release();
    if (this.waiters.length > 0) this.pump();
  }

  /** Undoes an admission (another quota refused the statement): the token back, the slot free. */
  undo(): void {
    this.bucket?.refund();
    this.release();
  }

  /** Admits every waiter now, without tokens or slots (the quota was removed). */
  releaseAll(): void {
    if (this.wake !== null) this.clock.clearTimer(this.wake);
    this.wake = null;
    for (const w of this.waiters.drain()) {
      this.clock.clearTimer(w.timer);
      w.resolve(Waited.Admitted);
    }
  }

  private take(): boolean {
    const gate = this.gate;
    if (gate !== null && gate.full) return false;
    if (this.bucket !== null && !this.bucket.tryTake(this.clock.now())) return false;
    if (gate !== null) gate.tryAcquire();
    return true;
  }

  /** Serves waiters in order while tokens and slots last; else sets the timer for the next token. */
  private pump(): void {
    if (this.wake !== null) {
      this.clock.clearTimer(this.wake);
      this.wake = null;
    }
    while (this.waiters.length > 0) {
      if (!this.take()) {
        if (this.gate !== null && this.gate.full) return; // a release pumps again
        const ms = this.bucket!.msUntilToken(this.clock.now());
        if (ms === Infinity) return;
        this.wake = this.clock.setTimer(() => {
          this.wake = null;
          this.pump();
        }, Math.max(1, Math.ceil(ms)));
        return;
      }
      const w = this.waiters.shift()!;
      this.clock.clearTimer(w.timer);
      w.resolve(Waited.Admitted);
    }
  }
}

/**
 * A token bucket: `rate` tokens per second flow in continuously, up to
 * `capacity`; a statement takes one whole token. Fractions accumulate, so a
 * late timer loses nothing: the rate over any long span is exactly `rate`
 * while there is demand. Pure: the caller passes the time (ms, monotonic).
 */
export class TokenBucket {
  private tokens: number;
  private last: number;
  private perMs: number;
  private cap: number;

  /** Starts full (a quiet spell's worth of burst). */
  constructor(ratePerSecond: number, capacity: number, now: number) {
    this.perMs = ratePerSecond / 1000;
    this.cap = capacity;
    this.tokens = capacity;
    this.last = now;
  }

  get rate(): number {
    return this.perMs * 1000;
  }

  get capacity(): number {
    return this.cap;
  }

  /** Tokens now (fractional), for tests and figures. */
  available(now: number): number {
    this.refill(now);
    return this.tokens;
  }

  /** New figures (a config change or a new fleet share); tokens held so far are kept, clamped to the new capacity. */
  configure(ratePerSecond: number, capacity: number, now: number): void {
    this.refill(now);
    this.perMs = ratePerSecond / 1000;
    this.cap = capacity;
    if (this.tokens > capacity) this.tokens = capacity;
  }

  /** Takes one token if a whole one is there. */
  tryTake(now: number): boolean {
    this.refill(now);
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }

  /** Gives back a token taken for a statement that was refused by another quota after all. */
  refund(): void {
    this.tokens = Math.min(this.cap, this.tokens + 1);
  }

  /** Milliseconds until a whole token is there (0: now; Infinity: never, rate 0). */
  msUntilToken(now: number): number {
    this.refill(now);
    if (this.tokens >= 1) return 0;
    if (this.perMs <= 0) return Infinity;
    return (1 - this.tokens) / this.perMs;
  }

  private refill(now: number): void {
    const dt = now - this.last;
    if (dt <= 0) return;
    this.last = now;
    const t = this.tokens + dt * this.perMs;
    this.tokens = t > this.cap ? this.cap : t;
  }
}

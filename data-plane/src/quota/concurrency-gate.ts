/**
 * Statements running at once: a slot is taken when a statement is admitted
 * and given back when its response is complete. A lowered limit takes effect
 * as running statements finish (none is interrupted).
 */
export class ConcurrencyGate {
  private running = 0;

  constructor(private max: number) {}

  get limit(): number {
    return this.max;
  }

  get inUse(): number {
    return this.running;
  }

  setLimit(limit: number): void {
    this.max = limit;
  }

  get full(): boolean {
    return this.running >= this.max;
  }

  tryAcquire(): boolean {
    if (this.running >= this.max) return false;
    this.running++;
    return true;
  }

  release(): void {
    if (this.running > 0) this.running--;
  }
}

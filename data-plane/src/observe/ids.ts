import { randomFillSync } from "node:crypto";

/**
 * Random span and trace ids from a pool refilled 4 KiB at a time (one
 * getrandom call per 512 span ids instead of one per id).
 */
export class IdPool {
  private readonly buf = Buffer.allocUnsafe(4096);
  private pos = this.buf.length;

  private take(n: number): number {
    if (this.pos + n > this.buf.length) {
      randomFillSync(this.buf);
      this.pos = 0;
    }
    const at = this.pos;
    this.pos += n;
    return at;
  }

  /** 16 hex digits, never all zero. */
  spanId(): string {
    for (;;) {
      const at = this.take(8);
      const id = this.buf.toString("hex", at, at + 8);
      if (id !== "0000000000000000") return id;
    }
  }

  /** 32 hex digits, never all zero. */
  traceId(): string {
    for (;;) {
      const at = this.take(16);
      const id = this.buf.toString("hex", at, at + 16);
      if (id !== "00000000000000000000000000000000") return id;
    }
  }
}

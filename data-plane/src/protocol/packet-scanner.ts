import { Command } from "./constants";

/** Bits returned by PacketScanner.scan(). */
export const enum ScanEvent {
  None = 0,
  /** A COM_QUIT packet started in this chunk. */
  Quit = 0x1,
  /** A logical packet exceeds maxPacketSize (its bytes were still counted). */
  Oversize = 0x2,
  /**
   * A command selected by `interceptMask` starts at `interceptOffset` (its
   * first payload byte) in this chunk. The scan stopped there: the bytes
   * after that offset were not looked at, and the scanner sits inside that
   * packet with `remaining` payload bytes (command byte included) to come.
   */
  Intercept = 0x4,
}

/** COM_QUERY texts longer than this are never KILL statements worth intercepting. */
export const INTERCEPT_QUERY_MAX = 1024;

/** First byte of a COM_QUERY text that may begin a KILL statement (after spaces or comments). */
function mayStartKill(b: number): boolean {
  // K k space \t \n \r / # -
  return b === 0x4b || b === 0x6b || b === 0x20 || b === 0x09 || b === 0x0a || b === 0x0d || b === 0x2f || b === 0x23 || b === 0x2d;
}

/**
 * The forwarding hot path's packet-boundary tracker. It looks at socket chunks
 * that are forwarded as-is, never copies or slices them, allocates nothing and
 * creates no objects per packet: all state lives in number fields (a header
 * straddling chunks is accumulated in `headerAcc`, our 4-byte scratch).
 *
 * With `trackCommands`, the first payload byte of every packet with sequence
 * id 0 that does not continue a 0xFFFFFF packet is recorded as a command
 * (client → server direction): `lastCommand`, `commandCount`, and ScanEvent.Quit
 * for a 1-byte COM_QUIT. This is where per-statement features hook in later.
 *
 * Not thread-safe (nothing is); one scanner per direction per session.
 */
export class PacketScanner {
  /** Payload bytes of the current wire packet still to come. */
  remaining: number;
  /** Header bytes collected so far when a header straddles chunks (0..3). */
  headerFill: number;
  headerAcc: number;
  /** The previous wire packet was 0xFFFFFF bytes: the next one continues it. */
  continued: boolean;
  /** Payload length of the current logical packet so far. */
  logicalLength: number;
  /** A command packet's header was seen; its first payload byte is next. */
  awaitingCommand: boolean;
  /** First byte of the last command packet, or -1. */
  lastCommand: number;
  commandCount: number;
  /**
   * Bit c set (c < 32): stop at command c and report ScanEvent.Intercept.
   * COM_QUERY is reported only when its text is at most INTERCEPT_QUERY_MAX
   * bytes and starts like a KILL statement (one byte is looked at).
   */
  interceptMask: number;
  /** Offset of the intercepted command byte in the last scanned chunk, or -1. */
  interceptOffset: number;
  readonly trackCommands: boolean;
  readonly maxPacketSize: number;

  constructor(trackCommands: boolean, maxPacketSize: number = Number.MAX_SAFE_INTEGER) {
    this.remaining = 0;
    this.headerFill = 0;
    this.headerAcc = 0;
    this.continued = false;
    this.logicalLength = 0;
    this.awaitingCommand = false;
    this.lastCommand = -1;
    this.commandCount = 0;
    this.interceptMask = 0;
    this.interceptOffset = -1;
    this.trackCommands = trackCommands;
    this.maxPacketSize = maxPacketSize;
  }

  /** True between packets: no partial header, payload or continuation pending. */
  atBoundary(): boolean {
    return this.remaining === 0 && this.headerFill === 0 && !this.continued;
  }

  /**
   * After the session consumed an intercepted packet itself (the bytes from
   * `interceptOffset` on were never scanned): back to a packet boundary.
   */
  resetToBoundary(): void {
    this.remaining = 0;
    this.headerFill = 0;
    this.headerAcc = 0;
    this.continued = false;
    this.awaitingCommand = false;
  }

  private wantsIntercept(cmd: number, chunk: Uint8Array, i: number): boolean {
    if (cmd !== Command.Query) return true;
    if (this.logicalLength > INTERCEPT_QUERY_MAX + 1) return false;
    return i + 1 >= chunk.length || mayStartKill(chunk[i + 1]);
  }

  /** Advances over `chunk`; returns ScanEvent bits. */
  scan(chunk: Uint8Array): number {
    const n = chunk.length;
    let i = 0;
    let events = 0;
    while (i < n) {
      const rem = this.remaining;
      if (rem > 0) {
        if (this.awaitingCommand) {
          this.awaitingCommand = false;
          const cmd = chunk[i];
          this.lastCommand = cmd;
          this.commandCount++;
          if (cmd === Command.Quit && this.logicalLength === 1) events |= ScanEvent.Quit;
          if (cmd < 32 && ((this.interceptMask >>> cmd) & 1) !== 0 && rem < 0xffffff && this.wantsIntercept(cmd, chunk, i)) {
            this.interceptOffset = i;
            return events | ScanEvent.Intercept;
          }
        }
        const avail = n - i;
        if (rem >= avail) {
          this.remaining = rem - avail;
          return events;
        }
        i += rem;
        this.remaining = 0;
        continue;
      }
      let len: number;
      let seq: number;
      if (this.headerFill === 0 && n - i >= 4) {
        len = chunk[i] | (chunk[i + 1] << 8) | (chunk[i + 2] << 16);
        seq = chunk[i + 3];
        i += 4;
      } else {
        this.headerAcc |= chunk[i++] << (this.headerFill << 3);
        if (++this.headerFill < 4) continue;
        len = this.headerAcc & 0xffffff;
        seq = this.headerAcc >>> 24;
        this.headerFill = 0;
        this.headerAcc = 0;
      }
      const cont = this.continued;
      this.continued = len === 0xffffff;
      const logical = cont ? this.logicalLength + len : len;
      this.logicalLength = logical;
      if (logical > this.maxPacketSize) events |= ScanEvent.Oversize;
      if (len === 0) continue;
      this.remaining = len;
      if (seq === 0 && !cont && this.trackCommands) this.awaitingCommand = true;
    }
    return events;
  }
}

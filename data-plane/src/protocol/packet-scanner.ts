import { Command } from "./constants";

/** Bits returned by PacketScanner.scan(). */
export const enum ScanEvent {
  None = 0,
  /** A COM_QUIT packet started in this chunk. */
  Quit = 0x1,
  /** A logical packet exceeds maxPacketSize (its bytes were still counted). */
  Oversize = 0x2,
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
    this.trackCommands = trackCommands;
    this.maxPacketSize = maxPacketSize;
  }

  /** True between packets: no partial header, payload or continuation pending. */
  atBoundary(): boolean {
    return this.remaining === 0 && this.headerFill === 0 && !this.continued;
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

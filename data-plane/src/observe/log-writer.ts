import { Buffer } from "node:buffer";
import * as fs from "node:fs";

/**
 * Writes lines to a file descriptor without ever blocking the caller: lines
 * are queued (bounded by `maxBufferBytes`; a line that does not fit is dropped
 * and counted) and written by asynchronous fs.write calls (the libuv thread
 * pool), one call per batch of WHOLE lines of at most `maxWriteBytes` (a
 * longer single line goes alone). Several processes may share the file when
 * it is opened with O_APPEND (each write lands whole at the end), or a pipe
 * when batches stay ≤ PIPE_BUF (4096 bytes: such writes are atomic).
 */
export interface LineWriterOptions {
  fd: number;
  /** Bytes queued at most; default 4 MiB. */
  maxBufferBytes?: number;
  /** Bytes per write call; default 64 KiB. */
  maxWriteBytes?: number;
  /** A line was dropped (queue full, or its batch failed to write). */
  onDrop?(lines: number): void;
  /** A write failed with something other than EAGAIN (reported once per distinct code). */
  onError?(err: Error): void;
  /** Close `fd` on close() (a file we opened; not stdout). */
  ownsFd?: boolean;
}

export const DEFAULT_LOG_BUFFER_BYTES = 4 * 1024 * 1024;
export const DEFAULT_LOG_WRITE_BYTES = 64 * 1024;
/** Batch size for pipes and terminals (PIPE_BUF on Linux). */
export const PIPE_WRITE_BYTES = 4096;
const EAGAIN_RETRY_MS = 10;

export class LineWriter {
  private readonly fd: number;
  private readonly maxBufferBytes: number;
  private readonly maxWriteBytes: number;
  private readonly options: LineWriterOptions;
  private queue: string[] = [];
  private queuedBytes = 0;
  private writing = false;
  private closed = false;
  private readonly reported = new Set<string>();
  private idleWaiters: (() => void)[] = [];
  /** Lines dropped so far. */
  dropped = 0;
  /** Lines written so far. */
  written = 0;

  constructor(options: LineWriterOptions) {
    this.fd = options.fd;
    this.options = options;
    this.maxBufferBytes = options.maxBufferBytes ?? DEFAULT_LOG_BUFFER_BYTES;
    this.maxWriteBytes = options.maxWriteBytes ?? DEFAULT_LOG_WRITE_BYTES;
  }

  /** Queues one line (a "\n" is appended). Never blocks, never throws. */
  write(line: string): void {
    if (this.closed) return;
    const bytes = Buffer.byteLength(line) + 1;
    if (this.queuedBytes + bytes > this.maxBufferBytes) {
      this.drop(1);
      return;
    }
    this.queue.push(line);
    this.queuedBytes += bytes;
    if (!this.writing) {
      this.writing = true;
      setImmediate(() => this.flush());
    }
  }

  /** Resolves once everything queued so far is written (or dropped). */
  idle(): Promise<void> {
    if (!this.writing) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /** Writes what is queued, then stops (closing the fd if ours). */
  async close(): Promise<void> {
    await this.idle();
    this.closed = true;
    if (this.options.ownsFd === true) {
      await new Promise<void>((resolve) => fs.close(this.fd, () => resolve()));
    }
  }

  private drop(lines: number): void {
    this.dropped += lines;
    this.options.onDrop?.(lines);
  }

  private flush(): void {
    if (this.queue.length === 0) {
      this.writing = false;
      const w = this.idleWaiters;
      this.idleWaiters = [];
      for (const f of w) f();
      return;
    }
    // whole lines up to maxWriteBytes (at least one)
    let n = 0;
    let size = 0;
    while (n < this.queue.length) {
      const b = Buffer.byteLength(this.queue[n]) + 1;
      if (n > 0 && size + b > this.maxWriteBytes) break;
      size += b;
      n++;
    }
    const lines = this.queue.splice(0, n);
    this.queuedBytes -= size;
    this.writeAll(Buffer.from(lines.join("\n") + "\n"), lines.length);
  }

  private writeAll(buf: Buffer, lines: number): void {
    fs.write(this.fd, buf, 0, buf.length, null, (err, n) => {
      if (err !== null) {
        if (err.code === "EAGAIN") {
          setTimeout(() => this.writeAll(buf, lines), EAGAIN_RETRY_MS);
          return;
        }
        if (!this.reported.has(err.code ?? err.message)) {
          this.reported.add(err.code ?? err.message);
          this.options.onError?.(err);
        }
        this.drop(lines);
        this.flush();
        return;
      }
      if (n < buf.length) {
        this.writeAll(buf.subarray(n), lines);
        return;
      }
      this.written += lines;
      this.flush();
    });
  }
}

/** Opens `file` for appending (created 0640 if missing), for a LineWriter shared by several processes. */
export function openAppend(file: string): number {
  return fs.openSync(file, fs.constants.O_WRONLY | fs.constants.O_APPEND | fs.constants.O_CREAT, 0o640);
}

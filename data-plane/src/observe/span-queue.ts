import { ExportResultCode, type ExportResult } from "@opentelemetry/core";
import { spanCount, type SpanData } from "./otlp-encode";

/** What SpanQueue sends batches to: an OTLPExporterBase<SpanData[]> (worker-tracing.ts), or a test's. */
export interface SpanDataExporter {
  export(spans: SpanData[], resultCallback: (result: ExportResult) => void): void;
  shutdown(): Promise<void>;
}

export interface SpanQueueOptions {
  /** Spans waiting for export at most; past it new spans are dropped (counted). */
  maxQueueSize: number;
  /** Spans per export request. */
  maxBatchSize: number;
  /** A partial batch is sent after this long. */
  scheduledDelayMs: number;
  /** Told how many spans were dropped, and why. */
  onDrop?(count: number, reason: "queue_full" | "export_failed"): void;
  /** Told how many spans a collector accepted. */
  onExported?(count: number): void;
  /** Told an export failed (once per failed request). */
  onExportError?(err: Error | undefined): void;
}

export const DEFAULT_SPAN_QUEUE: Omit<SpanQueueOptions, "onDrop" | "onExported" | "onExportError"> = {
  maxQueueSize: 32768,
  maxBatchSize: 2048,
  scheduledDelayMs: 1000,
};

/**
 * A batch span processor with a bounded queue that never makes the data path
 * wait: `add` is an array push (or a drop when the queue is full); batches
 * go to the exporter from a timer or when a batch is full, ONE request at a
 * time — while a collector is slow the queue fills and further spans are
 * dropped rather than piling up requests or memory. Written instead of the
 * SDK's BatchSpanProcessor because that one reports drops only as a log line,
 * and we count them (mysqlgw_trace_spans_dropped_total).
 */
export class SpanQueue {
  private queue: SpanData[] = [];
  /** Spans the queue holds (a statement item stands for its phase spans too: spanCount). */
  private queuedSpans = 0;
  private inFlight: Promise<void> | null = null;
  private timer: NodeJS.Timeout | null = null;
  private closed = false;
  /** Spans dropped since start, by reason (also reported through onDrop). */
  dropped = { queueFull: 0, exportFailed: 0 };
  exported = 0;

  constructor(
    private readonly exporter: SpanDataExporter,
    private readonly options: SpanQueueOptions,
  ) {}

  /** Spans waiting for export. */
  get queued(): number {
    return this.queuedSpans;
  }

  /** Queues one finished span (or drops it, counted, when the queue is full). */
  add(span: SpanData): void {
    if (this.closed) return;
    const n = spanCount(span);
    if (this.queuedSpans + n > this.options.maxQueueSize) {
      this.dropped.queueFull += n;
      this.options.onDrop?.(n, "queue_full");
      return;
    }
    this.queue.push(span);
    this.queuedSpans += n;
    if (this.queuedSpans >= this.options.maxBatchSize) {
      if (this.inFlight === null) this.flushOne();
    } else if (this.timer === null) {
      this.timer = setTimeout(() => {
        this.timer = null;
        if (this.inFlight === null) this.flushOne();
      }, this.options.scheduledDelayMs);
      this.timer.unref();
    }
  }

  /** Sends one batch if none is in flight; when it ends, the next one if the queue holds a full batch (or a timer for the rest). */
  private flushOne(): Promise<void> {
    if (this.inFlight !== null) return this.inFlight;
    if (this.queue.length === 0) return Promise.resolve();
    let items = 0;
    let spans = 0;
    while (items < this.queue.length && spans < this.options.maxBatchSize) spans += spanCount(this.queue[items++]!);
    const batch = this.queue.splice(0, items);
    this.queuedSpans -= spans;
    this.inFlight = new Promise<void>((resolve) => {
      let done = false;
      const finish = (r: ExportResult): void => {
        if (done) return;
        done = true;
        if (r.code === ExportResultCode.SUCCESS) {
          this.exported += spans;
          this.options.onExported?.(spans);
        } else {
          this.dropped.exportFailed += spans;
          this.options.onDrop?.(spans, "export_failed");
          this.options.onExportError?.(r.error);
        }
        resolve();
      };
      try {
        this.exporter.export(batch, finish);
      } catch (err) {
        finish({ code: ExportResultCode.FAILED, error: err as Error });
      }
    }).then(() => {
      this.inFlight = null;
      if (this.queuedSpans >= this.options.maxBatchSize) void this.flushOne();
      else if (this.queue.length > 0 && this.timer === null && !this.closed) {
        this.timer = setTimeout(() => {
          this.timer = null;
          void this.flushOne();
        }, this.options.scheduledDelayMs);
        this.timer.unref();
      }
    });
    return this.inFlight;
  }

  /** Exports everything queued now (bounded by the exporter's own timeout per request). */
  async forceFlush(): Promise<void> {
    for (let guard = 0; guard < 10_000 && (this.queue.length > 0 || this.inFlight !== null); guard++) {
      await (this.inFlight ?? this.flushOne());
    }
  }

  /**
   * Exports what is queued, for at most `timeoutMs` in all (a dead collector must
   * not hold a draining worker for one timeout per batch); what is left then is
   * dropped and counted as export_failed.
   */
  async shutdown(timeoutMs: number): Promise<void> {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, timeoutMs);
      timer.unref();
    });
    await Promise.race([this.forceFlush(), deadline]);
    this.closed = true;
    if (this.queuedSpans > 0) {
      const n = this.queuedSpans;
      this.queue = [];
      this.queuedSpans = 0;
      this.dropped.exportFailed += n;
      this.options.onDrop?.(n, "export_failed");
    }
    await Promise.race([this.exporter.shutdown(), deadline]);
    clearTimeout(timer);
  }
}

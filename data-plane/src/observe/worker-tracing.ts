/**
 * Starts OpenTelemetry tracing in one worker process (--otlp-endpoint): an
 * OTLP exporter (HTTP JSON or gRPC) behind a bounded SpanQueue, a tracer
 * provider, and the tracing observer registered on `observers`. Export
 * failures and drops are counted in the worker's metrics registry and logged
 * at most once a minute; the data path never waits for the collector.
 */
import { OTLPTraceExporter as OTLPHttpTraceExporter } from "@opentelemetry/exporter-trace-otlp-http";
import { OTLPTraceExporter as OTLPGrpcTraceExporter } from "@opentelemetry/exporter-trace-otlp-grpc";
import { resourceFromAttributes } from "@opentelemetry/resources";
import { AlwaysOnSampler, BasicTracerProvider, type SpanExporter } from "@opentelemetry/sdk-trace-base";
import { ATTR_SERVICE_INSTANCE_ID, ATTR_SERVICE_NAME } from "@opentelemetry/semantic-conventions";
import type { Logger } from "pino";
import { Counter, type Registry } from "prom-client";
import { observers as processObservers, type Observers } from "./observer";
import { SpanQueue } from "./span-queue";
import { createTracingObserver } from "./tracing";
import type { TracingFlags } from "./tracing-flags";

export interface WorkerTracing {
  readonly queue: SpanQueue;
  /** Exports what is queued (bounded by --otlp-timeout per request), unregisters the observer. */
  close(): Promise<void>;
}

export interface WorkerTracingOptions {
  flags: TracingFlags;
  /** Data-plane id and worker index: service.instance.id "<id>/<worker>". */
  id: string;
  worker: number;
  logger: Logger;
  registry: Registry;
  observers?: Observers;
  /** Tests: an exporter instead of the OTLP one. */
  exporter?: SpanExporter;
}

const WARN_INTERVAL_MS = 60_000;

/** null when tracing is off (no --otlp-endpoint). */
export function startWorkerTracing(options: WorkerTracingOptions): WorkerTracing | null {
  const { flags, logger } = options;
  if (flags.otlpEndpoint === "" && options.exporter === undefined) return null;
  const obs = options.observers ?? processObservers;
  const registers = [options.registry];
  const exported = new Counter({ name: "mysqlgw_trace_spans_exported_total", help: "Spans a collector accepted.", registers });
  const dropped = new Counter({
    name: "mysqlgw_trace_spans_dropped_total",
    help: "Spans dropped: queue_full (the export queue of --otlp-queue-size was full: the collector is slow or down) or export_failed (the collector refused or did not answer).",
    labelNames: ["reason"],
    registers,
  });
  let lastWarn = 0;
  const warn = (msg: string, fields: Record<string, unknown>): void => {
    const now = Date.now();
    if (now - lastWarn < WARN_INTERVAL_MS) return;
    lastWarn = now;
    logger.warn({ endpoint: flags.otlpEndpoint, protocol: flags.otlpProtocol, ...fields }, msg);
  };

  const exporter =
    options.exporter ??
    (flags.otlpProtocol === "grpc"
      ? new OTLPGrpcTraceExporter({ url: flags.otlpEndpoint, timeoutMillis: flags.exportTimeoutMs })
      : new OTLPHttpTraceExporter({ url: flags.otlpEndpoint, timeoutMillis: flags.exportTimeoutMs, concurrencyLimit: 1 }));
  const queue = new SpanQueue(exporter, {
    maxQueueSize: flags.queueSize,
    maxBatchSize: flags.batchSize,
    scheduledDelayMs: flags.exportDelayMs,
    onExported: (n) => exported.inc(n),
    onDrop: (n, reason) => {
      dropped.inc({ reason }, n);
      if (reason === "queue_full") warn("trace export queue full; spans are dropped (mysqlgw_trace_spans_dropped_total): is the collector slow or down? raise --otlp-queue-size or lower Gateway.tracing.samplingRatio", {});
    },
    onExportError: (err) => warn("trace export failed; spans are dropped (mysqlgw_trace_spans_dropped_total{reason=\"export_failed\"}): check --otlp-endpoint and the collector", { err: err?.message }),
  });
  const provider = new BasicTracerProvider({
    sampler: new AlwaysOnSampler(), // sampling is ours (policy, tail keeps), decided before a span is made
    resource: resourceFromAttributes({ [ATTR_SERVICE_NAME]: flags.serviceName, [ATTR_SERVICE_INSTANCE_ID]: `${options.id}/${options.worker}` }),
    spanProcessors: [queue],
  });
  const observer = createTracingObserver({ tracer: provider.getTracer("mysqlgw"), epochOffsetMs: obs.epochOffsetMs, rawSql: flags.rawSql });
  obs.add(observer);
  logger.info({ endpoint: flags.otlpEndpoint, protocol: flags.otlpProtocol }, "exporting traces");
  return {
    queue,
    async close() {
      obs.remove(observer);
      await provider.shutdown().catch((err: Error) => logger.warn({ err: err.message }, "trace export at shutdown failed; the last spans are lost"));
    },
  };
}

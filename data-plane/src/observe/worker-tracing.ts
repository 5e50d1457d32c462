/**
 * Starts OpenTelemetry tracing in one worker process (--otlp-endpoint): the
 * OpenTelemetry JS OTLP transports (HTTP, or gRPC over @grpc/grpc-js: retries,
 * timeouts, compression settings from OTEL_EXPORTER_OTLP_* as usual) carrying
 * protobuf ExportTraceServiceRequests that otlp-encode.ts writes, behind a
 * bounded SpanQueue, and the tracing observer registered on `observers`. Export
 * failures and drops are counted in the worker's metrics registry and logged at
 * most once a minute; the data path never waits for the collector.
 */
import type { IExportTraceServiceResponse, ISerializer } from "@opentelemetry/otlp-transformer";
import { ATTR_SERVICE_INSTANCE_ID, ATTR_SERVICE_NAME } from "@opentelemetry/semantic-conventions";
import type { Logger } from "pino";
import { Counter, type Registry } from "prom-client";
import { observers as processObservers, type Observers } from "./observer";
import { encodeExportTraceServiceRequest, type EncodeContext, type SpanData } from "./otlp-encode";
import { SpanQueue, type SpanDataExporter } from "./span-queue";
import { createTracingObserver } from "./tracing";
import type { TracingFlags } from "./tracing-flags";

const SCOPE_NAME = "mysqlgw";

/** An OTLP trace exporter for our SpanData over HTTP (application/x-protobuf) or gRPC. */
export function createOtlpExporter(flags: Pick<TracingFlags, "otlpEndpoint" | "otlpProtocol" | "exportTimeoutMs">, ctx: EncodeContext): SpanDataExporter {
  // loaded only when tracing is on: @grpc/grpc-js and the OTLP packages take ~0.3 s of CPU to load in every process
  /* eslint-disable @typescript-eslint/no-require-imports */
  const { OTLPExporterBase } = require("@opentelemetry/otlp-exporter-base") as typeof import("@opentelemetry/otlp-exporter-base");
  const { convertLegacyHttpOptions, createOtlpHttpExportDelegate } = require("@opentelemetry/otlp-exporter-base/node-http") as typeof import("@opentelemetry/otlp-exporter-base/node-http");
  const { ProtobufTraceSerializer } = require("@opentelemetry/otlp-transformer") as typeof import("@opentelemetry/otlp-transformer");
  /* eslint-enable @typescript-eslint/no-require-imports */
  const serializer: ISerializer<SpanData[], IExportTraceServiceResponse> = {
    serializeRequest: (spans) => encodeExportTraceServiceRequest(spans, ctx),
    deserializeResponse: (data) => ProtobufTraceSerializer.deserializeResponse(data),
  };
  const metricsHelper = { name: "span" as const, countItems: (spans: SpanData[]) => spans.length };
  if (flags.otlpProtocol === "grpc") {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const { convertLegacyOtlpGrpcOptions, createOtlpGrpcExportDelegate } = require("@opentelemetry/otlp-grpc-exporter-base") as typeof import("@opentelemetry/otlp-grpc-exporter-base");
    return new OTLPExporterBase<SpanData[]>(
      createOtlpGrpcExportDelegate(
        convertLegacyOtlpGrpcOptions({ url: flags.otlpEndpoint, timeoutMillis: flags.exportTimeoutMs }, "TRACES"),
        serializer,
        "otlp_grpc_span_exporter",
        metricsHelper,
        undefined,
        "TraceExportService",
        "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
      ),
    );
  }
  return new OTLPExporterBase<SpanData[]>(
    createOtlpHttpExportDelegate(
      convertLegacyHttpOptions({ url: flags.otlpEndpoint, timeoutMillis: flags.exportTimeoutMs, concurrencyLimit: 1 }, "TRACES", "v1/traces", { "Content-Type": "application/x-protobuf" }),
      serializer,
      "otlp_http_span_exporter",
      metricsHelper,
      undefined,
    ),
  );
}

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
  exporter?: SpanDataExporter;
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
    createOtlpExporter(flags, {
      resource: { [ATTR_SERVICE_NAME]: flags.serviceName, [ATTR_SERVICE_INSTANCE_ID]: `${options.id}/${options.worker}` },
      scopeName: SCOPE_NAME,
      scopeVersion: "",
    });
  const queue = new SpanQueue(exporter, {
    maxQueueSize: flags.queueSize,
    maxBatchSize: flags.batchSize,
    scheduledDelayMs: flags.exportDelayMs,
    onExported: (n) => exported.inc(n),
    onDrop: (n, reason) => {
      dropped.inc({ reason }, n);
      if (reason === "queue_full") warn("trace export queue full; spans are dropped (mysqlgw_trace_spans_dropped_total): is the collector slow or down? raise --otlp-queue-size or lower Gateway.tracing.samplingRatio", {});
    },
    onExportError: (err) => warn('trace export failed; spans are dropped (mysqlgw_trace_spans_dropped_total{reason="export_failed"}): check --otlp-endpoint and the collector', { err: err?.message }),
  });
  const observer = createTracingObserver({ sink: queue, epochOffsetMs: obs.epochOffsetMs, rawSql: flags.rawSql });
  obs.add(observer);
  // one span per statement on every listener: pass-through listeners read their statements too (routed engine, own connection)
  obs.everyStatement = true;
  logger.info({ endpoint: flags.otlpEndpoint, protocol: flags.otlpProtocol }, "exporting traces");
  return {
    queue,
    async close() {
      obs.remove(observer);
      await queue.shutdown(flags.exportTimeoutMs).catch((err: Error) => logger.warn({ err: err.message }, "trace export at shutdown failed; the last spans are lost"));
    },
  };
}

/** Deployment settings of OpenTelemetry tracing (which statements are traced is policy: Gateway.tracing). */
export interface TracingFlags {
  /** Collector URL; "" = tracing off. OTLP/HTTP: http://HOST:4318 (/v1/traces added when no path is given); gRPC: http://HOST:4317. */
  otlpEndpoint: string;
  otlpProtocol: "http" | "grpc";
  /** service.name of the spans. */
  serviceName: string;
  /** Spans waiting for export per worker at most; past it they are dropped (mysqlgw_trace_spans_dropped_total). */
  queueSize: number;
  /** Spans per export request. */
  batchSize: number;
  /** A partial batch goes out after this long. */
  exportDelayMs: number;
  /** Bound on one export request. */
  exportTimeoutMs: number;
  /** db.query.text is the raw statement (literals included) instead of its digest. */
  rawSql: boolean;
}

export const TRACING_OPTIONS = {
  "otlp-endpoint": { type: "string" },
  "otlp-protocol": { type: "string" },
  "otlp-service-name": { type: "string" },
  "otlp-queue-size": { type: "string" },
  "otlp-batch-size": { type: "string" },
  "otlp-export-delay": { type: "string" },
  "otlp-timeout": { type: "string" },
  "trace-raw-sql": { type: "boolean" },
} as const;

export const TRACING_USAGE = `  --otlp-endpoint URL           export OpenTelemetry traces to this collector [MYSQLGW_OTLP_ENDPOINT]
                                (default: off; e.g. http://127.0.0.1:4318 for http, http://127.0.0.1:4317 for grpc;
                                which statements: policy Gateway.tracing)
  --otlp-protocol http|grpc     OTLP/HTTP (JSON) or OTLP/gRPC [MYSQLGW_OTLP_PROTOCOL] (default http)
  --otlp-service-name NAME      service.name of the spans [MYSQLGW_OTLP_SERVICE_NAME] (default mysqlgw)
  --otlp-queue-size N           spans waiting for export per worker, more are dropped [MYSQLGW_OTLP_QUEUE_SIZE] (default 32768)
  --otlp-batch-size N           spans per export request [MYSQLGW_OTLP_BATCH_SIZE] (default 2048)
  --otlp-export-delay MS        a partial batch is sent after this long [MYSQLGW_OTLP_EXPORT_DELAY] (default 1000)
  --otlp-timeout MS             bound on one export request [MYSQLGW_OTLP_TIMEOUT] (default 10000)
  --trace-raw-sql               db.query.text is the raw statement, literals included (default: its digest)
`;

export interface TracingFlagHelpers {
  pick(flag: string, envName: string): string | undefined;
  int(flag: string, envName: string, dflt: number, min: number): number;
  flag(name: string): string | boolean | undefined;
  error(message: string): Error;
}

export function parseTracingFlags(h: TracingFlagHelpers): TracingFlags {
  const raw = h.pick("otlp-endpoint", "MYSQLGW_OTLP_ENDPOINT") ?? "";
  const protocol = h.pick("otlp-protocol", "MYSQLGW_OTLP_PROTOCOL") ?? "http";
  if (protocol !== "http" && protocol !== "grpc") {
    throw h.error(`--otlp-protocol (or MYSQLGW_OTLP_PROTOCOL) must be http or grpc, got "${protocol}"`);
  }
  let otlpEndpoint = "";
  if (raw !== "" && raw !== "off") {
    let u: URL;
    try {
      u = new URL(raw);
    } catch {
      throw h.error(`--otlp-endpoint "${raw}" is not a URL; use e.g. http://127.0.0.1:4318 (http) or http://127.0.0.1:4317 (grpc)`);
    }
    if (u.protocol !== "http:" && u.protocol !== "https:") throw h.error(`--otlp-endpoint "${raw}" must start with http:// or https://`);
    // OTLP/HTTP: the signal path is added to a bare collector address, as OTEL_EXPORTER_OTLP_ENDPOINT does
    if (protocol === "http" && (u.pathname === "" || u.pathname === "/")) u.pathname = "/v1/traces";
    otlpEndpoint = protocol === "grpc" ? `${u.protocol}//${u.host}` : u.toString();
  }
  const serviceName = h.pick("otlp-service-name", "MYSQLGW_OTLP_SERVICE_NAME") ?? "mysqlgw";
  if (serviceName.trim() === "") throw h.error("--otlp-service-name must not be empty");
  const queueSize = h.int("otlp-queue-size", "MYSQLGW_OTLP_QUEUE_SIZE", 32768, 1);
  const batchSize = h.int("otlp-batch-size", "MYSQLGW_OTLP_BATCH_SIZE", 2048, 1);
  if (batchSize > queueSize) throw h.error(`--otlp-batch-size (${batchSize}) must be at most --otlp-queue-size (${queueSize})`);
  return {
    otlpEndpoint,
    otlpProtocol: protocol,
    serviceName,
    queueSize,
    batchSize,
    exportDelayMs: h.int("otlp-export-delay", "MYSQLGW_OTLP_EXPORT_DELAY", 1000, 1),
    exportTimeoutMs: h.int("otlp-timeout", "MYSQLGW_OTLP_TIMEOUT", 10000, 1),
    rawSql: h.flag("trace-raw-sql") === true,
  };
}

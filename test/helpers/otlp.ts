/**
 * Trace receivers that speak the real wire formats, for tests (no collector or
 * Jaeger binary here):
 *  - OTLP/HTTP: POST /v1/traces, JSON (what @opentelemetry/exporter-trace-otlp-http
 *    sends) or protobuf (application/x-protobuf), ExportTraceServiceRequest;
 *  - OTLP/gRPC: opentelemetry.proto.collector.trace.v1.TraceService/Export;
 *  - a Jaeger query API (GET /api/traces/{id}, GET /api/traces?service=…&tags=…,
 *    GET /api/services) serving what the receivers got, in Jaeger's JSON format.
 * Every receiver binds 127.0.0.1 on a free port.
 */
import * as fs from "node:fs";
import * as http from "node:http";
import * as path from "node:path";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";

export type AttrValue = string | number | boolean;

/** One span as received, decoded from either encoding. */
export interface ReceivedSpan {
  traceId: string;
  spanId: string;
  /** "" for a root span. */
  parentSpanId: string;
  name: string;
  kind: number;
  startNs: bigint;
  endNs: bigint;
  attributes: Record<string, AttrValue>;
  status: { code: number; message: string };
  resource: Record<string, AttrValue>;
}

export interface SpanStore {
  readonly spans: ReceivedSpan[];
  /** Export requests received. */
  requests: number;
  /** Resolves once `pred` holds over the spans received (polls every 50 ms, bounded). */
  waitFor(pred: (spans: ReceivedSpan[]) => boolean, timeoutMs?: number): Promise<ReceivedSpan[]>;
}

export function createSpanStore(): SpanStore {
  const store: SpanStore = {
    spans: [],
    requests: 0,
    async waitFor(pred, timeoutMs = 15_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        if (pred(store.spans)) return store.spans;
        if (Date.now() > deadline) throw new Error(`the receiver did not get the spans expected within ${timeoutMs} ms (${store.spans.length} spans: ${store.spans.map((s) => s.name).join(", ")})`);
        await new Promise((r) => setTimeout(r, 50));
      }
    },
  };
  return store;
}

const PROTO = [path.join(__dirname, "otlp", "trace_service.proto"), path.resolve(__dirname, "../../helpers/otlp/trace_service.proto")].find((p) => fs.existsSync(p))!;
const SERVICE = "opentelemetry.proto.collector.trace.v1.TraceService";
let loaded: protoLoader.PackageDefinition | null = null;
function definition(): protoLoader.PackageDefinition {
  loaded ??= protoLoader.loadSync(PROTO, { longs: String, enums: Number, defaults: true, oneofs: true });
  return loaded;
}

// ---- decoding (protobuf objects from proto-loader, or OTLP JSON) ----

/* eslint-disable @typescript-eslint/no-explicit-any */
function anyValue(v: any): AttrValue {
  if (v == null) return "";
  for (const k of ["stringValue", "string_value", "boolValue", "bool_value", "doubleValue", "double_value"]) if (v[k] !== undefined && v[k] !== null) return v[k] as AttrValue;
  for (const k of ["intValue", "int_value"]) if (v[k] !== undefined && v[k] !== null) return Number(v[k]);
  return JSON.stringify(v);
}

function attrs(list: any[] | undefined): Record<string, AttrValue> {
  const out: Record<string, AttrValue> = {};
  for (const kv of list ?? []) out[kv.key] = anyValue(kv.value);
  return out;
}

function hex(v: any): string {
  if (v == null) return "";
  if (typeof v === "string") return v.toLowerCase(); // OTLP JSON: hex
  return Buffer.from(v).toString("hex");
}

/** Protobuf (proto-loader with oneofs: a `value` field names the set member) or JSON AnyValue. */
function protoAnyValue(v: any): any {
  if (v == null) return v;
  if (typeof v.value === "string" && v.value in v) return { [v.value]: v[v.value] };
  return v;
}

function collect(store: SpanStore, req: any): void {
  store.requests++;
  for (const rs of req.resourceSpans ?? req.resource_spans ?? []) {
    const resource = attrs((rs.resource?.attributes ?? []).map((kv: any) => ({ key: kv.key, value: protoAnyValue(kv.value) })));
    for (const ss of rs.scopeSpans ?? rs.scope_spans ?? []) {
      for (const s of ss.spans ?? []) {
        store.spans.push({
          traceId: hex(s.traceId),
          spanId: hex(s.spanId),
          parentSpanId: hex(s.parentSpanId),
          name: s.name,
          kind: Number(s.kind ?? 0),
          startNs: BigInt(s.startTimeUnixNano ?? 0),
          endNs: BigInt(s.endTimeUnixNano ?? 0),
          attributes: attrs((s.attributes ?? []).map((kv: any) => ({ key: kv.key, value: protoAnyValue(kv.value) }))),
          status: { code: Number(s.status?.code ?? 0), message: s.status?.message ?? "" },
          resource,
        });
      }
    }
  }
}
/* eslint-enable @typescript-eslint/no-explicit-any */

export interface Receiver {
  readonly url: string;
  readonly store: SpanStore;
  close(): Promise<void>;
}

/** OTLP/HTTP at `${url}` (POST /v1/traces), JSON or protobuf. `failNext` answers the next n requests 503. */
export async function startOtlpHttpReceiver(store: SpanStore = createSpanStore()): Promise<Receiver & { failNext: number; contentTypes: string[] }> {
  const contentTypes: string[] = [];
  const state = { failNext: 0 };
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      if (req.method !== "POST" || req.url !== "/v1/traces") {
        res.writeHead(404).end();
        return;
      }
      if (state.failNext > 0) {
        state.failNext--;
        res.writeHead(503).end();
        return;
      }
      const body = Buffer.concat(chunks);
      const type = String(req.headers["content-type"] ?? "");
      contentTypes.push(type);
      try {
        if (type.startsWith("application/x-protobuf")) {
          const decoded = (definition()[SERVICE] as unknown as { Export: { requestDeserialize(b: Buffer): unknown } }).Export.requestDeserialize(body);
          collect(store, decoded);
          res.writeHead(200, { "content-type": "application/x-protobuf" }).end();
        } else {
          collect(store, JSON.parse(body.toString("utf8")));
          res.writeHead(200, { "content-type": "application/json" }).end("{}");
        }
      } catch (err) {
        res.writeHead(400, { "content-type": "text/plain" }).end((err as Error).message);
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as { port: number }).port;
  return {
    url: `http://127.0.0.1:${port}`,
    store,
    contentTypes,
    get failNext() {
      return state.failNext;
    },
    set failNext(n: number) {
      state.failNext = n;
    },
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

/** OTLP/gRPC (insecure) at `${url}`. */
export async function startOtlpGrpcReceiver(store: SpanStore = createSpanStore()): Promise<Receiver> {
  const pkg = grpc.loadPackageDefinition(definition()) as unknown as {
    opentelemetry: { proto: { collector: { trace: { v1: { TraceService: { service: grpc.ServiceDefinition } } } } } };
  };
  const server = new grpc.Server();
  server.addService(pkg.opentelemetry.proto.collector.trace.v1.TraceService.service, {
    Export: (call: grpc.ServerUnaryCall<unknown, unknown>, cb: grpc.sendUnaryData<unknown>) => {
      collect(store, call.request);
      cb(null, {});
    },
  });
  const port = await new Promise<number>((resolve, reject) => server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))));
  return {
    url: `http://127.0.0.1:${port}`,
    store,
    close: () => new Promise<void>((r) => server.tryShutdown(() => r())),
  };
}

// ---- Jaeger query API ----

interface JaegerTag {
  key: string;
  type: "string" | "int64" | "float64" | "bool";
  value: AttrValue;
}

function jaegerTags(a: Record<string, AttrValue>): JaegerTag[] {
  return Object.entries(a).map(([key, value]) => ({
    key,
    type: typeof value === "boolean" ? "bool" : typeof value === "number" ? (Number.isInteger(value) ? "int64" : "float64") : "string",
    value,
  }));
}

/** Jaeger's JSON for one trace (as jaeger-query's /api/traces answers). */
export function toJaegerTrace(spans: ReceivedSpan[]): unknown {
  const processes = new Map<string, { key: string; serviceName: string; tags: JaegerTag[] }>();
  const procOf = (s: ReceivedSpan): string => {
    const id = JSON.stringify(s.resource);
    let p = processes.get(id);
    if (p === undefined) {
      p = { key: `p${processes.size + 1}`, serviceName: String(s.resource["service.name"] ?? "unknown"), tags: jaegerTags(Object.fromEntries(Object.entries(s.resource).filter(([k]) => k !== "service.name"))) };
      processes.set(id, p);
    }
    return p.key;
  };
  const kinds = ["unspecified", "internal", "server", "client", "producer", "consumer"];
  return {
    traceID: spans[0]!.traceId,
    spans: spans.map((s) => ({
      traceID: s.traceId,
      spanID: s.spanId,
      operationName: s.name,
      references: s.parentSpanId === "" ? [] : [{ refType: "CHILD_OF", traceID: s.traceId, spanID: s.parentSpanId }],
      flags: 1,
      startTime: Number(s.startNs / 1000n),
      duration: Number((s.endNs - s.startNs) / 1000n),
      tags: [
        ...jaegerTags(s.attributes),
        { key: "span.kind", type: "string", value: kinds[s.kind] ?? "unspecified" },
        ...(s.status.code === 2 ? [{ key: "error", type: "bool", value: true }, { key: "otel.status_code", type: "string", value: "ERROR" }] : []),
      ],
      logs: [],
      processID: procOf(s),
      warnings: null,
    })),
    processes: Object.fromEntries([...processes.values()].map((p) => [p.key, { serviceName: p.serviceName, tags: p.tags }])),
    warnings: null,
  };
}

/** Parses Jaeger's duration strings ("5ms", "1.5s", "100us"). */
function durationUs(s: string): number {
  const m = /^(\d+(?:\.\d+)?)(us|µs|ms|s|m|h)$/.exec(s);
  if (m === null) return NaN;
  const mult: Record<string, number> = { us: 1, µs: 1, ms: 1000, s: 1e6, m: 60e6, h: 3600e6 };
  return Number(m[1]) * mult[m[2]!]!;
}

/** A fake jaeger-query over `store`; `requests` lists the paths asked for. */
export async function startFakeJaeger(store: SpanStore): Promise<{ url: string; requests: string[]; close(): Promise<void> }> {
  const requests: string[] = [];
  const server = http.createServer((req, res) => {
    const u = new URL(req.url ?? "/", "http://x");
    requests.push(`${req.method} ${u.pathname}${u.search}`);
    const send = (code: number, body: unknown) => res.writeHead(code, { "content-type": "application/json" }).end(JSON.stringify(body));
    const byTrace = new Map<string, ReceivedSpan[]>();
    for (const s of store.spans) (byTrace.get(s.traceId) ?? byTrace.set(s.traceId, []).get(s.traceId)!).push(s);
    const one = /^\/api\/traces\/([0-9a-fA-F]{1,32})$/.exec(u.pathname);
    if (req.method === "GET" && one !== null) {
      const id = one[1]!.toLowerCase().padStart(32, "0");
      const spans = byTrace.get(id);
      if (spans === undefined) return send(404, { data: null, total: 0, limit: 0, offset: 0, errors: [{ code: 404, msg: "trace not found" }] });
      return send(200, { data: [toJaegerTrace(spans)], total: 0, limit: 0, offset: 0, errors: null });
    }
    if (req.method === "GET" && u.pathname === "/api/services") {
      const names = new Set(store.spans.map((s) => String(s.resource["service.name"] ?? "")));
      return send(200, { data: [...names], total: names.size, limit: 0, offset: 0, errors: null });
    }
    if (req.method === "GET" && u.pathname === "/api/traces") {
      const service = u.searchParams.get("service");
      if (service === null || service === "") return send(400, { data: null, errors: [{ code: 400, msg: "parameter 'service' is required" }] });
      const tags = JSON.parse(u.searchParams.get("tags") ?? "{}") as Record<string, string>;
      const startUs = Number(u.searchParams.get("start") ?? 0);
      const endUs = Number(u.searchParams.get("end") ?? Number.MAX_SAFE_INTEGER);
      const minUs = u.searchParams.has("minDuration") ? durationUs(u.searchParams.get("minDuration")!) : 0;
      const limit = Number(u.searchParams.get("limit") ?? 20);
      const out: unknown[] = [];
      for (const spans of byTrace.values()) {
        // like Jaeger: a trace matches when one of its spans (of the service) has all the tags, the duration and the time
        const hit = spans.some((s) => {
          if (String(s.resource["service.name"]) !== service) return false;
          const startedUs = Number(s.startNs / 1000n);
          if (startedUs < startUs || startedUs > endUs) return false;
          if (Number((s.endNs - s.startNs) / 1000n) < minUs) return false;
          const all = { ...s.attributes, ...(s.status.code === 2 ? { error: "true" } : {}) };
          return Object.entries(tags).every(([k, v]) => String(all[k as keyof typeof all]) === v);
        });
        if (hit) out.push(toJaegerTrace(spans));
        if (out.length >= limit) break;
      }
      return send(200, { data: out, total: out.length, limit: 0, offset: 0, errors: null });
    }
    send(404, { data: null, errors: [{ code: 404, msg: "not found" }] });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as { port: number }).port;
  return { url: `http://127.0.0.1:${port}`, requests, close: () => new Promise<void>((r) => server.close(() => r())) };
}

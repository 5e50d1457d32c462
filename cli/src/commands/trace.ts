import { CliError } from "../cli-error";
import { formatTable } from "../output";

/**
 * `mysqlgw trace TRACE_ID --jaeger URL`: fetches one trace from Jaeger's HTTP
 * query API (GET /api/traces/{id}) and prints the request chain as an indented
 * timeline (offset from the trace's start, duration, span, key attributes).
 *
 * `mysqlgw trace --user U --since 5m [--slow] [--errors] --jaeger URL`: lists
 * candidate traces (GET /api/traces?service=…&tags=…) of that user's statements.
 */
export interface TraceIo {
  stdout(line: string): void;
  stderr(line: string): void;
  timeoutMs: number;
  now?: () => number;
}

export interface TraceOptions {
  jaeger: string;
  service: string;
  user?: string;
  listener?: string;
  since: string;
  slow: boolean;
  minDuration: string;
  errors: boolean;
  limit: string;
  json: boolean;
}

export const DEFAULT_JAEGER = "http://127.0.0.1:16686";

interface JaegerTag {
  key: string;
  type?: string;
  value: unknown;
}
interface JaegerSpan {
  traceID: string;
  spanID: string;
  operationName: string;
  references?: { refType: string; traceID: string; spanID: string }[];
  startTime: number; // µs since the epoch
  duration: number; // µs
  tags?: JaegerTag[];
  processID?: string;
}
interface JaegerTrace {
  traceID: string;
  spans: JaegerSpan[];
  processes?: Record<string, { serviceName: string }>;
}

/** Attributes shown on the timeline, in this order, with short names. */
const SHOWN: Array<[string, string]> = [
  ["db.query.text", "query"],
  ["db.namespace", "schema"],
  ["mysqlgw.user", "user"],
  ["mysqlgw.listener", "listener"],
  ["network.peer.address", "client"],
  ["mysqlgw.target", "target"],
  ["mysqlgw.reason", "reason"],
  ["mysqlgw.rule", "rule"],
  ["mysqlgw.backend", "backend"],
  ["server.address", "server"],
  ["mysqlgw.rows", "rows"],
  ["mysqlgw.bytes", "bytes"],
  ["mysqlgw.pin_reason", "pinned"],
  ["mysqlgw.error_code", "error"],
  ["mysqlgw.kept", "kept"],
  ["mysqlgw.close_reason", "closed"],
];

function usage(what: string, todo: string): CliError {
  return new CliError("MGW_ERR_CLI_USAGE", what, todo, { exitCode: 2 });
}

/** "5m", "90s", "2h", "1.5s", "250ms", "100us" → milliseconds; NaN when not a duration. */
export function parseDurationMs(s: string): number {
  const m = /^(\d+(?:\.\d+)?)(us|ms|s|m|h|d)$/.exec(s.trim());
  if (m === null) return NaN;
  const unit: Record<string, number> = { us: 0.001, ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };
  return Number(m[1]) * unit[m[2]!]!;
}

function jaegerBase(raw: string): string {
  try {
    const u = new URL(raw);
    if (u.protocol !== "http:" && u.protocol !== "https:") throw new Error("scheme");
  } catch {
    throw usage(`--jaeger ${JSON.stringify(raw)} is not an http:// URL`, `pass the Jaeger query address, e.g. --jaeger ${DEFAULT_JAEGER}`);
  }
  return raw.replace(/\/+$/, "");
}

async function getJson(url: string, timeoutMs: number): Promise<{ status: number; body: { data?: unknown; errors?: { msg?: string }[] | null } }> {
  let res: Response;
  try {
    res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs), headers: { accept: "application/json" } });
  } catch (err) {
    const e = err as Error & { cause?: { code?: string } };
    throw new CliError("MGW_ERR_CLI_API_UNREACHABLE", `cannot reach Jaeger at ${new URL(url).origin} (${e.cause?.code ?? e.name})`, "check --jaeger (the jaeger-query HTTP address, port 16686 by default)", { cause: err });
  }
  const text = await res.text();
  let body: { data?: unknown; errors?: { msg?: string }[] | null };
  try {
    body = JSON.parse(text) as typeof body;
  } catch {
    throw new CliError("MGW_ERR_CLI_API", `Jaeger answered ${res.status} with something that is not JSON`, "check that --jaeger points at jaeger-query's HTTP port (16686), not the collector");
  }
  return { status: res.status, body };
}

function tagMap(s: JaegerSpan): Map<string, unknown> {
  return new Map((s.tags ?? []).map((t) => [t.key, t.value]));
}

function ms(us: number): string {
  return `${(us / 1000).toFixed(3)} ms`;
}

/** The timeline lines of one trace: parents before children, siblings by start time, indented by depth. */
export function formatTimeline(t: JaegerTrace): string[] {
  const spans = [...t.spans].sort((a, b) => a.startTime - b.startTime);
  if (spans.length === 0) return [`trace ${t.traceID}: no spans`];
  const ids = new Set(spans.map((s) => s.spanID));
  const parentOf = (s: JaegerSpan): string | null => s.references?.find((r) => r.refType === "CHILD_OF")?.spanID ?? null;
  const children = new Map<string, JaegerSpan[]>();
  const roots: JaegerSpan[] = [];
  for (const s of spans) {
    const p = parentOf(s);
    if (p !== null && ids.has(p)) (children.get(p) ?? children.set(p, []).get(p)!).push(s);
    else roots.push(s);
  }
  const t0 = spans[0]!.startTime;
  const end = Math.max(...spans.map((s) => s.startTime + s.duration));
  const services = new Set(spans.map((s) => t.processes?.[s.processID ?? ""]?.serviceName).filter((x) => x !== undefined));
  const out = [`trace ${t.traceID} · ${spans.length} spans · ${[...services].join(", ") || "unknown service"} · started ${new Date(t0 / 1000).toISOString()} · ${ms(end - t0)}`];
  const rows: string[][] = [];
  const walk = (s: JaegerSpan, depth: number): void => {
    const tags = tagMap(s);
    const shown = SHOWN.filter(([k]) => tags.has(k)).map(([k, label]) => {
      const v = tags.get(k);
      return k === "server.address" && tags.has("server.port") ? `${label}=${String(v)}:${String(tags.get("server.port"))}` : `${label}=${typeof v === "string" && /\s/.test(v) ? JSON.stringify(v) : String(v)}`;
    });
    const error = tags.get("error") === true || tags.get("otel.status_code") === "ERROR" ? " ✗" : "";
    const p = parentOf(s);
    const note = p !== null && !ids.has(p) ? ` (child of ${p}, not in this trace's spans: the application's span)` : "";
    rows.push([`+${ms(s.startTime - t0)}`, ms(s.duration), `${"  ".repeat(depth)}${s.operationName}${error}${note}`, shown.join(" ")]);
    for (const c of children.get(s.spanID) ?? []) walk(c, depth + 1);
  };
  for (const r of roots) walk(r, 0);
  out.push(...formatTable(["START", "DURATION", "SPAN", "ATTRIBUTES"], rows).map((l) => l.trimEnd()));
  return out;
}

export async function traceCommand(io: TraceIo, traceId: string | undefined, opts: TraceOptions): Promise<void> {
  const base = jaegerBase(opts.jaeger);
  if (traceId !== undefined) {
    if (!/^[0-9a-fA-F]{1,32}$/.test(traceId)) throw usage(`${JSON.stringify(traceId)} is not a trace id`, "pass the 32 hex digits shown in a log line or by mysqlgw trace --user U");
    const { status, body } = await getJson(`${base}/api/traces/${traceId.toLowerCase()}`, io.timeoutMs);
    const traces = (body.data ?? []) as JaegerTrace[];
    if (status === 404 || traces.length === 0) {
      throw new CliError("MGW_ERR_CLI_NOT_FOUND", `Jaeger has no trace ${traceId}`, "it may not be sampled (policy Gateway.tracing.samplingRatio), not exported yet (up to a second), or past Jaeger's retention");
    }
    if (status !== 200) throw new CliError("MGW_ERR_CLI_API", `Jaeger answered ${status}: ${body.errors?.[0]?.msg ?? ""}`, "check --jaeger");
    if (opts.json) {
      io.stdout(JSON.stringify(traces[0]));
      return;
    }
    for (const l of formatTimeline(traces[0]!)) io.stdout(l);
    return;
  }

  if (opts.user === undefined && opts.listener === undefined && !opts.slow && !opts.errors) {
    throw usage("give a TRACE_ID, or search with --user, --listener, --slow or --errors", "e.g. mysqlgw trace --user app --since 5m --slow");
  }
  const sinceMs = parseDurationMs(opts.since);
  if (!(sinceMs > 0)) throw usage(`--since ${JSON.stringify(opts.since)} is not a duration`, "pass e.g. --since 5m, 90s or 2h");
  const limit = Number(opts.limit);
  if (!Number.isInteger(limit) || limit < 1 || limit > 1000) throw usage(`--limit ${JSON.stringify(opts.limit)} must be 1..1000`, "pass e.g. --limit 20");
  const tags: Record<string, string> = { "mysqlgw.span": "statement" };
  if (opts.user !== undefined) tags["mysqlgw.user"] = opts.user;
  if (opts.listener !== undefined) tags["mysqlgw.listener"] = opts.listener;
  if (opts.errors) tags.error = "true";
  const nowMs = (io.now ?? Date.now)();
  const q = new URLSearchParams({
    service: opts.service,
    tags: JSON.stringify(tags),
    start: String(Math.floor((nowMs - sinceMs) * 1000)),
    end: String(Math.floor(nowMs * 1000)),
    limit: String(limit),
  });
  if (opts.slow) {
    const min = parseDurationMs(opts.minDuration);
    if (!(min >= 0)) throw usage(`--min-duration ${JSON.stringify(opts.minDuration)} is not a duration`, "pass e.g. --min-duration 100ms");
    q.set("minDuration", `${Math.round(min * 1000)}us`);
  }
  const { status, body } = await getJson(`${base}/api/traces?${q.toString()}`, io.timeoutMs);
  if (status !== 200) throw new CliError("MGW_ERR_CLI_API", `Jaeger answered ${status}: ${body.errors?.[0]?.msg ?? ""}`, "check --jaeger and --service");
  const traces = (body.data ?? []) as JaegerTrace[];
  // one row per matching statement span, slowest first
  const rows: Array<{ trace: string; start: number; duration: number; user: string; op: string; query: string; error: string }> = [];
  for (const t of traces) {
    for (const s of t.spans) {
      const tg = tagMap(s);
      if (tg.get("mysqlgw.span") !== "statement") continue;
      if (opts.user !== undefined && tg.get("mysqlgw.user") !== opts.user) continue;
      if (opts.listener !== undefined && tg.get("mysqlgw.listener") !== opts.listener) continue;
      if (opts.errors && tg.get("error") !== true) continue;
      if (opts.slow && s.duration < parseDurationMs(opts.minDuration) * 1000) continue;
      rows.push({ trace: s.traceID, start: s.startTime, duration: s.duration, user: String(tg.get("mysqlgw.user") ?? ""), op: s.operationName, query: String(tg.get("db.query.text") ?? ""), error: tg.has("mysqlgw.error_code") ? String(tg.get("mysqlgw.error_code")) : "" });
    }
  }
  rows.sort((a, b) => b.duration - a.duration);
  if (opts.json) {
    io.stdout(JSON.stringify(rows));
    return;
  }
  if (rows.length === 0) {
    io.stdout(`no matching statements in the last ${opts.since} (service ${opts.service}${opts.slow ? `, at least ${opts.minDuration}` : ""})`);
    return;
  }
  const table = rows.slice(0, limit).map((r) => [r.trace, new Date(r.start / 1000).toISOString(), ms(r.duration), r.user, r.op, r.error === "" ? "-" : r.error, r.query.length > 80 ? `${r.query.slice(0, 77)}...` : r.query]);
  for (const l of formatTable(["TRACE ID", "STARTED", "DURATION", "USER", "STATEMENT", "ERROR", "QUERY"], table)) io.stdout(l.trimEnd());
  io.stdout(`mysqlgw trace TRACE_ID --jaeger ${base} shows one`);
}

/**
 * OTLP protobuf encoding of our spans (opentelemetry-proto
 * collector/trace/v1 ExportTraceServiceRequest), written straight into one
 * buffer. The OpenTelemetry JS serializers first build a JS object per span,
 * attribute and id and then encode it; for the six spans of a traced statement
 * that costs more than the proxy spends on a point select, which this avoids.
 * Only what our spans use is written: ids, parent, flags, name, kind, times,
 * string / int / double / bool attributes, status.
 */

export type AttrValue = string | number | boolean;

/** One finished span, as the tracing observer builds it. */
export interface SpanData {
  name: string;
  /** OTLP Span.SpanKind: 1 internal, 2 server, 3 client. */
  kind: 1 | 2 | 3;
  /** 32 hex digits. */
  traceId: string;
  /** 16 hex digits. */
  spanId: string;
  /** 16 hex digits, or "" for a root span. */
  parentSpanId: string;
  /** The parent lives in another process (an application's span from a traceparent). */
  remoteParent: boolean;
  /** Wall-clock milliseconds, fractional. */
  startMs: number;
  endMs: number;
  attributes: Record<string, AttrValue>;
  /** OTLP Status.StatusCode: 0 unset, 2 error. */
  status: 0 | 2;
  statusMessage: string;
  /**
   * A statement span's phases, written as its child spans (route, pool acquire,
   * backend, transfer) without an object per child: see phaseSpans().
   */
  phases?: Phases;
}

/** The phase boundaries of a statement span (wall-clock ms); `backend` null when the gateway answered it (no acquire/backend spans). */
export interface Phases {
  routedMs: number;
  acquiredMs: number;
  firstByteMs: number;
  /** Attributes of the pool acquire span (the backend's name). */
  pool: Record<string, AttrValue>;
  /** Attributes of the backend span (backend name, server.address, server.port); null: no backend. */
  backend: Record<string, AttrValue> | null;
}

const KIND_INTERNAL = 1;
const KIND_CLIENT = 3;
const NONE: Record<string, AttrValue> = {};

/** Spans `s` stands for: itself and its phases' spans. */
export function spanCount(s: SpanData): number {
  return s.phases === undefined ? 1 : s.phases.backend !== null ? 5 : 3;
}

/** The id of phase span `k` (1..4): the statement span's id with its last byte varied (unique within the trace). */
export function phaseSpanId(spanId: string, k: number): string {
  return spanId.slice(0, 14) + ((parseInt(spanId.slice(14), 16) ^ k) | 0x100).toString(16).slice(1);
}

/** The phase spans of a statement span as SpanData (what the encoder writes without making them). */
export function phaseSpans(s: SpanData): SpanData[] {
  const p = s.phases;
  if (p === undefined) return [];
  const mk = (name: string, kind: 1 | 3, k: number, start: number, end: number, attributes: Record<string, AttrValue>): SpanData => ({
    name, kind, traceId: s.traceId, spanId: phaseSpanId(s.spanId, k), parentSpanId: s.spanId, remoteParent: false, startMs: start, endMs: end, attributes, status: 0, statusMessage: "",
  });
  const out = [mk("route", KIND_INTERNAL, 1, s.startMs, p.routedMs, NONE)];
  if (p.backend !== null) {
    out.push(mk("pool acquire", KIND_INTERNAL, 2, p.routedMs, p.acquiredMs, p.pool));
    out.push(mk("backend", KIND_CLIENT, 3, p.acquiredMs, p.firstByteMs, p.backend));
  }
  out.push(mk("transfer", KIND_INTERNAL, 4, p.backend !== null ? p.firstByteMs : p.routedMs, s.endMs, NONE));
  return out;
}

// span flags (Span.flags, fixed32): SAMPLED, and whether the parent's "is remote" is known / true
const FLAG_SAMPLED = 0x01;
const FLAG_CONTEXT_HAS_IS_REMOTE = 0x100;
const FLAG_CONTEXT_IS_REMOTE = 0x200;

const HEX = new Int8Array(128).fill(-1);
for (let i = 0; i < 16; i++) {
  HEX["0123456789abcdef".charCodeAt(i)] = i;
  HEX["0123456789ABCDEF".charCodeAt(i)] = i;
}

/** UTF-8 length of `s`, counting in JS for ASCII (most of ours) rather than calling into C++. */
function utf8Length(s: string): number {
  const n = s.length;
  for (let i = 0; i < n; i++) if (s.charCodeAt(i) >= 0x80) return Buffer.byteLength(s);
  return n;
}

function varintLength(v: number): number {
  return v < 0x80 ? 1 : v < 0x4000 ? 2 : v < 0x200000 ? 3 : v < 0x10000000 ? 4 : 5;
}

/** Encoded KeyValue.key fields (tag, length, bytes), by key: our keys are a small fixed set. */
const keyCache = new Map<string, Buffer>();
const KEY_CACHE_MAX = 1024;

function encodedKey(key: string): Buffer {
  let b = keyCache.get(key);
  if (b === undefined) {
    const n = Buffer.byteLength(key);
    b = Buffer.allocUnsafe(1 + varintLength(n) + n);
    let at = 0;
    b[at++] = 0x0a; // KeyValue.key = 1
    for (let v = n; ; ) {
      if (v < 0x80) {
        b[at++] = v;
        break;
      }
      b[at++] = (v % 0x80) | 0x80;
      v = Math.floor(v / 0x80);
    }
    b.write(key, at, "utf8");
    if (keyCache.size < KEY_CACHE_MAX) keyCache.set(key, b);
  }
  return b;
}

class Writer {
  buf: Buffer;
  pos = 0;

  constructor(size: number) {
    this.buf = Buffer.allocUnsafe(size);
  }

  ensure(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.pos + n) size *= 2;
    const next = Buffer.allocUnsafe(size);
    this.buf.copy(next, 0, 0, this.pos);
    this.buf = next;
  }

  byte(b: number): void {
    this.ensure(1);
    this.buf[this.pos++] = b;
  }

  varint(v: number): void {
    this.ensure(10);
    while (v > 0x7f) {
      this.buf[this.pos++] = (v % 0x80) | 0x80;
      v = Math.floor(v / 0x80);
    }
    this.buf[this.pos++] = v;
  }

  /** The bytes of `s` whose UTF-8 length is `n` (a JS loop for ASCII, Buffer.write otherwise). */
  raw(s: string, n: number): void {
    this.ensure(n);
    const buf = this.buf;
    let pos = this.pos;
    if (n === s.length) {
      for (let i = 0; i < n; i++) buf[pos++] = s.charCodeAt(i);
    } else {
      pos += buf.write(s, pos, n, "utf8");
    }
    this.pos = pos;
  }

  /** Tag + length-delimited UTF-8 string. */
  string(tag: number, s: string): void {
    const n = utf8Length(s);
    this.byte(tag);
    this.varint(n);
    this.raw(s, n);
  }

  /** Tag + length-delimited bytes given as hex (ours are always well formed). */
  hexBytes(tag: number, hex: string): void {
    const n = hex.length >> 1;
    this.byte(tag);
    this.byte(n);
    this.ensure(n);
    const buf = this.buf;
    let pos = this.pos;
    for (let i = 0; i < hex.length; i += 2) buf[pos++] = (HEX[hex.charCodeAt(i)]! << 4) | HEX[hex.charCodeAt(i + 1)]!;
    this.pos = pos;
  }

  /** Tag + fixed64 of the nanoseconds in `ms` (wall-clock milliseconds), exact without BigInt. */
  nanosFromMs(tag: number, ms: number): void {
    const sec = Math.floor(ms / 1000);
    const nsInSec = Math.min(999_999_999, Math.max(0, Math.round((ms - sec * 1000) * 1e6)));
    // total = sec × 1e9 + nsInSec, as hi × 2³² + lo: split sec into 16-bit halves so every product stays exact
    const sl = sec % 65536;
    const b = ((sec - sl) / 65536) * 1e9;
    const bLo16 = b % 65536;
    const x = bLo16 * 65536 + sl * 1e9 + nsInSec;
    const lo = x % 4294967296;
    const hi = (b - bLo16) / 65536 + (x - lo) / 4294967296;
    this.byte(tag);
    this.ensure(8);
    this.buf.writeUInt32LE(lo, this.pos);
    this.buf.writeUInt32LE(hi, this.pos + 4);
    this.pos += 8;
  }

  /** Starts a length-delimited field; returns where its content starts (5 bytes reserved for the length). */
  begin(tag: number): number {
    this.byte(tag);
    this.ensure(5);
    this.pos += 5;
    return this.pos;
  }

  /** Ends it: writes the length in front and moves the content back over the unused reserve. */
  end(start: number): void {
    const len = this.pos - start;
    const lenBytes = varintLength(len);
    const at = start - 5;
    let v = len;
    for (let i = 0; i < lenBytes; i++) {
      this.buf[at + i] = i === lenBytes - 1 ? v : (v % 0x80) | 0x80;
      v = Math.floor(v / 0x80);
    }
    const gap = 5 - lenBytes;
    if (gap > 0) {
      this.buf.copyWithin(at + lenBytes, start, this.pos);
      this.pos -= gap;
    }
  }
}

/**
 * Whole encoded KeyValue fields of string attributes, by key and value: most of
 * ours repeat (listener, user, cluster, target, reason, backend, schema, the
 * digest text of a hot query), and copying their bytes beats encoding them.
 * Bounded: past KV_CACHE_MAX pairs new ones are encoded every time.
 */
const kvCache = new Map<string, Map<string, Buffer>>();
let kvCached = 0;
const KV_CACHE_MAX = 16_384;
/** Longer values (a long digest text) are not worth keeping. */
const KV_CACHE_VALUE_MAX = 512;

/** KeyValue with its length computed up front (no reserve-and-move). */
function writeKeyValue(w: Writer, tag: 0x4a, key: string, v: AttrValue): void {
  if (typeof v === "string" && v.length <= KV_CACHE_VALUE_MAX) {
    let byValue = kvCache.get(key);
    const hit = byValue?.get(v);
    if (hit !== undefined) {
      w.ensure(hit.length);
      hit.copy(w.buf, w.pos);
      w.pos += hit.length;
      return;
    }
    const start = w.pos;
    writeKeyValueUncached(w, tag, key, v);
    if (kvCached < KV_CACHE_MAX) {
      if (byValue === undefined) {
        byValue = new Map();
        kvCache.set(key, byValue);
      }
      byValue.set(v, Buffer.from(w.buf.subarray(start, w.pos)));
      kvCached++;
    }
    return;
  }
  writeKeyValueUncached(w, tag, key, v);
}

function writeKeyValueUncached(w: Writer, tag: number, key: string, v: AttrValue): void {
  const k = encodedKey(key);
  let n = 0; // AnyValue length
  let sl = 0;
  let kind: 0 | 1 | 2 | 3;
  if (typeof v === "string") {
    sl = utf8Length(v);
    n = 1 + varintLength(sl) + sl;
    kind = 0;
  } else if (typeof v === "boolean") {
    n = 2;
    kind = 1;
  } else if (Number.isSafeInteger(v) && v >= 0) {
    let c = 1;
    for (let x = v; x > 0x7f; x = Math.floor(x / 0x80)) c++;
    n = 1 + c;
    kind = 2;
  } else {
    n = 9;
    kind = 3;
  }
  const kvLen = k.length + 1 + varintLength(n) + n;
  w.byte(tag);
  w.varint(kvLen);
  w.ensure(k.length);
  k.copy(w.buf, w.pos);
  w.pos += k.length;
  w.byte(0x12); // KeyValue.value = 2 (AnyValue)
  w.varint(n);
  if (kind === 0) {
    w.byte(0x0a); // string_value = 1
    w.varint(sl);
    w.raw(v as string, sl);
  } else if (kind === 1) {
    w.byte(0x10); // bool_value = 2
    w.byte(v ? 1 : 0);
  } else if (kind === 2) {
    w.byte(0x18); // int_value = 3
    w.varint(v as number);
  } else {
    w.byte(0x21); // double_value = 4 (fixed64)
    w.ensure(8);
    w.buf.writeDoubleLE(v as number, w.pos);
    w.pos += 8;
  }
}

/** One phase span of statement span `s` (see phaseSpans), written from `s` without an object of its own. */
function writePhase(w: Writer, s: SpanData, name: string, kind: number, k: number, startMs: number, endMs: number, a: Record<string, AttrValue>): void {
  const span = w.begin(0x12);
  w.hexBytes(0x0a, s.traceId);
  w.hexBytes(0x12, s.spanId);
  w.buf[w.pos - 1] ^= k; // the statement's id, last byte varied: phaseSpanId()
  w.hexBytes(0x22, s.spanId);
  w.string(0x2a, name);
  w.byte(0x30);
  w.byte(kind);
  w.nanosFromMs(0x39, startMs);
  w.nanosFromMs(0x41, endMs);
  for (const key in a) writeKeyValue(w, 0x4a, key, a[key]!);
  w.byte(0x85);
  w.byte(0x01);
  w.ensure(4);
  w.buf.writeUInt32LE(FLAG_SAMPLED | FLAG_CONTEXT_HAS_IS_REMOTE, w.pos);
  w.pos += 4;
  w.end(span);
}

function writeSpan(w: Writer, s: SpanData): void {
  const span = w.begin(0x12); // ScopeSpans.spans = 2
  w.hexBytes(0x0a, s.traceId); // trace_id = 1
  w.hexBytes(0x12, s.spanId); // span_id = 2
  if (s.parentSpanId !== "") w.hexBytes(0x22, s.parentSpanId); // parent_span_id = 4
  w.string(0x2a, s.name); // name = 5
  w.byte(0x30); // kind = 6
  w.byte(s.kind);
  w.nanosFromMs(0x39, s.startMs); // start_time_unix_nano = 7
  w.nanosFromMs(0x41, s.endMs); // end_time_unix_nano = 8
  const a = s.attributes;
  for (const k in a) writeKeyValue(w, 0x4a, k, a[k]!); // attributes = 9
  if (s.status !== 0) {
    const st = w.begin(0x7a); // status = 15
    if (s.statusMessage !== "") w.string(0x12, s.statusMessage); // message = 2
    w.byte(0x18); // code = 3
    w.byte(s.status);
    w.end(st);
  }
  // flags = 16 (fixed32): tag (16 << 3 | 5) = 0x85 0x01
  const flags = FLAG_SAMPLED | (s.parentSpanId !== "" ? FLAG_CONTEXT_HAS_IS_REMOTE | (s.remoteParent ? FLAG_CONTEXT_IS_REMOTE : 0) : 0);
  w.byte(0x85);
  w.byte(0x01);
  w.ensure(4);
  w.buf.writeUInt32LE(flags, w.pos);
  w.pos += 4;
  w.end(span);
  const p = s.phases;
  if (p !== undefined) {
    writePhase(w, s, "route", KIND_INTERNAL, 1, s.startMs, p.routedMs, NONE);
    if (p.backend !== null) {
      writePhase(w, s, "pool acquire", KIND_INTERNAL, 2, p.routedMs, p.acquiredMs, p.pool);
      writePhase(w, s, "backend", KIND_CLIENT, 3, p.acquiredMs, p.firstByteMs, p.backend);
    }
    writePhase(w, s, "transfer", KIND_INTERNAL, 4, p.backend !== null ? p.firstByteMs : p.routedMs, s.endMs, NONE);
  }
}

export interface EncodeContext {
  /** Resource attributes (service.name, service.instance.id, …). */
  resource: Record<string, AttrValue>;
  scopeName: string;
  scopeVersion: string;
}

/** One ExportTraceServiceRequest holding `spans` under one resource and scope. */
export function encodeExportTraceServiceRequest(spans: readonly SpanData[], ctx: EncodeContext): Uint8Array {
  const w = new Writer(256 + spans.length * 1200);
  const rs = w.begin(0x0a); // ExportTraceServiceRequest.resource_spans = 1
  const res = w.begin(0x0a); // ResourceSpans.resource = 1
  for (const k in ctx.resource) writeKeyValueUncached(w, 0x0a, k, ctx.resource[k]!); // Resource.attributes = 1 (the cache holds tag 0x4a fields)
  w.end(res);
  const ss = w.begin(0x12); // ResourceSpans.scope_spans = 2
  const scope = w.begin(0x0a); // ScopeSpans.scope = 1
  w.string(0x0a, ctx.scopeName);
  if (ctx.scopeVersion !== "") w.string(0x12, ctx.scopeVersion);
  w.end(scope);
  for (const s of spans) writeSpan(w, s);
  w.end(ss);
  w.end(rs);
  return w.buf.subarray(0, w.pos);
}

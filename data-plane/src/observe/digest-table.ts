/**
 * Query digests of one worker: per (digest hash, user, schema) how many
 * statements ran, how long they took (total, min, max and a latency
 * histogram for quantiles), how many rows they returned and how many failed,
 * and when the digest was first and last seen.
 *
 * Bounded: at most `maxEntries` entries; the least recently seen one is
 * evicted to make room (evictions counted). Latencies go into a fixed
 * log-spaced histogram (LATENCY_BUCKET_COUNT buckets, each 1.4× the previous,
 * from 10 µs to ~100 s): tables of several workers merge exactly by adding
 * buckets, and a quantile is read back within one bucket (±20 %).
 */
import type { Observer, StatementRecord } from "./observer";

/** Upper bound of histogram bucket 0, ms. */
export const LATENCY_BUCKET_BASE_MS = 0.01;
/** Each bucket's upper bound is this times the previous one's. */
export const LATENCY_BUCKET_FACTOR = 1.4;
/** Buckets; the last one also takes everything above its bound (~100 s). */
export const LATENCY_BUCKET_COUNT = 49;
/** Default bound on entries per worker. */
export const DEFAULT_DIGEST_TABLE_SIZE = 10000;

const LOG_FACTOR = Math.log(LATENCY_BUCKET_FACTOR);

/** Histogram bucket of a duration in ms. */
export function latencyBucket(ms: number): number {
  if (!(ms > LATENCY_BUCKET_BASE_MS)) return 0;
  const i = Math.ceil(Math.log(ms / LATENCY_BUCKET_BASE_MS) / LOG_FACTOR - 1e-9);
  return i >= LATENCY_BUCKET_COUNT ? LATENCY_BUCKET_COUNT - 1 : i;
}

/** Upper bound (ms) of bucket `i`. */
export function latencyBucketUpperMs(i: number): number {
  return LATENCY_BUCKET_BASE_MS * Math.pow(LATENCY_BUCKET_FACTOR, i);
}

/**
 * The `q` quantile (0 < q ≤ 1) of a histogram, as the geometric middle of the
 * bucket holding it, clamped to [min, max] (exact when all samples are equal).
 */
export function histogramQuantile(buckets: ArrayLike<number>, count: number, q: number, minMs: number, maxMs: number): number {
  if (count === 0) return 0;
  const rank = Math.max(1, Math.ceil(q * count));
  let seen = 0;
  for (let i = 0; i < buckets.length; i++) {
    seen += buckets[i];
    if (seen >= rank) {
      const upper = latencyBucketUpperMs(i);
      const mid = i === 0 ? upper / 2 : Math.sqrt(upper * (upper / LATENCY_BUCKET_FACTOR));
      return Math.min(maxMs, Math.max(minMs, mid));
    }
  }
  return maxMs;
}

/** One digest's figures, as read out of a table (and sent over IPC: plain JSON). */
export interface DigestStats {
  hash: string;
  user: string;
  /** "" when the session had no default schema. */
  schema: string;
  /** Normalised text (literals as ?). */
  text: string;
  count: number;
  errors: number;
  rows: number;
  totalMs: number;
  minMs: number;
  maxMs: number;
  /** Histogram counts (LATENCY_BUCKET_COUNT entries). */
  buckets: number[];
  /** Epoch ms. */
  firstSeen: number;
  lastSeen: number;
}

interface Entry {
  readonly key: string;
  readonly hash: string;
  readonly user: string;
  readonly schema: string;
  readonly text: string;
  count: number;
  errors: number;
  rows: number;
  totalMs: number;
  minMs: number;
  maxMs: number;
  readonly buckets: Uint32Array;
  readonly firstSeen: number;
  lastSeen: number;
}

export interface DigestTableOptions {
  /** Most entries kept; default DEFAULT_DIGEST_TABLE_SIZE. */
  maxEntries?: number;
  /** Epoch ms; default Date.now. */
  clock?: () => number;
}

export class DigestTable {
  private readonly maxEntries: number;
  private readonly clock: () => number;
  /** Insertion order = recency order: a hit is deleted and re-inserted (Map keeps insertion order). */
  private readonly entries = new Map<string, Entry>();
  /** Entries dropped to make room. */
  evictions = 0;

  constructor(options: DigestTableOptions = {}) {
    this.maxEntries = Math.max(1, options.maxEntries ?? DEFAULT_DIGEST_TABLE_SIZE);
    this.clock = options.clock ?? Date.now;
  }

  get size(): number {
    return this.entries.size;
  }

  /** Counts one statement. */
  record(d: { hash: string; text: string }, user: string, schema: string | null, durationMs: number, rows: number, ok: boolean): void {
    const s = schema ?? "";
    const key = `${d.hash}\u0000${user}\u0000${s}`;
    const now = this.clock();
    let e = this.entries.get(key);
    if (e === undefined) {
      if (this.entries.size >= this.maxEntries) {
        const oldest = this.entries.keys().next();
        if (!oldest.done) {
          this.entries.delete(oldest.value);
          this.evictions++;
        }
      }
      e = {
        key,
        hash: d.hash,
        user,
        schema: s,
        text: d.text,
        count: 0,
        errors: 0,
        rows: 0,
        totalMs: 0,
        minMs: Infinity,
        maxMs: 0,
        buckets: new Uint32Array(LATENCY_BUCKET_COUNT),
        firstSeen: now,
        lastSeen: now,
      };
    } else {
      this.entries.delete(key);
    }
    this.entries.set(key, e);
    const ms = durationMs > 0 ? durationMs : 0;
    e.count++;
    if (!ok) e.errors++;
    e.rows += rows;
    e.totalMs += ms;
    if (ms < e.minMs) e.minMs = ms;
    if (ms > e.maxMs) e.maxMs = ms;
    e.buckets[latencyBucket(ms)]++;
    e.lastSeen = now;
  }

  /** Every entry as plain data, most recently seen last. */
  snapshot(): DigestStats[] {
    const out: DigestStats[] = [];
    for (const e of this.entries.values()) {
      out.push({
        hash: e.hash,
        user: e.user,
        schema: e.schema,
        text: e.text,
        count: e.count,
        errors: e.errors,
        rows: e.rows,
        totalMs: e.totalMs,
        minMs: e.count === 0 ? 0 : e.minMs,
        maxMs: e.maxMs,
        buckets: Array.from(e.buckets),
        firstSeen: e.firstSeen,
        lastSeen: e.lastSeen,
      });
    }
    return out;
  }

  clear(): void {
    this.entries.clear();
  }

  /** An observer feeding this table from statement records. */
  observer(): Observer {
    return {
      wants: { digest: true, sql: false },
      statement: (r: StatementRecord) => {
        if (r.sql === "" && r.kind === "") return; // not a statement (PING, …)
        this.record(r.digest(), r.session.user, r.schema, r.endedAt - r.startedAt, r.rows, r.ok);
      },
    };
  }
}

/**
 * Merges digest figures of several workers (or data planes): entries with the
 * same (hash, user, schema) add up (histograms bucket by bucket).
 */
export function mergeDigestStats(lists: readonly (readonly DigestStats[])[]): DigestStats[] {
  const byKey = new Map<string, DigestStats>();
  for (const list of lists) {
    for (const d of list) {
      const key = `${d.hash}\u0000${d.user}\u0000${d.schema}`;
      const m = byKey.get(key);
      if (m === undefined) {
        byKey.set(key, { ...d, buckets: [...d.buckets] });
        continue;
      }
      m.count += d.count;
      m.errors += d.errors;
      m.rows += d.rows;
      m.totalMs += d.totalMs;
      m.minMs = Math.min(m.minMs, d.minMs);
      m.maxMs = Math.max(m.maxMs, d.maxMs);
      for (let i = 0; i < m.buckets.length && i < d.buckets.length; i++) m.buckets[i] += d.buckets[i];
      m.firstSeen = Math.min(m.firstSeen, d.firstSeen);
      m.lastSeen = Math.max(m.lastSeen, d.lastSeen);
    }
  }
  return [...byKey.values()];
}

/** The 0.99 quantile of one digest's latencies, ms. */
export function digestP99(d: DigestStats): number {
  return histogramQuantile(d.buckets, d.count, 0.99, d.minMs, d.maxMs);
}

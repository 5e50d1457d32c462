/**
 * Query digests of one worker: per (digest hash, user, schema) how many
 * statements ran, how long they took (total, min, max and a latency
 * histogram for quantiles), how many rows they returned and how many failed,
 * and when the digest was first and last seen.
 *
 * Bounded: at most `maxEntries` entries; to make room, an entry not seen
 * since the eviction sweep last passed it is evicted (CLOCK, "second chance":
 * an approximation of least-recently-seen that costs nothing on a hit;
 * evictions counted). Latencies go into a fixed
 * log-spaced histogram (LATENCY_BUCKET_COUNT buckets, each 1.4× the previous,
 * from 10 µs to ~100 s): tables of several workers merge exactly by adding
 * buckets, and a quantile is read back within one bucket (±20 %).
 */
import type { DigestStats } from "@mysqlgw/proto";
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

/** One digest's figures, as read out of a table (and sent over IPC and to etcd: plain JSON; the shape is shared with the control plane). */
export type { DigestStats };

interface Entry {
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
  /** Seen since the eviction sweep last passed it. */
  referenced: boolean;
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
  /**
   * Entries by digest hash, then scanned by user and schema (few per hash):
   * no key string is built per statement (a concatenated key costs ~0.6 µs
   * to flatten and hash, the lookup here ~15 ns).
   */
  private readonly byHash = new Map<string, Entry[]>();
  /** Every entry in the eviction sweep's order (a Set keeps insertion order; a spared entry is re-inserted at the end). */
  private readonly sweep = new Set<Entry>();
  /** Entries dropped to make room. */
  evictions = 0;

  constructor(options: DigestTableOptions = {}) {
    this.maxEntries = Math.max(1, options.maxEntries ?? DEFAULT_DIGEST_TABLE_SIZE);
    this.clock = options.clock ?? Date.now;
  }

  get size(): number {
    return this.sweep.size;
  }

  /** Counts one statement. */
  record(d: { hash: string; text: string }, user: string, schema: string | null, durationMs: number, rows: number, ok: boolean): void {
    const s = schema ?? "";
    const now = this.clock();
    let list = this.byHash.get(d.hash);
    let e: Entry | undefined;
    if (list !== undefined) {
      for (let i = 0; i < list.length; i++) {
        const x = list[i];
        if (x.user === user && x.schema === s) {
          e = x;
          break;
        }
      }
    }
    if (e === undefined) {
      if (this.sweep.size >= this.maxEntries) {
        this.evictOne();
        list = this.byHash.get(d.hash);
      }
      e = {
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
        referenced: false,
      };
      if (list === undefined) this.byHash.set(d.hash, [e]);
      else list.push(e);
      this.sweep.add(e);
    } else {
      e.referenced = true;
    }
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

  /** Drops the first entry of the sweep not seen since the sweep last passed it (at most one pass over the table). */
  private evictOne(): void {
    const n = this.sweep.size;
    for (let i = 0; i < n; i++) {
      const first = this.sweep.values().next();
      if (first.done === true) return;
      const e = first.value;
      this.sweep.delete(e);
      if (!e.referenced) {
        this.drop(e);
        return;
      }
      // second chance: to the end of the sweep, unmarked
      e.referenced = false;
      this.sweep.add(e);
    }
    // every entry was marked: one pass unmarked them all, the first goes
    const first = this.sweep.values().next();
    if (first.done === true) return;
    this.sweep.delete(first.value);
    this.drop(first.value);
  }

  private drop(e: Entry): void {
    const list = this.byHash.get(e.hash);
    if (list !== undefined) {
      const i = list.indexOf(e);
      if (i >= 0) list.splice(i, 1);
      if (list.length === 0) this.byHash.delete(e.hash);
    }
    this.evictions++;
  }

  /** Every entry as plain data, in the eviction sweep's order. */
  snapshot(): DigestStats[] {
    const out: DigestStats[] = [];
    for (const e of this.sweep) {
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
    this.byHash.clear();
    this.sweep.clear();
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

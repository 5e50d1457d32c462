import { Buffer } from "node:buffer";
import { Capability } from "../protocol/constants";
import type { RuleAction } from "../routing/rules";

/**
 * The query rules' `cache` action: whole responses (the bytes of a SELECT's
 * result set as the backend sent them) kept per rule and per worker, and
 * replayed verbatim to a later client sending the same statement.
 *
 * What it guarantees, and what not:
 * - a hit is only ever the response to the same text (byte for byte), by the
 *   same mysqlgw user, in the same current schema, for a client with the same
 *   capabilities that shape the wire format (cacheKey), recorded at most
 *   `ttlMs` before;
 * - bounded: each ResultCache holds at most `maxBytes` (responses + keys +
 *   a fixed overhead per entry), evicting the least recently used entries
 *   first; a response larger than the budget is not kept;
 * - no invalidation: a write to the tables a cached result came from does not
 *   remove it — a hit may be up to `ttlMs` stale. That is the contract of the
 *   rule (choose the TTL for it);
 * - the engine, not this module, decides what may be cached and served: a
 *   single SELECT (no several statements, no locking read, no user variables,
 *   no LAST_INSERT_ID/FOUND_ROWS), outside a transaction with autocommit on,
 *   answered without an ERR, with the client's command at sequence id 0 (the
 *   cached bytes carry the sequence ids 1, 2, … of that exchange).
 *
 * Everything runs on the worker's event loop: no locking; a Buffer returned by
 * get() is shared by every hit and must not be modified (writing it to a
 * socket is fine).
 */

/** Counted for every entry besides its key and bytes (the Map slot, the entry object). */
export const ENTRY_OVERHEAD_BYTES = 96;

export interface ResultCacheOptions {
  /** The budget: bytes of responses and keys (plus ENTRY_OVERHEAD_BYTES each) kept at most. */
  maxBytes: number;
}

export interface ResultCacheStats {
  entries: number;
  /** Bytes counted against maxBytes. */
  bytes: number;
  maxBytes: number;
  hits: number;
  /** get() found nothing usable (absent or expired). */
  misses: number;
  /** Entries stored by put(). */
  stores: number;
  /** Entries removed to make room (least recently used first). */
  evictions: number;
  /** Entries found expired (by get or prune) and removed. */
  expirations: number;
  /** put() calls refused: a response larger than the whole budget, or a TTL ≤ 0. */
  rejected: number;
}

interface Entry {
  readonly bytes: Buffer;
  readonly expiresAt: number;
  /** What it counts against the budget. */
  readonly size: number;
}

/**
 * One bounded LRU of responses with a TTL per entry. `now` is passed in by the
 * caller (ms, any monotonic-enough clock; tests inject their own).
 * get() of a hit costs a Map lookup and a move to the most recently used end
 * (docs/benchmarks.md "Result cache").
 */
export class ResultCache {
  private maxBytesValue: number;
  /** Least recently used first (a Map keeps insertion order; a hit re-inserts). */
  private readonly entries = new Map<string, Entry>();
  private bytes = 0;
  private hits = 0;
  private misses = 0;
  private stores = 0;
  private evictions = 0;
  private expirations = 0;
  private rejected = 0;

  constructor(options: ResultCacheOptions) {
    this.maxBytesValue = Math.max(0, Math.floor(options.maxBytes));
  }

  get maxBytes(): number {
    return this.maxBytesValue;
  }

  /** The response cached under `key` if it has not expired at `now`, else null (an expired one is removed). */
  get(key: string, now: number): Buffer | null {
    const e = this.entries.get(key);
    if (e === undefined) {
      this.misses++;
      return null;
    }
    this.entries.delete(key);
    if (now >= e.expiresAt) {
      this.bytes -= e.size;
      this.expirations++;
      this.misses++;
      return null;
    }
    this.entries.set(key, e); // now the most recently used
    this.hits++;
    return e.bytes;
  }

  /**
   * Keeps `bytes` (not copied: the caller hands it over and must not modify
   * it) under `key` until `now + ttlMs`, replacing an entry of the same key,
   * evicting the least recently used entries until it fits. Refused (counted)
   * when it alone exceeds the budget or ttlMs ≤ 0.
   */
  put(key: string, bytes: Buffer, ttlMs: number, now: number): void {
    const size = bytes.length + key.length * 2 + ENTRY_OVERHEAD_BYTES;
    if (size > this.maxBytesValue || !(ttlMs > 0)) {
      this.rejected++;
      return;
    }
    const old = this.entries.get(key);
    if (old !== undefined) {
      this.entries.delete(key);
      this.bytes -= old.size;
    }
    this.evictDownTo(this.maxBytesValue - size, now);
    this.entries.set(key, { bytes, expiresAt: now + ttlMs, size });
    this.bytes += size;
    this.stores++;
  }

  /** Removes every entry expired at `now` (O(entries); for a periodic sweep). Returns how many. */
  prune(now: number): number {
    let n = 0;
    for (const [k, e] of this.entries) {
      if (now >= e.expiresAt) {
        this.entries.delete(k);
        this.bytes -= e.size;
        this.expirations++;
        n++;
      }
    }
    return n;
  }

  /** A new budget; entries are evicted (least recently used first) until they fit. */
  resize(maxBytes: number, now: number): void {
    this.maxBytesValue = Math.max(0, Math.floor(maxBytes));
    this.evictDownTo(this.maxBytesValue, now);
  }

  clear(): void {
    this.entries.clear();
    this.bytes = 0;
  }

  stats(): ResultCacheStats {
    return {
      entries: this.entries.size,
      bytes: this.bytes,
      maxBytes: this.maxBytesValue,
      hits: this.hits,
      misses: this.misses,
      stores: this.stores,
      evictions: this.evictions,
      expirations: this.expirations,
      rejected: this.rejected,
    };
  }

  /** Evicts from the least recently used end until at most `limit` bytes are held (expired entries counted as such). */
  private evictDownTo(limit: number, now: number): void {
    if (this.bytes <= limit) return;
    for (const [k, e] of this.entries) {
      if (this.bytes <= limit) break;
      this.entries.delete(k);
      this.bytes -= e.size;
      if (now >= e.expiresAt) this.expirations++;
      else this.evictions++;
    }
  }
}

/**
 * The capability bits that change the bytes of a text result set or of the
 * OK/EOF packets around it; the others (TLS, compression, auth plugins,
 * connect attributes, …) are left out of the key so that such clients share
 * entries.
 */
export const CACHE_KEY_CAPABILITIES =
  (Capability.Protocol41 |
    Capability.DeprecateEof |
    Capability.SessionTrack |
    Capability.FoundRows |
    Capability.LongFlag |
    Capability.MultiStatements |
    Capability.MultiResults |
    Capability.PsMultiResults |
    Capability.OptionalResultsetMetadata |
    Capability.Transactions) >>>
  0;

/**
 * The cache key of a statement: mysqlgw user, current schema (null and "" are
 * different), the statement text exactly as sent, and the client's
 * capabilities that shape the response (CACHE_KEY_CAPABILITIES). `context`
 * (addition to the interface) is anything else the bytes depend on that the
 * engine knows — e.g. the session's character set number and MariaDB
 * extended capabilities, or its tracked settings (time_zone, sql_mode): pass
 * it whenever it can differ between sessions of one user.
 */
export function cacheKey(user: string, schema: string | null, sql: string, clientCapabilities: number, context = ""): string {
  const caps = ((clientCapabilities & CACHE_KEY_CAPABILITIES) >>> 0).toString(16);
  // lengths first: no choice of names can make two different tuples one key
  const s = schema === null ? "-" : `${schema.length}:${schema}`;
  return `${caps}|${user.length}:${user}|${s}|${context.length}:${context}|${sql}`;
}

/**
 * The `context` part of a cache key for a session (addition): its character
 * set (the handshake's, as the backend connection was opened with), its
 * MariaDB extended capabilities (extended type info changes column
 * definitions) and its tracked settings (SET NAMES, time_zone, sql_mode, …:
 * name → replay text, as the routed session keeps them), in a stable order.
 */
export function cacheContext(characterSet: number, mariadbCapabilities: number, settings?: ReadonlyMap<string, string>): string {
  let out = `cs=${characterSet};mc=${(mariadbCapabilities >>> 0).toString(16)}`;
  if (settings !== undefined && settings.size > 0) {
    const names = [...settings.keys()].sort();
    for (const n of names) out += `;${n.length}:${n}=${(settings.get(n) as string).length}:${settings.get(n) as string}`;
  }
  return out;
}

/**
 * Collects the bytes of one response as the engine streams them to the client
 * (add() per chunk, each copied: the chunk may be reused after the call), up
 * to `maxBytes`; past that it gives up and frees what it held (take() then
 * returns null). Reusable: take() and reset() start afresh.
 */
export class ResponseRecorder {
  readonly maxBytes: number;
  private chunks: Buffer[] = [];
  private length = 0;
  private overflowed = false;

  constructor(maxBytes: number) {
    this.maxBytes = Math.max(0, Math.floor(maxBytes));
  }

  /** Bytes held so far. */
  get size(): number {
    return this.length;
  }

  /** True once the response went past maxBytes (until take/reset). */
  get gaveUp(): boolean {
    return this.overflowed;
  }

  add(chunk: Uint8Array): void {
    if (this.overflowed || chunk.length === 0) return;
    if (this.length + chunk.length > this.maxBytes) {
      this.overflowed = true;
      this.chunks = [];
      this.length = 0;
      return;
    }
    this.chunks.push(Buffer.from(chunk));
    this.length += chunk.length;
  }

  /** The whole response (one Buffer of its own), or null when nothing was recorded or the limit was passed; then starts afresh. */
  take(): Buffer | null {
    const out = this.overflowed || this.length === 0 ? null : this.chunks.length === 1 ? this.chunks[0] : Buffer.concat(this.chunks, this.length);
    this.reset();
    return out;
  }

  reset(): void {
    this.chunks = [];
    this.length = 0;
    this.overflowed = false;
  }
}

/**
 * The ResultCaches of one worker: one ResultCache per rule with a `cache`
 * action, by rule name, each with that rule's maxBytes. Kept across config
 * versions: sync() after each version keeps a rule's cache (resized if its
 * maxBytes changed, emptied if its TTL shrank, so no entry outlives the new
 * TTL) and drops those of rules that are gone or no longer cache. Sessions
 * still on an older version keep working: cacheFor() makes a cache for a rule it
 * does not know (and sync() drops it again with the next version if no rule
 * of that name caches).
 */
export class ResultCaches {
  private readonly caches = new Map<string, { cache: ResultCache; ttlMs: number }>();

  /** The cache of rule `action.rule` (made on first use). Null when the action does not cache. */
  cacheFor(action: RuleAction): ResultCache | null {
    const c = action.cache;
    if (c === null) return null;
    const slot = this.caches.get(action.rule);
    if (slot !== undefined) return slot.cache;
    const cache = new ResultCache({ maxBytes: c.maxBytes });
    this.caches.set(action.rule, { cache, ttlMs: c.ttlMs });
    return cache;
  }

  /** Brings the registry to a config version's rules (see the class comment). */
  sync(actions: readonly RuleAction[], now: number): void {
    const wanted = new Map<string, NonNullable<RuleAction["cache"]>>();
    for (const a of actions) if (a.cache !== null) wanted.set(a.rule, a.cache);
    for (const [name, slot] of this.caches) {
      const w = wanted.get(name);
      if (w === undefined) {
        slot.cache.clear();
        this.caches.delete(name);
        continue;
      }
      if (w.ttlMs < slot.ttlMs) slot.cache.clear();
      slot.ttlMs = w.ttlMs;
      if (w.maxBytes !== slot.cache.maxBytes) slot.cache.resize(w.maxBytes, now);
    }
  }

  /** Stats by rule name. */
  stats(): Map<string, ResultCacheStats> {
    const out = new Map<string, ResultCacheStats>();
    for (const [name, slot] of this.caches) out.set(name, slot.cache.stats());
    return out;
  }

  /** Every cache's expired entries removed (for a periodic sweep). */
  prune(now: number): void {
    for (const slot of this.caches.values()) slot.cache.prune(now);
  }

  get size(): number {
    return this.caches.size;
  }
}

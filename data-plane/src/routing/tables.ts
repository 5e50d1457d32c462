/**
 * The tables a statement reads or writes, for query rules with `tables`.
 *
 * A full parse (node-sql-parser, MariaDB grammar) costs tens to hundreds of
 * microseconds — more than a point select through the gateway — so the result
 * is cached by digest hash: statements with the same digest differ only in
 * literals, so they name the same tables. The cache is a bounded LRU
 * (`maxEntries`, default 10,000) per worker. A statement the parser cannot
 * read is cached too, as "no tables": a rule with `tables` then does not match
 * it (docs/policy.md "Query rules"). The parser module is loaded on the first
 * parse, so a data plane whose rules never name tables never loads it.
 *
 * Not safe to share across threads (there are none); the cache is mutable
 * state of one worker and never holds statement text.
 */
import type { Parser } from "node-sql-parser";

export interface TableRef {
  /** The schema written in the statement (`db`.`t`); null when unqualified (the session's schema). */
  schema: string | null;
  table: string;
}

export interface TableExtractorOptions {
  /** Most digests whose tables are kept (LRU). Default 10,000. */
  maxEntries?: number;
}

export const DEFAULT_TABLE_CACHE_ENTRIES = 10_000;

export interface TableExtractorStats {
  hits: number;
  misses: number;
  /** Misses the parser could not read (cached as no tables). */
  parseFailures: number;
  /** Entries now held. */
  size: number;
}

export interface TableExtractor {
  /**
   * The tables of `sql`, whose digest hash is `digestHash`: from the cache, or
   * parsed and cached. null when the parser cannot read the statement (also
   * cached). The array is shared and frozen: do not modify it.
   */
  get(sql: string, digestHash: string): readonly TableRef[] | null;
  stats(): TableExtractorStats;
  clear(): void;
}

type ParserModule = { Parser: new () => Parser };
let parser: Parser | null = null;

function loadParser(): Parser {
  if (parser === null) {
    // Loaded on first use (about 260 KB of generated grammar): a worker whose
    // rules never name tables never pays for it. A static import would load it
    // with the routing module.
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const mod = require("node-sql-parser/build/mariadb") as ParserModule;
    parser = new mod.Parser();
  }
  return parser;
}

const PARSE_OPTIONS = { database: "MariaDB" };

/**
 * The tables of one statement, parsed now (no cache): each table once, in the
 * parser's order; null when the statement cannot be parsed. Never throws.
 */
export function parseTables(sql: string): TableRef[] | null {
  let list: string[];
  try {
    list = loadParser().tableList(sql, PARSE_OPTIONS);
  } catch {
    return null;
  }
  const out: TableRef[] = [];
  const seen = new Set<string>();
  for (const entry of list) {
    // "<type>::<schema or null>::<table>"
    const first = entry.indexOf("::");
    const second = first < 0 ? -1 : entry.indexOf("::", first + 2);
    if (second < 0) continue;
    const schemaText = entry.slice(first + 2, second);
    const table = entry.slice(second + 2);
    if (table === "") continue;
    const schema = schemaText === "null" || schemaText === "" ? null : schemaText;
    const key = `${schema ?? ""}.${table}`;
    if (seen.has(key)) continue;
    seen.add(key);
    out.push(Object.freeze({ schema, table }));
  }
  return out;
}

class LruTableExtractor implements TableExtractor {
  private readonly entries = new Map<string, readonly TableRef[] | null>();
  private readonly maxEntries: number;
  private hits = 0;
  private misses = 0;
  private parseFailures = 0;

  constructor(maxEntries: number) {
    this.maxEntries = maxEntries;
  }

  get(sql: string, digestHash: string): readonly TableRef[] | null {
    const entries = this.entries;
    const cached = entries.get(digestHash);
    if (cached !== undefined) {
      this.hits++;
      // most recently used last: delete and re-insert (Map keeps insertion order)
      entries.delete(digestHash);
      entries.set(digestHash, cached);
      return cached;
    }
    this.misses++;
    const parsed = parseTables(sql);
    const value = parsed === null ? null : Object.freeze(parsed);
    if (value === null) this.parseFailures++;
    if (entries.size >= this.maxEntries) {
      const oldest = entries.keys().next();
      if (oldest.done !== true) entries.delete(oldest.value);
    }
    entries.set(digestHash, value);
    return value;
  }

  stats(): TableExtractorStats {
    return { hits: this.hits, misses: this.misses, parseFailures: this.parseFailures, size: this.entries.size };
  }

  clear(): void {
    this.entries.clear();
  }
}

/** A table extractor with its own LRU cache (one per worker is enough). */
export function createTableExtractor(options: TableExtractorOptions = {}): TableExtractor {
  const max = options.maxEntries ?? DEFAULT_TABLE_CACHE_ENTRIES;
  if (!Number.isInteger(max) || max < 1) throw new RangeError(`maxEntries must be a positive integer, got ${max}`);
  return new LruTableExtractor(max);
}

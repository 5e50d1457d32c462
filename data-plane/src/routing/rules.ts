/**
 * Query rules (Policy.rules), compiled once per config version into matchers
 * and ready actions. Ordered: the first rule whose every given condition holds
 * decides; a condition left out (or an empty list) holds for everything, and a
 * list holds when any element does.
 *
 * Conditions, cheapest first: listener, user, schema, kind, digest, pattern,
 * tables. The digest and the tables are computed only when a rule that gets
 * that far needs them (`RuleContext.digest()` / `tables()` are lazy), and
 * `needsDigest` / `needsTables` tell the engine whether any rule ever will. A
 * policy without rules compiles to a shared empty set whose `empty` is true:
 * the engine then builds no context at all.
 *
 * A rule whose regular expression does not compile (the control plane refuses
 * such policies, so only a hand-written etcd value could carry one) never
 * matches and is listed in `problems`.
 */
import { durationMs } from "@bufbuild/protobuf/wkt";
import { RouteAction_Target, type QueryRule } from "@mysqlgw/proto";
import { RouteTarget } from "./decide";
import { digestHash } from "./digest";
import { statementKindOf } from "./names";
import { StatementFlags as SF, StatementKind as SK, type Classification } from "./statement-kind";
type StatementKind = SK;
import type { TableExtractor, TableRef } from "./tables";

export { STATEMENT_KIND_NAMES, statementKindName, statementKindOf, statementFlagNames } from "./names";
export type { TableRef } from "./tables";

/** What a rule is matched against; digest() and tables() are computed on first call, at most once. */
export interface RuleContext {
  user: string;
  /** The session's current schema; null when none is selected. */
  schema: string | null;
  listener: string;
  sql: string;
  classification: Classification;
  /** The digest hash: 16 lower-case hex digits. */
  digest(): string;
  /** The tables the statement names; empty when it cannot be parsed. */
  tables(): readonly TableRef[];
}

export interface RuleAction {
  /** The rule's name. */
  rule: string;
  /** Where to send the statement: another cluster and/or a target; null when the rule does not route. */
  route: { cluster: string | null; target: RouteTarget | null } | null;
  /** Refuse the statement with this error (defaults filled in: 1142, 42000, a message naming the rule). */
  deny: { errno: number; sqlState: string; message: string } | null;
  /** The statement text to send instead. */
  rewrite: ((sql: string) => string) | null;
  /** Also run the statement on this cluster (ratio 0..1, 0 in policy meaning 1), discarding the result. */
  mirror: { cluster: string; ratio: number } | null;
  /** Answer identical reads from a cache (defaults filled in: 1 MiB per result, 64 MiB per rule). */
  cache: { ttlMs: number; maxResultBytes: number; maxBytes: number } | null;
}

export interface CompiledRules {
  /** No rules: `match` always returns null; skip building a context. */
  readonly empty: boolean;
  /** Some rule matches on `tables` (the engine needs a TableExtractor). */
  readonly needsTables: boolean;
  /** Some rule matches on `digests`. */
  readonly needsDigest: boolean;
  /** The actions, in rule order. */
  readonly actions: readonly RuleAction[];
  /** Rules that can never match, and why (e.g. a pattern that does not compile). */
  readonly problems: readonly string[];
  /** Some usable rule may match statements on listener `name` (its sessions must then be read statement by statement). */
  appliesToListener(name: string): boolean;
  /** The first rule that matches, or null. */
  match(ctx: RuleContext): RuleAction | null;
}

export const DEFAULT_DENY_ERRNO = 1142; // ER_TABLEACCESS_DENIED_ERROR
export const DEFAULT_DENY_SQLSTATE = "42000";
export const DEFAULT_CACHE_MAX_RESULT_BYTES = 1024 * 1024;
export const DEFAULT_CACHE_MAX_BYTES = 64 * 1024 * 1024;

interface CompiledRule {
  action: RuleAction;
  /** false: never matches (a problem was found). */
  usable: boolean;
  users: ReadonlySet<string> | null;
  schemas: ReadonlySet<string> | null;
  listeners: ReadonlySet<string> | null;
  kinds: ReadonlySet<StatementKind> | null;
  digests: ReadonlySet<string> | null;
  pattern: RegExp | null;
  /** Lower-cased; `schema` null matches a table of that name in any schema. */
  tables: ReadonlyArray<{ schema: string | null; table: string }> | null;
  /** Only UPDATE or DELETE without a WHERE clause. */
  withoutWhere: boolean;
}

function setOrNull<T>(values: readonly T[]): ReadonlySet<T> | null {
  return values.length === 0 ? null : new Set(values);
}

function compileRule(r: QueryRule, problems: string[]): CompiledRule {
  const m = r.match;
  let usable = true;
  let pattern: RegExp | null = null;
  if (m !== undefined && m.pattern !== "") {
    try {
      pattern = new RegExp(m.pattern, "i");
    } catch (err) {
      usable = false;
      problems.push(`rule ${r.name}: match.pattern does not compile (${(err as Error).message}); the rule never matches`);
    }
  }
  let kinds: Set<StatementKind> | null = null;
  if (m !== undefined && m.kinds.length > 0) {
    kinds = new Set();
    for (const name of m.kinds) {
      const k = statementKindOf(name);
      if (k === null) problems.push(`rule ${r.name}: unknown kind ${JSON.stringify(name)} in match.kinds is ignored`);
      else kinds.add(k);
    }
    if (kinds.size === 0) {
      usable = false;
      problems.push(`rule ${r.name}: no known kind in match.kinds; the rule never matches`);
    }
  }
  const tables = m === undefined || m.tables.length === 0 ? null : m.tables.map((t) => {
    const dot = t.indexOf(".");
    return dot < 0 ? { schema: null, table: t.toLowerCase() } : { schema: t.slice(0, dot).toLowerCase(), table: t.slice(dot + 1).toLowerCase() };
  });
  const action = compileAction(r, problems, () => { usable = false; });
  return {
    action,
    usable,
    users: setOrNull(m?.users ?? []),
    schemas: setOrNull(m?.schemas ?? []),
    listeners: setOrNull(m?.listeners ?? []),
    kinds,
    digests: setOrNull((m?.digests ?? []).map((d) => d.toLowerCase())),
    pattern,
    tables,
    withoutWhere: m?.withoutWhere === true,
  };
}

function compileAction(r: QueryRule, problems: string[], unusable: () => void): RuleAction {
  let route: RuleAction["route"] = null;
  if (r.route !== undefined) {
    const target = r.route.target === RouteAction_Target.PRIMARY ? RouteTarget.Primary
      : r.route.target === RouteAction_Target.REPLICA ? RouteTarget.Replica : null;
    const cluster = r.route.cluster === "" ? null : r.route.cluster;
    if (target !== null || cluster !== null) route = { cluster, target };
  }
  let deny: RuleAction["deny"] = null;
  if (r.deny !== undefined) {
    deny = {
      errno: r.deny.code === 0 ? DEFAULT_DENY_ERRNO : r.deny.code,
      sqlState: r.deny.sqlstate === "" ? DEFAULT_DENY_SQLSTATE : r.deny.sqlstate,
      message: r.deny.message === "" ? `statement refused by mysqlgw rule ${r.name}` : r.deny.message,
    };
  }
  let rewrite: RuleAction["rewrite"] = null;
  if (r.rewrite !== undefined) {
    try {
      // every occurrence, case-insensitively like match.pattern
      const re = new RegExp(r.rewrite.pattern, "gi");
      const replacement = r.rewrite.replacement;
      rewrite = (sql: string) => sql.replace(re, replacement);
    } catch (err) {
      unusable();
      problems.push(`rule ${r.name}: rewrite.pattern does not compile (${(err as Error).message}); the rule never matches`);
    }
  }
  const mirror = r.mirror === undefined ? null : { cluster: r.mirror.cluster, ratio: r.mirror.ratio === 0 ? 1 : r.mirror.ratio };
  let cache: RuleAction["cache"] = null;
  if (r.cache !== undefined) {
    cache = {
      ttlMs: r.cache.ttl === undefined ? 0 : durationMs(r.cache.ttl),
      maxResultBytes: r.cache.maxResultBytes === 0 ? DEFAULT_CACHE_MAX_RESULT_BYTES : r.cache.maxResultBytes,
      maxBytes: r.cache.maxBytes === 0n ? DEFAULT_CACHE_MAX_BYTES : Number(r.cache.maxBytes),
    };
  }
  return { rule: r.name, route, deny, rewrite, mirror, cache };
}

/** An UPDATE or DELETE with no WHERE (outside parentheses): it touches every row. */
function isUnboundedWrite(c: Classification): boolean {
  return (c.kind === SK.Update || c.kind === SK.Delete) && (c.flags & SF.HasWhere) === 0;
}

function matches(r: CompiledRule, ctx: RuleContext): boolean {
  if (!r.usable) return false;
  if (r.listeners !== null && !r.listeners.has(ctx.listener)) return false;
  if (r.users !== null && !r.users.has(ctx.user)) return false;
  if (r.schemas !== null && (ctx.schema === null || !r.schemas.has(ctx.schema))) return false;
  if (r.kinds !== null && !r.kinds.has(ctx.classification.kind)) return false;
  if (r.withoutWhere && !isUnboundedWrite(ctx.classification)) return false;
  if (r.digests !== null && !r.digests.has(ctx.digest())) return false;
  if (r.pattern !== null && !r.pattern.test(ctx.sql)) return false;
  if (r.tables !== null && !tablesMatch(r.tables, ctx.tables(), ctx.schema)) return false;
  return true;
}

/**
 * Whether any statement table is one of the rule's: "schema.table" matches a
 * table qualified with that schema, or an unqualified one while that schema is
 * current; "table" matches the name in any schema. Case-insensitive.
 */
function tablesMatch(wanted: NonNullable<CompiledRule["tables"]>, have: readonly TableRef[], current: string | null): boolean {
  for (const t of have) {
    const name = t.table.toLowerCase();
    const schema = (t.schema ?? current)?.toLowerCase() ?? null;
    for (const w of wanted) {
      if (w.table === name && (w.schema === null || w.schema === schema)) return true;
    }
  }
  return false;
}

class RuleSet implements CompiledRules {
  readonly empty: boolean;
  readonly needsTables: boolean;
  readonly needsDigest: boolean;
  readonly actions: readonly RuleAction[];
  readonly problems: readonly string[];
  private readonly rules: readonly CompiledRule[];

  constructor(rules: readonly CompiledRule[], problems: readonly string[]) {
    this.rules = rules;
    this.empty = rules.length === 0;
    this.needsTables = rules.some((r) => r.usable && r.tables !== null);
    this.needsDigest = rules.some((r) => r.usable && r.digests !== null);
    this.actions = rules.map((r) => r.action);
    this.problems = problems;
  }

  appliesToListener(name: string): boolean {
    return this.rules.some((r) => r.usable && (r.listeners === null || r.listeners.has(name)));
  }

  match(ctx: RuleContext): RuleAction | null {
    const rules = this.rules;
    for (let i = 0; i < rules.length; i++) if (matches(rules[i], ctx)) return rules[i].action;
    return null;
  }
}

const NO_RULES = new RuleSet([], []);

/** Compiles Policy.rules (in order). Never throws; see CompiledRules.problems. */
export function compileRules(rules: readonly QueryRule[]): CompiledRules {
  if (rules.length === 0) return NO_RULES;
  const problems: string[] = [];
  return new RuleSet(rules.map((r) => compileRule(r, problems)), problems);
}

const NO_TABLES: readonly TableRef[] = Object.freeze([]);

export interface RuleContextInit {
  user: string;
  schema: string | null;
  listener: string;
  sql: string;
  classification: Classification;
  /** The statement's bytes (a COM_QUERY payload view) for the digest; absent: the UTF-8 of `sql`. */
  bytes?: Uint8Array;
  start?: number;
  end?: number;
}

/**
 * A RuleContext whose digest and tables are computed on first use: the digest
 * from the bytes (or `sql`), the tables through `tables` (cached by digest);
 * without an extractor, or for a statement it cannot parse, no tables.
 */
export function createRuleContext(init: RuleContextInit, tables: TableExtractor | null): RuleContext {
  let hash: string | null = null;
  let tableRefs: readonly TableRef[] | null = null;
  const digest = (): string => {
    if (hash === null) {
      hash = init.bytes !== undefined
        ? digestHash(init.bytes, init.start ?? 0, init.end ?? init.bytes.length)
        : digestHash(Buffer.from(init.sql, "utf8"));
    }
    return hash;
  };
  return {
    user: init.user,
    schema: init.schema,
    listener: init.listener,
    sql: init.sql,
    classification: init.classification,
    digest,
    tables(): readonly TableRef[] {
      if (tableRefs === null) tableRefs = tables === null ? NO_TABLES : tables.get(init.sql, digest()) ?? NO_TABLES;
      return tableRefs;
    },
  };
}

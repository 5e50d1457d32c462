import { durationMs } from "@bufbuild/protobuf/wkt";
import { RouteAction_Target, type Policy, type QueryRule } from "@mysqlgw/proto";
import type { PolicyViolationInit } from "../errors";
import { RESOURCE_NAME_RE } from "./validate";

/**
 * Statement kinds a rule may name (match.kinds), as the data plane's
 * classifier and `mysqlgw explain` print them
 * (data-plane/src/routing/names.ts keeps the same list; change both).
 */
export const RULE_KINDS: readonly string[] = [
  "OTHER", "SELECT", "INSERT", "UPDATE", "DELETE", "REPLACE", "BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT",
  "SET", "USE", "SHOW", "CALL", "LOAD", "LOCK", "UNLOCK", "CREATE", "ALTER", "DROP", "TRUNCATE", "RENAME",
  "GRANT", "REVOKE", "XA", "KILL", "PREPARE", "EXECUTE", "DEALLOCATE", "DO", "HANDLER", "EXPLAIN",
];
const KIND_ALIASES = new Set(["DESCRIBE", "DESC"]);

/** Most rules in one policy: each statement may be checked against all of them. */
export const MAX_RULES = 1000;
/** MariaDB's MYSQL_ERRMSG_SIZE: a longer message is cut by clients. */
export const MAX_DENY_MESSAGE_BYTES = 512;
/** Longest cache TTL: one day. */
export const MAX_CACHE_TTL_MS = 86_400_000;
const DIGEST_RE = /^[0-9a-fA-F]{16}$/;
const SQLSTATE_RE = /^[0-9A-Z]{5}$/;
const IDENT_RE = /^[^.\s`]{1,64}$/;
const DEFAULT_CACHE_MAX_RESULT_BYTES = 1024 * 1024;
const DEFAULT_CACHE_MAX_BYTES = 64 * 1024 * 1024;

/**
 * Policy.rules: names unique and well-formed; every match condition
 * well-formed and referring to what the policy defines (users, listeners);
 * each action complete; deny alone; cache only on rules that can match reads.
 * Pushes violations (kind "QueryRule", index into policy.rules) onto `out`.
 */
export function checkRules(policy: Policy, out: PolicyViolationInit[]): void {
  const clusters = new Set(policy.clusters.map((c) => c.name));
  const listeners = new Set(policy.listeners.map((l) => l.name));
  const users = new Set(policy.users.map((u) => u.name));
  const names = new Map<string, number>();
  if (policy.rules.length > MAX_RULES) {
    out.push({ kind: "QueryRule", name: policy.rules[MAX_RULES]!.name, index: MAX_RULES, field: "", description: `${policy.rules.length} rules are too many; use at most ${MAX_RULES} (every statement may be checked against each)` });
  }
  policy.rules.forEach((r, i) => checkRule(r, i, { clusters, listeners, users, names }, out));
}

interface Known {
  clusters: Set<string>;
  listeners: Set<string>;
  users: Set<string>;
  names: Map<string, number>;
}

function checkRule(r: QueryRule, index: number, known: Known, out: PolicyViolationInit[]): void {
  const add = (field: string, description: string): void => {
    out.push({ kind: "QueryRule", name: r.name, index, field, description });
  };
  if (r.name === "") {
    add("name", "rule name is missing; give each rule a name of lower-case letters, digits, '-' or '_' (e.g. no-unbounded-deletes)");
  } else if (!RESOURCE_NAME_RE.test(r.name)) {
    add("name", `${JSON.stringify(r.name)} is not a valid rule name; use 1-63 lower-case letters, digits, '-' or '_', starting with a letter or digit`);
  } else if (known.names.has(r.name)) {
    add("name", `rule ${JSON.stringify(r.name)} appears twice (also rules[${known.names.get(r.name)}]); rename or remove one`);
  } else {
    known.names.set(r.name, index);
  }

  const m = r.match;
  if (m !== undefined) {
    m.users.forEach((u, k) => {
      if (!known.users.has(u)) add(`match.users[${k}]`, `user ${JSON.stringify(u)} is not defined in this policy, so the condition never holds for it; define the User or fix the name`);
    });
    m.listeners.forEach((l, k) => {
      if (!known.listeners.has(l)) add(`match.listeners[${k}]`, `listener ${JSON.stringify(l)} is not defined in this policy; define the Listener or fix the name` + list(known.listeners));
    });
    m.schemas.forEach((s, k) => {
      if (!IDENT_RE.test(s)) add(`match.schemas[${k}]`, `${JSON.stringify(s)} is not a schema name; use the name as MariaDB shows it (1-64 characters, no dot, space or backtick)`);
    });
    m.kinds.forEach((kind, k) => {
      const up = kind.toUpperCase();
      if (!RULE_KINDS.includes(up) && !KIND_ALIASES.has(up)) {
        const near = RULE_KINDS.find((n) => n.startsWith(up.slice(0, 3)) && up.length > 0);
        add(`match.kinds[${k}]`, `${JSON.stringify(kind)} is not a statement kind${near === undefined ? "" : ` — did you mean ${near}?`}; use one of ${RULE_KINDS.join(", ")} (as mysqlgw explain prints them)`);
      }
    });
    m.digests.forEach((d, k) => {
      if (!DIGEST_RE.test(d)) add(`match.digests[${k}]`, `${JSON.stringify(d)} is not a digest; use the 16 hex digits mysqlgw explain prints for the statement (digest: …)`);
    });
    if (m.pattern !== "") {
      const problem = regexProblem(m.pattern);
      if (problem !== null) add("match.pattern", `the regular expression does not compile (${problem}); write it in JavaScript syntax (it is matched case-insensitively)`);
    }
    m.tables.forEach((t, k) => {
      const parts = t.split(".");
      if (parts.length > 2 || !parts.every((p) => IDENT_RE.test(p))) {
        add(`match.tables[${k}]`, `${JSON.stringify(t)} is not a table; write "table" (any schema) or "schema.table", unquoted`);
      }
    });
  }

  const actions = (["route", "rewrite", "mirror", "cache"] as const).filter((a) => r[a] !== undefined);
  if (r.deny !== undefined) {
    if (actions.length > 0) add("deny", `a rule that denies runs nothing, so ${actions.join(", ")} would never apply; remove ${actions.length === 1 ? "it" : "them"} or move ${actions.length === 1 ? "it" : "them"} to another rule`);
    const d = r.deny;
    if (d.code !== 0 && (d.code < 1000 || d.code > 65535)) add("deny.code", `${d.code} is not a MySQL error number; use 1000..65535 (e.g. 1142, command denied), or leave it out for 1142`);
    if (d.sqlstate !== "" && !SQLSTATE_RE.test(d.sqlstate)) add("deny.sqlstate", `${JSON.stringify(d.sqlstate)} is not a SQLSTATE; use 5 digits or upper-case letters (e.g. 42000), or leave it out for 42000`);
    if (Buffer.byteLength(d.message, "utf8") > MAX_DENY_MESSAGE_BYTES) add("deny.message", `the message is ${Buffer.byteLength(d.message, "utf8")} bytes; clients cut error messages at ${MAX_DENY_MESSAGE_BYTES} bytes, so shorten it`);
  }
  if (r.route !== undefined) {
    const rt = r.route;
    if (rt.cluster !== "" && !known.clusters.has(rt.cluster)) add("route.cluster", `cluster ${JSON.stringify(rt.cluster)} is not defined in this policy; define the Cluster or fix the name` + list(known.clusters));
    if (rt.target !== RouteAction_Target.UNSPECIFIED && rt.target !== RouteAction_Target.PRIMARY && rt.target !== RouteAction_Target.REPLICA) add("route.target", `${rt.target} is not a target; use TARGET_PRIMARY or TARGET_REPLICA`);
    if (rt.cluster === "" && rt.target === RouteAction_Target.UNSPECIFIED) add("route", "the route names neither a cluster nor a target, so it changes nothing; set route.cluster and/or route.target (TARGET_PRIMARY, TARGET_REPLICA)");
  }
  if (r.rewrite !== undefined) {
    if (r.rewrite.pattern === "") {
      add("rewrite.pattern", "the rewrite has no pattern; set rewrite.pattern to the regular expression whose matches are replaced by rewrite.replacement");
    } else {
      const problem = regexProblem(r.rewrite.pattern);
      if (problem !== null) add("rewrite.pattern", `the regular expression does not compile (${problem}); write it in JavaScript syntax`);
    }
  }
  if (r.mirror !== undefined) {
    const mi = r.mirror;
    if (mi.cluster === "") add("mirror.cluster", "the mirror names no cluster; set mirror.cluster to the Cluster that also runs the statements");
    else if (!known.clusters.has(mi.cluster)) add("mirror.cluster", `cluster ${JSON.stringify(mi.cluster)} is not defined in this policy; define the Cluster or fix the name` + list(known.clusters));
    if (!(mi.ratio >= 0 && mi.ratio <= 1)) add("mirror.ratio", `${mi.ratio} is not a share; use 0..1 (e.g. 0.1 mirrors one statement in ten; 0 or absent means all)`);
  }
  if (r.cache !== undefined) {
    const c = r.cache;
    if (c.ttl === undefined) {
      add("cache.ttl", "the cache has no ttl; set how long a result stays (e.g. ttl: 5s), up to 1 day");
    } else {
      const ms = durationMs(c.ttl);
      if (!(ms >= 1 && ms <= MAX_CACHE_TTL_MS)) add("cache.ttl", `${ms} ms is out of range; use 1 ms to 1 day (e.g. 5s)`);
    }
    const maxBytes = c.maxBytes === 0n ? BigInt(DEFAULT_CACHE_MAX_BYTES) : c.maxBytes;
    const maxResult = c.maxResultBytes === 0 ? DEFAULT_CACHE_MAX_RESULT_BYTES : c.maxResultBytes;
    if (BigInt(maxResult) > maxBytes) add("cache.maxResultBytes", `one result (${maxResult} bytes) may not exceed all results of the rule (maxBytes ${maxBytes}); raise maxBytes or lower maxResultBytes`);
    const kinds = m?.kinds.map((k) => k.toUpperCase()) ?? [];
    const notReads = kinds.filter((k) => k !== "SELECT");
    if (notReads.length > 0) add("cache", `only SELECT results are cached, so a cache on a rule matching ${notReads.join(", ")} would never apply; set match.kinds: [SELECT] (or leave kinds out: only the SELECTs are cached)`);
  }
}

function regexProblem(pattern: string): string | null {
  try {
    new RegExp(pattern, "i");
    return null;
  } catch (err) {
    return (err as Error).message;
  }
}

function list(names: Set<string>): string {
  return names.size === 0 ? " (the policy defines none)" : ` (defined: ${[...names].join(", ")})`;
}

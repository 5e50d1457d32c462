import { durationMs } from "@bufbuild/protobuf/wkt";
import { Quota_OnExceed, type Policy, type Quota } from "@mysqlgw/proto";
import type { PolicyViolationInit } from "../errors";
import { RESOURCE_NAME_RE } from "./validate";

/** Most quotas in one policy: a statement may go through each that matches. */
export const MAX_QUOTAS = 200;
/** Highest fleet-wide rate accepted (a typo guard: no fleet serves more). */
export const MAX_QUOTA_QPS = 10_000_000;
/** Most statements waiting per data-plane worker and quota. */
export const MAX_QUOTA_QUEUE = 100_000;
/** Longest max_wait: a client waiting longer has usually given up. */
export const MAX_QUOTA_WAIT_MS = 600_000;

const ON_EXCEED: ReadonlySet<number> = new Set([Quota_OnExceed.UNSPECIFIED, Quota_OnExceed.QUEUE, Quota_OnExceed.REJECT]);

/**
 * Policy.quotas: names unique and well-formed; the users, listeners, clusters
 * and rules they match on defined in the policy; at least one limit
 * (queries_per_second or max_concurrent); figures finite and in range.
 * Pushes violations (kind "Quota", index into policy.quotas) onto `out`.
 */
export function checkQuotas(policy: Policy, out: PolicyViolationInit[]): void {
  const known = {
    users: new Set(policy.users.map((u) => u.name)),
    listeners: new Set(policy.listeners.map((l) => l.name)),
    clusters: new Set(policy.clusters.map((c) => c.name)),
    rules: new Set(policy.rules.map((r) => r.name)),
  };
  if (policy.quotas.length > MAX_QUOTAS) {
    out.push({ kind: "Quota", name: policy.quotas[MAX_QUOTAS]!.name, index: MAX_QUOTAS, field: "", description: `${policy.quotas.length} quotas are too many; use at most ${MAX_QUOTAS} (each statement goes through every quota that matches it)` });
  }
  const names = new Map<string, number>();
  policy.quotas.forEach((q, i) => checkQuota(q, i, known, names, out));
}

type Known = Record<"users" | "listeners" | "clusters" | "rules", ReadonlySet<string>>;

function checkQuota(q: Quota, i: number, known: Known, names: Map<string, number>, out: PolicyViolationInit[]): void {
  const add = (field: string, description: string): void => {
    out.push({ kind: "Quota", name: q.name, index: i, field, description });
  };
  if (q.name === "") add("name", "name is missing; give every Quota a name of lower-case letters, digits, '-' or '_' (e.g. app-rate): errors and metrics name it");
  else if (!RESOURCE_NAME_RE.test(q.name)) add("name", `${JSON.stringify(q.name)} is not a valid name; use 1-63 lower-case letters, digits, '-' or '_', starting with a letter or digit`);
  else if (names.has(q.name)) add("name", `Quota ${JSON.stringify(q.name)} is defined twice (also quotas[${names.get(q.name)}]); rename or remove one`);
  else names.set(q.name, i);

  const refs: [keyof Known, readonly string[], string][] = [
    ["users", q.users, "User"],
    ["listeners", q.listeners, "Listener"],
    ["clusters", q.clusters, "Cluster"],
    ["rules", q.rules, "QueryRule"],
  ];
  for (const [field, list, kind] of refs) {
    const seen = new Set<string>();
    list.forEach((n, k) => {
      if (seen.has(n)) add(`${field}[${k}]`, `${JSON.stringify(n)} is listed twice; remove one`);
      else if (!known[field].has(n)) {
        const defined = [...known[field]];
        add(`${field}[${k}]`, `${kind} ${JSON.stringify(n)} is not defined in this policy; define it or fix the name` + (defined.length > 0 ? ` (defined: ${defined.slice(0, 20).join(", ")})` : ` (the policy defines no ${kind} resources)`));
      }
      seen.add(n);
    });
  }

  const qps = q.queriesPerSecond;
  if (!Number.isFinite(qps) || qps < 0 || qps > MAX_QUOTA_QPS) {
    add("queriesPerSecond", `${qps} is not a rate; use a number of statements per second for the whole fleet from 0 (no rate limit) to ${MAX_QUOTA_QPS}, e.g. 300 or 0.5`);
  } else if (qps === 0 && q.maxConcurrent === 0) {
    add("queriesPerSecond", "the quota limits nothing; set queriesPerSecond (statements per second, fleet-wide, e.g. 300) and/or maxConcurrent (statements running at once, fleet-wide, e.g. 20)");
  }
  if (q.burst > 0 && qps === 0) add("burst", "burst has no effect without queriesPerSecond; set queriesPerSecond or drop burst");
  else if (q.burst > 0 && q.burst < qps / 1000) {
    add("burst", `a burst of ${q.burst} is below one millisecond of ${qps} queries per second; leave burst out (one second's worth) or set it to at least ${Math.ceil(qps / 1000)}`);
  }
  if (!ON_EXCEED.has(q.onExceed)) add("onExceed", `unknown value ${q.onExceed}; use ON_EXCEED_QUEUE (wait in a bounded queue) or ON_EXCEED_REJECT (refuse at once with ERR 1226)`);
  const reject = q.onExceed === Quota_OnExceed.REJECT;
  if (q.maxQueue > MAX_QUOTA_QUEUE) add("maxQueue", `${q.maxQueue} is too large; use 1..${MAX_QUOTA_QUEUE} statements per data-plane worker (0: 1000)`);
  if (reject && q.maxQueue > 0) add("maxQueue", "maxQueue has no effect with ON_EXCEED_REJECT (nothing waits); drop it or use ON_EXCEED_QUEUE");
  if (q.maxWait !== undefined) {
    const ms = durationMs(q.maxWait);
    if (!(ms >= 0 && ms <= MAX_QUOTA_WAIT_MS)) add("maxWait", `${ms} ms is out of range; use 0s (default 1s) to ${MAX_QUOTA_WAIT_MS / 1000}s, e.g. 2s`);
    else if (reject && ms > 0) add("maxWait", "maxWait has no effect with ON_EXCEED_REJECT (nothing waits); drop it or use ON_EXCEED_QUEUE");
  }
}

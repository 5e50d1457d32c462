import { create } from "@bufbuild/protobuf";
import { PolicySchema, type Listener, type Policy } from "@mysqlgw/proto";
// The data plane's own routing code (no sockets, no etcd): what explain prints is what it does.
import {
  classify,
  compileRules,
  createRuleContext,
  createSessionRouteState,
  createTableExtractor,
  decideRoute,
  digest,
  listenerModeName,
  listenerModeOf,
  routeTargetName,
  statementFlagNames,
  statementKindName,
  type RouteDecision,
  type RuleAction,
  type TableRef,
} from "@mysqlgw/data-plane/dist/routing";
import { CliError } from "../cli-error";
import { loadPolicy } from "../policy-files";
import { callApi, type CommandContext } from "./context";

export interface ExplainOptions {
  user: string;
  schema?: string;
  listener?: string;
  sql: string;
  file?: string[];
  json?: boolean;
  inTransaction?: boolean;
  autocommitOff?: boolean;
}

/** What `mysqlgw explain --json` prints. */
export interface Explanation {
  statement: string;
  kind: string;
  flags: string[];
  hint: "primary" | "replica" | null;
  digest: { hash: string; text: string };
  /** null: the statement could not be parsed (a rule with tables does not match it). */
  tables: string[] | null;
  user: string;
  schema: string | null;
  listener: { name: string; role: string; cluster: string };
  session: { inTransaction: boolean; autocommit: boolean };
  /** The first matching rule, or null. */
  rule: { name: string; position: number; actions: string[] } | null;
  /** Set when the rule denies: the statement does not run. */
  denied: { errno: number; sqlState: string; message: string } | null;
  /** The text sent instead, when the rule rewrites it. */
  rewritten: string | null;
  /** Where it runs; null when denied. */
  route: { target: string; cluster: string; reason: string; ignored: string | null } | null;
}

/**
 * `mysqlgw explain --user U [--schema S] [--listener L] --sql "…" [-f FILE…]`:
 * classification, digest, the matching query rule and the route, computed by
 * the data plane's routing code against the current policy (or the given
 * files), for a fresh session (or one inside a transaction, --in-transaction).
 */
export async function explainCommand(ctx: CommandContext, opts: ExplainOptions): Promise<void> {
  const policy = opts.file !== undefined && opts.file.length > 0 ? mergeFiles(opts.file) : await currentPolicy(ctx);
  const e = explain(policy, opts, (line) => ctx.stderr(line));
  if (opts.json === true) {
    ctx.stdout(JSON.stringify(e, null, 2));
    return;
  }
  for (const line of formatExplanation(e)) ctx.stdout(line);
}

async function currentPolicy(ctx: CommandContext): Promise<Policy> {
  const res = await callApi(ctx, () => ctx.client.getPolicy({ version: 0n }, { timeoutMs: ctx.timeoutMs }));
  if (res.config?.policy === undefined) {
    throw new CliError("MGW_ERR_CLI_NOT_FOUND", "no configuration has been applied yet, so there is nothing to explain against", "apply one (mysqlgw apply -f FILE) or pass policy files with -f");
  }
  return res.config.policy;
}

function mergeFiles(files: readonly string[]): Policy {
  const p = create(PolicySchema);
  for (const f of files) {
    const loaded = loadPolicy(f).policy;
    p.clusters.push(...loaded.clusters);
    p.listeners.push(...loaded.listeners);
    p.users.push(...loaded.users);
    p.rules.push(...loaded.rules);
    if (loaded.gateway !== undefined) p.gateway = loaded.gateway;
  }
  return p;
}

/** @internal The explanation itself (pure but for the parser); exported for tests. */
export function explain(policy: Policy, opts: ExplainOptions, warn: (line: string) => void): Explanation {
  const listener = pickListener(policy, opts.listener);
  if (!policy.users.some((u) => u.name === opts.user)) {
    warn(`warning: user ${JSON.stringify(opts.user)} is not defined in this policy; rules are matched as if it were`);
  }
  const rules = compileRules(policy.rules);
  for (const p of rules.problems) warn(`warning: ${p}`);

  const bytes = Buffer.from(opts.sql, "utf8");
  const c = classify(bytes);
  const d = digest(bytes);
  const tablesOf = createTableExtractor({ maxEntries: 1 });
  const parsed = tablesOf.get(opts.sql, d.hash);
  const schema = opts.schema === undefined || opts.schema === "" ? null : opts.schema;
  const ruleCtx = createRuleContext({ user: opts.user, schema, listener: listener.name, sql: opts.sql, classification: c, bytes }, tablesOf);
  const action = rules.match(ruleCtx);

  const session = createSessionRouteState();
  session.inTransaction = opts.inTransaction === true;
  session.autocommit = opts.autocommitOff !== true;
  if (session.inTransaction) session.lastTarget = decideRoute(listenerModeOf(listener.role), classify(Buffer.from("BEGIN")), createSessionRouteState(), null).target;
  const mode = listenerModeOf(listener.role);
  const decision: RouteDecision = decideRoute(mode, c, session, action);

  const denied = action?.deny ?? null;
  return {
    statement: opts.sql,
    kind: statementKindName(c.kind),
    flags: statementFlagNames(c.flags),
    hint: c.hint === 1 ? "primary" : c.hint === 2 ? "replica" : null, // RouteHint.Primary / Replica
    digest: { hash: d.hash, text: d.text },
    tables: parsed === null ? null : parsed.map(tableName),
    user: opts.user,
    schema,
    listener: { name: listener.name, role: listenerModeName(mode), cluster: listener.cluster },
    session: { inTransaction: session.inTransaction, autocommit: session.autocommit },
    rule: action === null ? null : { name: action.rule, position: policy.rules.findIndex((r) => r.name === action.rule) + 1, actions: describeActions(action) },
    denied,
    rewritten: denied === null && action?.rewrite != null ? action.rewrite(opts.sql) : null,
    route: denied !== null ? null : {
      target: routeTargetName(decision.target),
      cluster: decision.cluster ?? listener.cluster,
      reason: decision.reason,
      ignored: decision.ignored,
    },
  };
}

function pickListener(policy: Policy, name: string | undefined): Listener {
  if (policy.listeners.length === 0) {
    throw new CliError("MGW_ERR_CLI_NOT_FOUND", "the policy defines no listener, so no route can be chosen", "add a Listener (docs/policy.md) or pass policy files with -f that define one");
  }
  if (name === undefined) return policy.listeners[0]!;
  const l = policy.listeners.find((x) => x.name === name);
  if (l === undefined) {
    throw new CliError("MGW_ERR_CLI_NOT_FOUND", `no listener named ${JSON.stringify(name)}`, `use one of: ${policy.listeners.map((x) => x.name).join(", ")}`);
  }
  return l;
}

function tableName(t: TableRef): string {
  return t.schema === null ? t.table : `${t.schema}.${t.table}`;
}

function describeActions(a: RuleAction): string[] {
  const out: string[] = [];
  if (a.deny !== null) out.push(`deny ${a.deny.errno} (${a.deny.sqlState})`);
  if (a.route !== null) {
    const parts: string[] = [];
    if (a.route.target !== null) parts.push(routeTargetName(a.route.target));
    if (a.route.cluster !== null) parts.push(`cluster ${a.route.cluster}`);
    out.push(`route ${parts.join(", ")}`);
  }
  if (a.rewrite !== null) out.push("rewrite");
  if (a.mirror !== null) out.push(`mirror to cluster ${a.mirror.cluster} (ratio ${a.mirror.ratio})`);
  if (a.cache !== null) out.push(`cache ${a.cache.ttlMs} ms (results up to ${a.cache.maxResultBytes} bytes, ${a.cache.maxBytes} bytes in all)`);
  return out;
}

/** The text form: one "label: value" line each. */
export function formatExplanation(e: Explanation): string[] {
  const out = [
    `statement: ${e.statement}`,
    `kind:      ${e.kind}`,
    `flags:     ${e.flags.length === 0 ? "none" : e.flags.join(", ")}`,
    `hint:      ${e.hint ?? "none"}`,
    `digest:    ${e.digest.hash}  ${e.digest.text}`,
    `tables:    ${e.tables === null ? "(not parsed: a rule with tables does not match this statement)" : e.tables.length === 0 ? "none" : e.tables.join(", ")}`,
    `session:   user ${e.user}, schema ${e.schema ?? "(none)"}, ${e.session.inTransaction ? "in a transaction" : e.session.autocommit ? "autocommit" : "autocommit off"}`,
    `listener:  ${e.listener.name} (${e.listener.role}, cluster ${e.listener.cluster})`,
    `rule:      ${e.rule === null ? "none" : `${e.rule.name} (rule ${e.rule.position})${e.rule.actions.length === 0 ? ", no action: later rules are skipped" : `: ${e.rule.actions.join("; ")}`}`}`,
  ];
  if (e.denied !== null) {
    out.push(`denied:    ERROR ${e.denied.errno} (${e.denied.sqlState}): ${e.denied.message}`);
    return out;
  }
  if (e.rewritten !== null) out.push(`rewritten: ${e.rewritten}`);
  const r = e.route!;
  out.push(`route:     ${r.target} of cluster ${r.cluster}`);
  out.push(`reason:    ${r.reason}${r.ignored === null ? "" : ` (${r.ignored} ignored)`}`);
  return out;
}

import { toJson, type JsonValue } from "@bufbuild/protobuf";
import { stringify } from "yaml";
import { ResourceChange_Action, type Policy, type ResourceChange } from "@mysqlgw/proto";
import { GATEWAY_NAME, SCHEMA_OF, splitFieldPath, type Kind } from "./policy-files";

const SIGN: Record<ResourceChange_Action, string> = {
  [ResourceChange_Action.UNSPECIFIED]: "?",
  [ResourceChange_Action.ADD]: "+",
  [ResourceChange_Action.UPDATE]: "~",
  [ResourceChange_Action.DELETE]: "-",
};

/** Fields whose values are not printed in a diff. */
const HIDDEN = new Set(["passwordHash"]);

/**
 * One line per change, plus one indented line per changed field of an update:
 *
 *   + Cluster orders
 *   ~ Listener orders-rw
 *       port: 6033 → 6034
 *   - User old
 */
export function formatChanges(changes: readonly ResourceChange[]): string[] {
  const out: string[] = [];
  for (const c of changes) {
    out.push(`${SIGN[c.action]} ${c.kind} ${c.name}`);
    if (c.action !== ResourceChange_Action.UPDATE) continue;
    const before = parse(c.beforeJson);
    const after = parse(c.afterJson);
    for (const f of c.fields) {
      const leaf = f.replace(/.*\./, "");
      if (HIDDEN.has(leaf)) {
        out.push(`    ${f}: changed`);
        continue;
      }
      out.push(`    ${f}: ${show(valueAt(before, f))} → ${show(valueAt(after, f))}`);
    }
  }
  return out;
}

export function countLabel(n: number): string {
  return `${n} change${n === 1 ? "" : "s"}`;
}

function parse(s: string): JsonValue | undefined {
  if (s === "") return undefined;
  try {
    return JSON.parse(s) as JsonValue;
  } catch {
    return undefined;
  }
}

function valueAt(v: JsonValue | undefined, field: string): JsonValue | undefined {
  let cur: JsonValue | undefined = v;
  for (const seg of splitFieldPath(field)) {
    if (cur === null || typeof cur !== "object") return undefined;
    cur = Array.isArray(cur) ? (typeof seg === "number" ? cur[seg] : undefined) : (cur as Record<string, JsonValue>)[String(seg)];
  }
  return cur;
}

function show(v: JsonValue | undefined): string {
  if (v === undefined) return "(none)";
  if (typeof v === "string") return v === "" ? '""' : v;
  return JSON.stringify(v);
}

/** Each resource of a policy as a {kind, ...} object: the documents `apply` takes. */
export function policyDocuments(policy: Policy, filter?: { kind?: Kind; name?: string }): Record<string, JsonValue>[] {
  const out: Record<string, JsonValue>[] = [];
  const add = (kind: Kind, items: readonly { name: string }[]): void => {
    if (filter?.kind !== undefined && filter.kind !== kind) return;
    for (const r of items) {
      if (filter?.name !== undefined && r.name !== filter.name) continue;
      // eslint-disable-next-line @typescript-eslint/no-explicit-any
      const json = toJson(SCHEMA_OF[kind], r as any) as Record<string, JsonValue>;
      out.push({ kind, ...json });
    }
  };
  add("Cluster", policy.clusters);
  add("Listener", policy.listeners);
  add("User", policy.users);
  if (policy.gateway !== undefined) add("Gateway", [{ ...policy.gateway, name: GATEWAY_NAME }]);
  add("QueryRule", policy.rules); // in order: the order decides
  add("Quota", policy.quotas);
  return out;
}

/** Multi-document YAML, as `apply -f` reads it. */
export function toYamlDocuments(docs: readonly Record<string, JsonValue>[], header?: string): string {
  const parts = docs.map((d) => stringify(d, { lineWidth: 0 }));
  const head = header === undefined ? "" : header.split("\n").map((l) => `# ${l}`).join("\n") + "\n";
  return head + parts.join("---\n");
}

/** A plain left-aligned text table. */
export function formatTable(header: readonly string[], rows: readonly (readonly string[])[]): string[] {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: readonly string[]): string => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!))).join("  ").trimEnd();
  return [line(header), ...rows.map(line)];
}

/** "3s", "5m", "2h", "4d" */
export function formatAge(ms: number): string {
  if (!(ms >= 0)) return "-";
  const s = Math.floor(ms / 1000);
  if (s < 120) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 120) return `${m}m`;
  const h = Math.floor(m / 60);
  if (h < 48) return `${h}h`;
  return `${Math.floor(h / 24)}d`;
}

import * as fs from "node:fs";
import * as path from "node:path";
import { create, fromJson, ScalarType, type DescField, type DescMessage, type JsonValue } from "@bufbuild/protobuf";
import { isMap, isPair, isScalar, isSeq, LineCounter, parseAllDocuments, type Document } from "yaml";
import { ClusterSchema, GatewaySchema, ListenerSchema, PolicySchema, QueryRuleSchema, QuotaSchema, UserSchema, type Cluster, type Gateway, type Listener, type Policy, type PolicyViolation, type QueryRule, type Quota, type User } from "@mysqlgw/proto";
import { CliError } from "./cli-error";

/** Gateway is a singleton (Policy.gateway): at most one document, named "gateway". */
export type Kind = "Cluster" | "Listener" | "User" | "Gateway" | "QueryRule" | "Quota";
export const KINDS: readonly Kind[] = ["Cluster", "Listener", "User", "Gateway", "QueryRule", "Quota"];
export const SCHEMA_OF = { Cluster: ClusterSchema, Listener: ListenerSchema, User: UserSchema, Gateway: GatewaySchema, QueryRule: QueryRuleSchema, Quota: QuotaSchema } as const;
/** The name a Gateway resource goes by (in diffs, violations, `get gateway`). */
export const GATEWAY_NAME = "gateway";
/** QueryRule documents become Policy.rules in the order they are read (files in name order): the order decides. */
const LIST_OF = { Cluster: "clusters", Listener: "listeners", User: "users", QueryRule: "rules", Quota: "quotas" } as const;

/** Where one resource of a loaded policy was written. */
export interface ResourceSource {
  /** The file as the user named it (relative to the working directory when inside it). */
  readonly file: string;
  /** 1-based document number within the file. */
  readonly document: number;
  readonly kind: Kind;
  readonly name: string;
  /** Line (1-based) of a field path such as "backends[0].address", or of the document if not found. */
  lineOf(field: string): number;
}

export interface LoadedPolicy {
  readonly policy: Policy;
  /** sources[kind][i] is where policy.<kind list>[i] came from. */
  readonly sources: Record<Kind, ResourceSource[]>;
  /** Files read, in order. */
  readonly files: readonly string[];
}

/**
 * Reads FILE, or every *.yaml / *.yml directly in DIR in name order, as
 * multi-document YAML. Each document is `kind: Cluster|Listener|User` plus the
 * proto3 JSON mapping of that message. Every local problem (YAML syntax,
 * unknown kind, unknown field, wrong type) is collected and thrown at once as
 * a CliError whose lines name file, document, field and what to do.
 */
export function loadPolicy(target: string, cwd: string = process.cwd()): LoadedPolicy {
  const abs = path.resolve(cwd, target);
  let stat: fs.Stats;
  try {
    stat = fs.statSync(abs);
  } catch {
    throw new CliError("MGW_ERR_CLI_FILE", `${target} does not exist`, "pass a policy file or a directory of *.yaml files with -f");
  }
  let files: string[];
  if (stat.isDirectory()) {
    files = fs.readdirSync(abs).filter((f) => /\.ya?ml$/.test(f)).sort().map((f) => path.join(abs, f));
    if (files.length === 0) throw new CliError("MGW_ERR_CLI_FILE", `${target} holds no *.yaml or *.yml files`, "put policy files there or pass a file with -f");
  } else {
    files = [abs];
  }
  const builder = createPolicyBuilder();
  for (const f of files) {
    let text: string;
    try {
      text = fs.readFileSync(f, "utf8");
    } catch (err) {
      throw new CliError("MGW_ERR_CLI_FILE", `cannot read ${display(f, cwd)} (${(err as NodeJS.ErrnoException).code ?? String(err)})`, "check the path and its permissions");
    }
    builder.addText(text, display(f, cwd));
  }
  return builder.finish(target);
}

function display(file: string, cwd: string): string {
  const rel = path.relative(cwd, file);
  return rel !== "" && !rel.startsWith("..") && !path.isAbsolute(rel) ? rel : file;
}

/** @internal Exposed for tests: parse texts as if they were files. */
export function createPolicyBuilder() {
  const policy = create(PolicySchema);
  const sources: Record<Kind, ResourceSource[]> = { Cluster: [], Listener: [], User: [], Gateway: [], QueryRule: [], Quota: [] };
  const problems: string[] = [];
  const files: string[] = [];

  function addText(text: string, file: string): void {
    files.push(file);
    const lineCounter = new LineCounter();
    const docs = parseAllDocuments(text, { lineCounter, uniqueKeys: true, prettyErrors: false });
    if (!Array.isArray(docs)) return; // an empty stream
    docs.forEach((doc, i) => addDocument(doc, i + 1, file, lineCounter));
  }

  function addDocument(doc: Document.Parsed, n: number, file: string, lc: LineCounter): void {
    const where = `${file} document ${n}`;
    if (doc.errors.length > 0) {
      for (const e of doc.errors) {
        const pos = lc.linePos(e.pos[0]);
        const at = `, line ${pos.line} column ${pos.col}`;
        const msg = e.message.split("\n")[0]!;
        const hint = /alias/i.test(msg)
          ? "quote values that start with * (e.g. passwordHash: \"*6BB4…\"), YAML reads them as aliases"
          : "fix the YAML syntax";
        problems.push(`${where}${at}: YAML syntax error: ${msg} — ${hint}`);
      }
      return;
    }
    if (doc.contents === null) return; // an empty document, e.g. after a trailing ---
    const lineOf = (field: string): number => lineOfPath(doc, lc, field);
    let value: unknown;
    try {
      value = doc.toJS({ maxAliasCount: 100 }) as unknown;
    } catch (err) {
      const msg = (err as Error).message.split("\n")[0]!;
      const hint = /alias/i.test(msg)
        ? "quote values that start with * (e.g. passwordHash: \"*6BB4…\"), YAML reads them as aliases"
        : "fix the YAML";
      problems.push(`${where}: ${msg} — ${hint}`);
      return;
    }
    if (value === null || value === undefined) return; // only comments, or an empty `---` document
    if (!isPlainObject(value)) {
      problems.push(`${where}, line ${lc.linePos(doc.contents.range[0]).line}: not a mapping — each document is a mapping with kind: Cluster, Listener or User`);
      return;
    }
    const { kind, ...rest } = value;
    if (kind === undefined) {
      problems.push(`${where}: no kind — add kind: Cluster, Listener or User at the top of the document`);
      return;
    }
    if (typeof kind !== "string" || !(KINDS as readonly string[]).includes(kind)) {
      const k = typeof kind === "string" ? kind : JSON.stringify(kind);
      const near = KINDS.find((x) => editDistance(x.toLowerCase(), String(kind).toLowerCase()) <= 2);
      problems.push(`${where}, line ${lineOf("kind")}: unknown kind ${JSON.stringify(k)} — ${near !== undefined ? `did you mean ${near}? (` : "use one of "}Cluster, Listener, User, Gateway, QueryRule, Quota${near !== undefined ? ")" : ""}`);
      return;
    }
    const k = kind as Kind;
    if (k === "Gateway" && sources.Gateway.length > 0) {
      const first = sources.Gateway[0]!;
      problems.push(`${where} (Gateway): a second Gateway document; the first is ${first.file} document ${first.document} — a policy has at most one Gateway: merge the two`);
      return;
    }
    if (k === "Gateway" && "name" in rest) {
      // optional, and only ever "gateway"
      if (rest.name !== GATEWAY_NAME) problems.push(`${where} (Gateway), line ${lineOf("name")}: a Gateway is named ${GATEWAY_NAME} — drop name or write name: ${GATEWAY_NAME}`);
      delete rest.name;
    }
    const name = k === "Gateway" ? GATEWAY_NAME : typeof rest.name === "string" ? rest.name : "";
    const label = `${where} (${k}${name === "" ? "" : ` ${name}`})`;
    const before = problems.length;
    checkShape(rest, SCHEMA_OF[k], "", (field, what, todo) => {
      problems.push(`${label}: field ${field}: ${what} (line ${lineOf(field)}) — ${todo}`);
    });
    if (problems.length > before) return;
    let msg: Cluster | Listener | User | Gateway | QueryRule | Quota;
    try {
      msg = fromJson(SCHEMA_OF[k], rest as JsonValue, { ignoreUnknownFields: false });
    } catch (err) {
      problems.push(`${label}: ${(err as Error).message} — fix the value to match the ${k} schema (docs/policy.md)`);
      return;
    }
    const source: ResourceSource = { file, document: n, kind: k, name, lineOf };
    sources[k].push(source);
    if (k === "Gateway") policy.gateway = msg as Gateway;
    else (policy[LIST_OF[k]] as (Cluster | Listener | User | QueryRule | Quota)[]).push(msg as Cluster | Listener | User | QueryRule | Quota);
  }

  function finish(target: string): LoadedPolicy {
    if (problems.length > 0) {
      throw new CliError("MGW_ERR_CLI_FILE", problems[0]!, "", { lines: problems });
    }
    if (sources.Cluster.length + sources.Listener.length + sources.User.length + sources.Gateway.length + sources.QueryRule.length + sources.Quota.length === 0) {
      throw new CliError("MGW_ERR_CLI_FILE", `${target} holds no policy documents`,
        "add Cluster, Listener and User documents (an empty policy would delete every resource)");
    }
    return { policy, sources, files };
  }

  return { addText, finish };
}

type Report = (field: string, what: string, todo: string) => void;

/**
 * Checks keys and value types against the message descriptor before fromJson,
 * so that a typo or a wrong type is reported with its full path (fromJson
 * names neither list indexes nor the JSON name).
 */
function checkShape(obj: Record<string, unknown>, desc: DescMessage, prefix: string, report: Report): void {
  for (const [key, value] of Object.entries(obj)) {
    const field = desc.fields.find((f) => f.jsonName === key || f.name === key);
    const p = prefix === "" ? key : `${prefix}.${key}`;
    if (field === undefined) {
      const names = desc.fields.map((f) => f.jsonName);
      const near = names.find((n) => editDistance(n.toLowerCase(), key.toLowerCase()) <= 2);
      report(p, "unknown field", near !== undefined ? `did you mean ${near}? (${desc.name} fields: ${names.join(", ")})` : `${desc.name} fields are: ${names.join(", ")}`);
      continue;
    }
    if (value === null || value === undefined) continue; // JSON null is the default value
    checkValue(field, value, p, report);
  }
}

function checkValue(field: DescField, value: unknown, p: string, report: Report): void {
  switch (field.fieldKind) {
    case "message":
      // google.protobuf.Duration and friends: their JSON form is a string such as "10s"
      if (field.message.typeName.startsWith("google.protobuf.") && typeof value === "string") return;
      if (!isPlainObject(value)) return report(p, `expected a mapping, got ${describe(value)}`, `write it as ${field.jsonName}: {…} with fields of ${field.message.name}`);
      return checkShape(value, field.message, p, report);
    case "list":
      if (!Array.isArray(value)) return report(p, `expected a list, got ${describe(value)}`, `write it as a YAML list (- item per line, or [a, b])`);
      value.forEach((item, i) => {
        const ip = `${p}[${i}]`;
        if (field.listKind === "message") {
          if (!isPlainObject(item)) report(ip, `expected a mapping, got ${describe(item)}`, `write each item as {…} with fields of ${field.message.name}`);
          else checkShape(item, field.message, ip, report);
        } else if (field.listKind === "scalar") {
          checkScalar(field.scalar, item, ip, report);
        }
      });
      return;
    case "scalar":
      return checkScalar(field.scalar, value, p, report);
    default:
      return;
  }
}

function checkScalar(t: ScalarType, value: unknown, p: string, report: Report): void {
  switch (t) {
    case ScalarType.STRING:
      if (typeof value !== "string") report(p, `expected a string, got ${describe(value)}`, "quote the value");
      return;
    case ScalarType.BOOL:
      if (typeof value !== "boolean") report(p, `expected true or false, got ${describe(value)}`, "write true or false");
      return;
    case ScalarType.UINT32: {
      const n = typeof value === "string" && /^[0-9]+$/.test(value) ? Number(value) : value;
      if (typeof n !== "number" || !Number.isInteger(n) || n < 0 || n > 0xffffffff) {
        report(p, `expected a whole number, got ${describe(value)}`, "write a number without quotes or units, e.g. 6033");
      }
      return;
    }
    default:
      return;
  }
}

function describe(v: unknown): string {
  if (Array.isArray(v)) return "a list";
  if (isPlainObject(v)) return "a mapping";
  return JSON.stringify(v) ?? String(v);
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function editDistance(a: string, b: string): number {
  const dp = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let prev = dp[0]!;
    dp[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = dp[j]!;
      dp[j] = Math.min(dp[j]! + 1, dp[j - 1]! + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = tmp;
    }
  }
  return dp[b.length]!;
}

/** Splits "backends[0].address" into ["backends", 0, "address"]. */
export function splitFieldPath(field: string): (string | number)[] {
  const out: (string | number)[] = [];
  for (const part of field.split(".")) {
    const m = /^([^[\]]*)((?:\[\d+\])*)$/.exec(part);
    if (m === null) {
      out.push(part);
      continue;
    }
    if (m[1] !== "") out.push(m[1]!);
    for (const idx of m[2]!.matchAll(/\[(\d+)\]/g)) out.push(Number(idx[1]));
  }
  return out;
}

/** 1-based line of the deepest node of `field` found in the document (keys match JSON or proto names). */
function lineOfPath(doc: Document.Parsed, lc: LineCounter, field: string): number {
  let node: unknown = doc.contents;
  let offset = doc.contents?.range[0] ?? 0;
  for (const seg of splitFieldPath(field)) {
    if (typeof seg === "number" && isSeq(node)) {
      node = node.items[seg];
    } else if (typeof seg === "string" && isMap(node)) {
      const snake = seg.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
      const pair = node.items.find((it) => isPair(it) && isScalar(it.key) && (it.key.value === seg || it.key.value === snake));
      if (pair === undefined) break;
      if (isScalar(pair.key) && pair.key.range) offset = pair.key.range[0];
      node = pair.value;
      continue;
    } else {
      break;
    }
    const r = (node as { range?: [number, number, number] } | undefined)?.range;
    if (r === undefined) break;
    offset = r[0];
  }
  return lc.linePos(offset).line;
}

/**
 * Maps the server's violations back to where each resource was written:
 * `policy/orders.yaml document 2 (Listener orders-rw): field port: 70000 is out of range; use 1..65535`.
 */
export function locateViolations(violations: readonly PolicyViolation[], sources: Record<Kind, ResourceSource[]>): string[] {
  return violations.map((v) => {
    const src = (KINDS as readonly string[]).includes(v.kind) ? sources[v.kind as Kind][v.index] : undefined;
    const field = v.field === "" ? "" : `field ${v.field}: `;
    if (src === undefined) {
      const who = v.kind === "" ? "policy" : `${v.kind}${v.name === "" ? "" : ` ${v.name}`}`;
      return `${who}: ${field}${v.description}`;
    }
    return `${src.file} document ${src.document} (${src.kind}${src.name === "" ? "" : ` ${src.name}`}): ${field}${v.description}`;
  });
}

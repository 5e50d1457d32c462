import { createHash } from "node:crypto";
import { create, type JsonValue, type MessageInitShape } from "@bufbuild/protobuf";
import { timestampNow } from "@bufbuild/protobuf/wkt";
import { AuditRecordSchema, ResourceChange_Action, type AuditRecord } from "@mysqlgw/proto";

/** What the caller fills in; the log assigns `sequence`. */
export type AuditRecordInit = Omit<MessageInitShape<typeof AuditRecordSchema>, "sequence" | "$typeName">;

/**
 * Where audit records go (etcd: store/etcd-audit-log.ts; memory for tests).
 * append() calls may overlap; each record gets the next sequence (1, 2, 3…,
 * never reused). list() is newest first.
 */
export interface AuditLog {
  append(record: AuditRecordInit): Promise<bigint>;
  /** At most `limit` records with a sequence below `before` (0: from the newest); `nextBefore` 0 when there are no older ones. */
  list(limit: number, before: bigint): Promise<{ records: AuditRecord[]; nextBefore: bigint }>;
  close(): Promise<void>;
}

export const DEFAULT_AUDIT_LIMIT = 50;
export const MAX_AUDIT_LIMIT = 1000;
/** A request JSON longer than this is recorded as its size and SHA-256 (a policy is in its config version anyway). */
export const MAX_AUDIT_REQUEST_JSON = 64 * 1024;
/** Records kept by default (--audit-retention); older ones are deleted as new ones are written. */
export const DEFAULT_AUDIT_RETENTION = 100_000;

export function createMemoryAuditLog(): AuditLog & { readonly records: AuditRecord[] } {
  const records: AuditRecord[] = [];
  return {
    records,
    async append(r) {
      const sequence = BigInt(records.length + 1);
      records.push(create(AuditRecordSchema, { ...r, sequence, at: r.at ?? timestampNow() }));
      return sequence;
    },
    async list(limit, before) {
      const older = records.filter((r) => before === 0n || r.sequence < before).reverse();
      const page = older.slice(0, limit);
      return { records: page, nextBefore: older.length > limit ? page[page.length - 1]!.sequence : 0n };
    },
    async close() {},
  };
}

/** Keys that look like they hold a secret; their values are replaced in audit records. */
const SECRET_KEY = /password|passwd|secret|token|private.?key|credential/i;

/** A deep copy of `v` with every value under a secret-looking key replaced by "[redacted]". */
export function redactSecrets(v: JsonValue): JsonValue {
  if (Array.isArray(v)) return v.map(redactSecrets);
  if (v !== null && typeof v === "object") {
    const out: Record<string, JsonValue> = {};
    for (const [k, x] of Object.entries(v)) out[k] = SECRET_KEY.test(k) ? "[redacted]" : redactSecrets(x);
    return out;
  }
  return v;
}

/** The request as recorded: secrets redacted; over MAX_AUDIT_REQUEST_JSON, its size and digest instead. */
export function auditRequestJson(v: JsonValue): string {
  const text = JSON.stringify(redactSecrets(v));
  if (text.length <= MAX_AUDIT_REQUEST_JSON) return text;
  return JSON.stringify({ omitted: `request JSON of ${text.length} bytes (over ${MAX_AUDIT_REQUEST_JSON})`, sha256: createHash("sha256").update(text).digest("hex") });
}

const SIGN: Record<number, string> = {
  [ResourceChange_Action.UNSPECIFIED]: "?",
  [ResourceChange_Action.ADD]: "+",
  [ResourceChange_Action.UPDATE]: "~",
  [ResourceChange_Action.DELETE]: "-",
};
const HIDDEN_FIELD = /passwordHash$|PasswordHash$/;
const MAX_VALUE_CHARS = 80;

/** A change as an audit line, in `mysqlgw diff`'s words on one line: "~ Listener demo-rw: port 6033 → 6034". */
export function changeLine(c: { action: ResourceChange_Action; kind: string; name: string; fields: readonly string[]; beforeJson: string; afterJson: string }): string {
  const head = `${SIGN[c.action] ?? "?"} ${c.kind} ${c.name}`;
  if (c.action !== ResourceChange_Action.UPDATE || c.fields.length === 0) return head;
  const before = parse(c.beforeJson);
  const after = parse(c.afterJson);
  const parts = c.fields.map((f) => {
    if (HIDDEN_FIELD.test(f) || SECRET_KEY.test(f.replace(/.*\./, ""))) return `${f} changed`;
    return `${f} ${show(valueAt(before, f))} → ${show(valueAt(after, f))}`;
  });
  return `${head}: ${parts.join("; ")}`;
}

/**
 * The changes and resulting version a response carries, for the audit record:
 * ApplyPolicy / RollbackPolicy ({version, changed, changes}), replication
 * operations ({operation: OperationRecord}).
 */
export function outcomeOf(res: unknown): { changes: string[]; resultingVersion: bigint } {
  const r = (res ?? {}) as {
    version?: bigint; changed?: boolean; changes?: unknown;
    operation?: { operation?: string; cluster?: string; backend?: string; ok?: boolean; error?: string; configVersion?: bigint };
  };
  const changes: string[] = [];
  let resultingVersion = 0n;
  if (Array.isArray(r.changes) && r.changed === true) {
    for (const c of r.changes as Parameters<typeof changeLine>[0][]) changes.push(changeLine(c));
    if (typeof r.version === "bigint") resultingVersion = r.version;
  }
  const op = r.operation;
  if (op !== undefined && op !== null && typeof op === "object") {
    const target = `${op.cluster ?? ""}${op.backend ? `/${op.backend}` : ""}`;
    changes.push(`${op.operation ?? "operation"} ${target}: ${op.ok === true ? "ok" : `not done${op.error ? ` (${op.error.split("\n")[0]})` : ""}`}`);
    if (typeof op.configVersion === "bigint" && op.configVersion > 0n) resultingVersion = op.configVersion;
  }
  return { changes, resultingVersion };
}

function parse(s: string): JsonValue | undefined {
  if (s === "") return undefined;
  try {
    return JSON.parse(s) as JsonValue;
  } catch {
    return undefined;
  }
}

/** `backends[1].address` → the value there. */
function valueAt(v: JsonValue | undefined, field: string): JsonValue | undefined {
  let cur: JsonValue | undefined = v;
  for (const seg of field.split(/\.|(?=\[)/)) {
    if (cur === null || typeof cur !== "object" || cur === undefined) return undefined;
    const idx = /^\[(\d+)\]$/.exec(seg);
    if (idx !== null) cur = Array.isArray(cur) ? cur[Number(idx[1])] : undefined;
    else cur = Array.isArray(cur) ? undefined : (cur as Record<string, JsonValue>)[seg];
  }
  return cur;
}

function show(v: JsonValue | undefined): string {
  if (v === undefined) return "(none)";
  const s = typeof v === "string" ? (v === "" ? '""' : v) : JSON.stringify(v);
  return s.length > MAX_VALUE_CHARS ? `${s.slice(0, MAX_VALUE_CHARS - 1)}…` : s;
}

export type { AuditRecord };

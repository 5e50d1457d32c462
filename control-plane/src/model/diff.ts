import { create, toJson, toJsonString, type DescMessage, type JsonValue, type MessageShape } from "@bufbuild/protobuf";
import {
  ClusterSchema,
  GatewaySchema,
  ListenerSchema,
  QuotaSchema,
  ResourceChange_Action,
  ResourceChangeSchema,
  UserSchema,
  type Policy,
  type ResourceChange,
} from "@mysqlgw/proto";
import { diffRules } from "./diff-rules";

/**
 * What turning `before` into `after` changes, resource by resource. Both must be
 * normalised (normalizePolicy), so that defaults and ordering do not show up as
 * changes. `before` undefined means nothing is applied yet.
 *
 * Order: clusters, listeners, users, gateway, query rules (diff-rules.ts: with their position), quotas; within a kind by name. Updates carry the
 * JSON paths of the leaves that differ (e.g. "backends[1].address").
 */
export function diffPolicies(before: Policy | undefined, after: Policy): ResourceChange[] {
  const changes: ResourceChange[] = [];
  diffKind("Cluster", ClusterSchema, before?.clusters ?? [], after.clusters, changes);
  diffKind("Listener", ListenerSchema, before?.listeners ?? [], after.listeners, changes);
  diffKind("User", UserSchema, before?.users ?? [], after.users, changes);
  // the singleton Gateway, named "gateway"
  const gw = (p: Policy | undefined) => (p?.gateway === undefined ? [] : [{ ...p.gateway, name: "gateway" }]);
  diffKind("Gateway", GatewaySchema, gw(before), gw(after), changes);
  diffRules(before?.rules ?? [], after.rules, changes);
  diffKind("Quota", QuotaSchema, before?.quotas ?? [], after.quotas, changes);
  return changes;
}

function diffKind<D extends DescMessage>(
  kind: string,
  schema: D,
  before: (MessageShape<D> & { name: string })[],
  after: (MessageShape<D> & { name: string })[],
  out: ResourceChange[],
): void {
  const old = new Map(before.map((r) => [r.name, r]));
  const now = new Map(after.map((r) => [r.name, r]));
  const names = [...new Set([...old.keys(), ...now.keys()])].sort();
  for (const name of names) {
    const b = old.get(name);
    const a = now.get(name);
    if (b === undefined && a !== undefined) {
      out.push(create(ResourceChangeSchema, { action: ResourceChange_Action.ADD, kind, name, afterJson: toJsonString(schema, a) }));
    } else if (a === undefined && b !== undefined) {
      out.push(create(ResourceChangeSchema, { action: ResourceChange_Action.DELETE, kind, name, beforeJson: toJsonString(schema, b) }));
    } else if (a !== undefined && b !== undefined) {
      const fields: string[] = [];
      diffJson(toJson(schema, b), toJson(schema, a), "", fields);
      if (fields.length > 0) {
        out.push(create(ResourceChangeSchema, {
          action: ResourceChange_Action.UPDATE,
          kind,
          name,
          fields,
          beforeJson: toJsonString(schema, b),
          afterJson: toJsonString(schema, a),
        }));
      }
    }
  }
}

/** Appends to `out` the paths of the leaves where `a` and `b` differ. */
export function diffJson(b: JsonValue | undefined, a: JsonValue | undefined, path: string, out: string[]): void {
  if (isObject(b) && isObject(a)) {
    const keys = [...new Set([...Object.keys(b), ...Object.keys(a)])].sort();
    for (const k of keys) diffJson(b[k], a[k], path === "" ? k : `${path}.${k}`, out);
    return;
  }
  if (Array.isArray(b) && Array.isArray(a)) {
    const n = Math.max(a.length, b.length);
    for (let i = 0; i < n; i++) diffJson(b[i], a[i], `${path}[${i}]`, out);
    return;
  }
  if (JSON.stringify(b) !== JSON.stringify(a)) out.push(path);
}

function isObject(v: JsonValue | undefined): v is { [k: string]: JsonValue } {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

import { create, toJson, type JsonObject } from "@bufbuild/protobuf";
import { QueryRuleSchema, ResourceChange_Action, ResourceChangeSchema, type QueryRule, type ResourceChange } from "@mysqlgw/proto";
import { diffJson } from "./diff";

/**
 * Changes to Policy.rules, kind "QueryRule", by rule name. Order decides
 * (the first matching rule wins), so each rule's JSON carries its 1-based
 * `position` in the list: moving a rule is an update of `position`.
 * Appends in name order, as diffPolicies does for the other kinds.
 */
export function diffRules(before: readonly QueryRule[], after: readonly QueryRule[], out: ResourceChange[]): void {
  const json = (rules: readonly QueryRule[]) =>
    new Map(rules.map((r, i) => [r.name, { ...(toJson(QueryRuleSchema, r) as JsonObject), position: i + 1 } as JsonObject]));
  const old = json(before);
  const now = json(after);
  const names = [...new Set([...old.keys(), ...now.keys()])].sort();
  for (const name of names) {
    const b = old.get(name);
    const a = now.get(name);
    if (b === undefined && a !== undefined) {
      out.push(create(ResourceChangeSchema, { action: ResourceChange_Action.ADD, kind: "QueryRule", name, afterJson: JSON.stringify(a) }));
    } else if (a === undefined && b !== undefined) {
      out.push(create(ResourceChangeSchema, { action: ResourceChange_Action.DELETE, kind: "QueryRule", name, beforeJson: JSON.stringify(b) }));
    } else if (a !== undefined && b !== undefined) {
      const fields: string[] = [];
      diffJson(b, a, "", fields);
      if (fields.length > 0) {
        out.push(create(ResourceChangeSchema, { action: ResourceChange_Action.UPDATE, kind: "QueryRule", name, fields, beforeJson: JSON.stringify(b), afterJson: JSON.stringify(a) }));
      }
    }
  }
}

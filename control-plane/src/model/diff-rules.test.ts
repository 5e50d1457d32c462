import { create } from "@bufbuild/protobuf";
import { PolicySchema, ResourceChange_Action as A } from "@mysqlgw/proto";
import { diffPolicies } from "./diff";

type PolicyInit = Parameters<typeof create<typeof PolicySchema>>[1];
const policy = (rules: NonNullable<NonNullable<PolicyInit>["rules"]>) => create(PolicySchema, { rules });

describe("diffPolicies: query rules", () => {
  it("adds, deletes and updates rules by name", () => {
    const before = policy([{ name: "a", match: { kinds: ["SELECT"] } }, { name: "b", deny: {} }]);
    const after = policy([{ name: "a", match: { kinds: ["UPDATE"] } }, { name: "c", deny: {} }]);
    const changes = diffPolicies(before, after).map((c) => ({ action: c.action, kind: c.kind, name: c.name, fields: c.fields }));
    expect(changes).toEqual([
      { action: A.UPDATE, kind: "QueryRule", name: "a", fields: ["match.kinds[0]"] },
      { action: A.DELETE, kind: "QueryRule", name: "b", fields: [] },
      { action: A.ADD, kind: "QueryRule", name: "c", fields: [] },
    ]);
  });

  it("reports a reordering as a change of position", () => {
    const changes = diffPolicies(policy([{ name: "a" }, { name: "b" }]), policy([{ name: "b" }, { name: "a" }]));
    expect(changes.map((c) => [c.name, c.fields])).toEqual([["a", ["position"]], ["b", ["position"]]]);
    expect(JSON.parse(changes[0]!.afterJson)).toEqual({ name: "a", position: 2 });
    expect(diffPolicies(policy([{ name: "a" }]), policy([{ name: "a" }]))).toEqual([]);
  });
});

import { create } from "@bufbuild/protobuf";
import { BackendSchema, PolicySchema, ResourceChange_Action as A, UserSchema } from "@mysqlgw/proto";
import { diffPolicies } from "./diff";
import { normalizePolicy } from "./normalize";

const base = () => normalizePolicy(create(PolicySchema, {
  clusters: [{ name: "orders", backends: [{ name: "db1", address: "a:3306" }, { name: "db2", address: "b:3306" }] }],
  listeners: [{ name: "orders-rw", port: 6033, cluster: "orders" }],
  users: [{ name: "old" }],
}));

describe("diffPolicies", () => {
  it("adds everything against nothing", () => {
    const d = diffPolicies(undefined, base());
    expect(d.map((c) => [c.action, c.kind, c.name])).toEqual([
      [A.ADD, "Cluster", "orders"], [A.ADD, "Listener", "orders-rw"], [A.ADD, "User", "old"],
    ]);
    expect(JSON.parse(d[1]!.afterJson)).toEqual({ name: "orders-rw", bindAddress: "0.0.0.0", port: 6033, cluster: "orders" });
    expect(d[1]!.beforeJson).toBe("");
  });

  it("is empty for equal policies", () => {
    expect(diffPolicies(base(), base())).toEqual([]);
  });

  it("reports updates with field paths, deletes and adds", () => {
    const next = base();
    next.clusters[0]!.backends[1]!.address = "c:3306";
    next.clusters[0]!.backends.push(create(BackendSchema, { name: "db3", address: "d:3306", weight: 1 }));
    next.listeners[0]!.port = 6034;
    next.users = [create(UserSchema, { name: "new" })];
    const d = diffPolicies(base(), normalizePolicy(next));
    expect(d.map((c) => [c.action, c.kind, c.name, c.fields])).toEqual([
      [A.UPDATE, "Cluster", "orders", ["backends[1].address", "backends[2]"]],
      [A.UPDATE, "Listener", "orders-rw", ["port"]],
      [A.ADD, "User", "new", []],
      [A.DELETE, "User", "old", []],
    ]);
    expect(JSON.parse(d[1]!.beforeJson).port).toBe(6033);
    expect(JSON.parse(d[1]!.afterJson).port).toBe(6034);
    expect(d[3]!.afterJson).toBe("");
  });
});

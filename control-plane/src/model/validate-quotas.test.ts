import { create } from "@bufbuild/protobuf";
import { PolicySchema, Quota_OnExceed, type Policy } from "@mysqlgw/proto";
import { diffPolicies } from "./diff";
import { validatePolicy } from "./validate";

function withQuotas(quotas: Record<string, unknown>[]): Policy {
  return create(PolicySchema, {
    clusters: [{ name: "orders", backends: [{ name: "db1", address: "127.0.0.1:3306" }] }],
    listeners: [{ name: "rw", port: 6033, cluster: "orders" }],
    users: [{ name: "app", passwordHash: "*F142931D9296BB66D4600D47418DBC1475D27D29" }],
    rules: [{ name: "reports", match: { users: ["app"] }, action: { route: { target: 2 } } }],
    quotas,
  });
}
const fields = (p: Policy): string[] => validatePolicy(p).map((v) => `${v.kind}/${v.name}/${v.field}`);

describe("Policy.quotas", () => {
  it("accepts rate and/or concurrency quotas matching defined users, listeners, clusters and rules", () => {
    expect(validatePolicy(withQuotas([
      { name: "app-rate", users: ["app"], queriesPerSecond: 300 },
      { name: "slots", listeners: ["rw"], clusters: ["orders"], maxConcurrent: 20, onExceed: Quota_OnExceed.QUEUE, maxQueue: 50, maxWait: { seconds: 2n, nanos: 0 } },
      { name: "reports", rules: ["reports"], perUser: true, queriesPerSecond: 0.5, burst: 5, onExceed: Quota_OnExceed.REJECT },
    ]))).toEqual([]);
  });

  it("names bad, missing and duplicate names", () => {
    expect(fields(withQuotas([{ name: "", queriesPerSecond: 1 }, { name: "Bad Name", queriesPerSecond: 1 }, { name: "q", queriesPerSecond: 1 }, { name: "q", maxConcurrent: 1 }]))).toEqual([
      "Quota//name", "Quota/Bad Name/name", "Quota/q/name",
    ]);
    expect(validatePolicy(withQuotas([{ name: "q", queriesPerSecond: 1 }, { name: "q", maxConcurrent: 1 }]))[0]!.description).toContain("defined twice (also quotas[0])");
  });

  it("refers only to what the policy defines, listing what is", () => {
    const v = validatePolicy(withQuotas([{ name: "q", users: ["nobody"], listeners: ["rw", "rw"], clusters: ["x"], rules: ["nope"], queriesPerSecond: 1 }]));
    expect(v.map((x) => x.field)).toEqual(["users[0]", "listeners[1]", "clusters[0]", "rules[0]"]);
    expect(v[0]!.description).toBe('User "nobody" is not defined in this policy; define it or fix the name (defined: app)');
    expect(v[1]!.description).toContain("listed twice");
  });

  it("needs a limit; figures sane; options that do nothing are named", () => {
    expect(validatePolicy(withQuotas([{ name: "q" }]))[0]).toMatchObject({ field: "queriesPerSecond", description: expect.stringContaining("limits nothing") });
    for (const qps of [-1, Number.NaN, Number.POSITIVE_INFINITY, 1e9]) expect(fields(withQuotas([{ name: "q", queriesPerSecond: qps, maxConcurrent: 1 }]))).toEqual(["Quota/q/queriesPerSecond"]);
    expect(fields(withQuotas([{ name: "q", maxConcurrent: 1, burst: 10 }]))).toEqual(["Quota/q/burst"]);
    expect(fields(withQuotas([{ name: "q", queriesPerSecond: 100_000, burst: 10 }]))).toEqual(["Quota/q/burst"]);
    expect(fields(withQuotas([{ name: "q", maxConcurrent: 1, onExceed: 7 }]))).toEqual(["Quota/q/onExceed"]);
    expect(fields(withQuotas([{ name: "q", maxConcurrent: 1, maxQueue: 1_000_000 }]))).toEqual(["Quota/q/maxQueue"]);
    expect(fields(withQuotas([{ name: "q", maxConcurrent: 1, maxWait: { seconds: 3600n, nanos: 0 } }]))).toEqual(["Quota/q/maxWait"]);
    expect(fields(withQuotas([{ name: "q", maxConcurrent: 1, onExceed: Quota_OnExceed.REJECT, maxQueue: 5, maxWait: { seconds: 1n, nanos: 0 } }]))).toEqual(["Quota/q/maxQueue", "Quota/q/maxWait"]);
  });
});

describe("Policy.quotas in diffs", () => {
  it("shows added, changed and removed quotas as kind Quota, by name", () => {
    const before = withQuotas([{ name: "a", queriesPerSecond: 300 }, { name: "b", maxConcurrent: 2 }]);
    const after = withQuotas([{ name: "a", queriesPerSecond: 200 }, { name: "c", maxConcurrent: 4 }]);
    expect(diffPolicies(before, after).filter((c) => c.kind === "Quota").map((c) => [c.action, c.name, c.fields])).toEqual([
      [2, "a", ["queriesPerSecond"]],
      [3, "b", []],
      [1, "c", []],
    ]);
  });
});

import { create } from "@bufbuild/protobuf";
import { PolicySchema } from "@mysqlgw/proto";
import { normalizePolicy, policyDigest } from "./normalize";

const policy = () => create(PolicySchema, {
  clusters: [
    { name: "orders", backends: [{ name: "db2", address: "b:3306" }, { name: "db1", address: "a:3306", weight: 3 }] },
    { name: "billing", backends: [{ name: "x", address: "x:3306" }] },
  ],
  listeners: [{ name: "orders-rw", port: 6033, cluster: "orders" }, { name: "billing", bindAddress: "127.0.0.1", port: 6034, cluster: "billing" }],
  users: [{ name: "shop" }, { name: "admin", backendCredentials: { user: "root", secretRef: "env:X" } }],
});

describe("normalizePolicy", () => {
  it("fills defaults and sorts by name without touching the input", () => {
    const input = policy();
    const n = normalizePolicy(input);
    expect(n.clusters.map((c) => c.name)).toEqual(["billing", "orders"]);
    expect(n.clusters[1]!.backends.map((b) => [b.name, b.weight])).toEqual([["db1", 3], ["db2", 1]]);
    expect(n.listeners.map((l) => [l.name, l.bindAddress])).toEqual([["billing", "127.0.0.1"], ["orders-rw", "0.0.0.0"]]);
    expect(n.users.map((u) => [u.name, u.backendCredentials?.user])).toEqual([["admin", "root"], ["shop", "shop"]]);
    expect(input.clusters[0]!.name).toBe("orders");
    expect(input.listeners[0]!.bindAddress).toBe("");
  });

  it("is idempotent", () => {
    const n = normalizePolicy(policy());
    expect(policyDigest(normalizePolicy(n))).toBe(policyDigest(n));
  });
});

describe("policyDigest", () => {
  it("is the same for a reordered policy and for explicit defaults", () => {
    const a = policy();
    const b = policy();
    b.clusters.reverse();
    b.clusters[1]!.backends.reverse();
    b.listeners.reverse();
    b.users.reverse();
    b.listeners[1]!.bindAddress = "0.0.0.0"; // orders-rw, now explicit
    b.clusters[1]!.backends[1]!.weight = 1; // db2
    b.users[1]!.backendCredentials = { $typeName: "mysqlgw.config.v1.BackendCredentials", user: "shop", secretRef: "" };
    expect(policyDigest(normalizePolicy(b))).toBe(policyDigest(normalizePolicy(a)));
  });

  it("changes with any value and is hex sha256", () => {
    const a = normalizePolicy(policy());
    const b = normalizePolicy(policy());
    b.listeners[0]!.port = 7000;
    expect(policyDigest(a)).toMatch(/^[0-9a-f]{64}$/);
    expect(policyDigest(b)).not.toBe(policyDigest(a));
  });
});

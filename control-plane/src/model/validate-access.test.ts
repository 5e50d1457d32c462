import { create } from "@bufbuild/protobuf";
import { PolicySchema, type Policy } from "@mysqlgw/proto";
import { validatePolicy } from "./validate";
import { diffPolicies } from "./diff";

const HASH = "*F142931D9296BB66D4600D47418DBC1475D27D29";

function valid(): Policy {
  return create(PolicySchema, {
    clusters: [{ name: "orders", backends: [{ name: "db1", address: "127.0.0.1:3306", maxConnections: 100 }] }],
    listeners: [
      {
        name: "rw",
        port: 6033,
        cluster: "orders",
        allowCidrs: ["10.0.0.0/8", "fd00::/64"],
        denyCidrs: ["10.9.0.0/16"],
        maxConnections: 500,
        handshakeTimeout: { seconds: 5n, nanos: 0 },
        idleTimeout: { seconds: 28800n, nanos: 0 },
      },
    ],
    users: [{ name: "shop", passwordHash: HASH, allowCidrs: ["10.1.2.3"], denyCidrs: ["::1"], maxConnections: 20 }],
    gateway: { allowCidrs: ["10.0.0.0/8"], denyCidrs: [], maxConnections: 1000 },
  });
}

describe("access-control fields", () => {
  it("accepts valid lists, limits and timeouts", () => {
    expect(validatePolicy(valid())).toEqual([]);
  });

  it("names each bad CIDR, limit and timeout with what to write", () => {
    const p = valid();
    p.gateway!.denyCidrs = ["10.0.0.1/8"];
    p.gateway!.maxConnections = 5_000_000;
    p.listeners[0]!.allowCidrs.push("not-a-cidr");
    p.listeners[0]!.idleTimeout = { $typeName: "google.protobuf.Duration", seconds: 0n, nanos: 5_000_000 };
    p.listeners[0]!.handshakeTimeout = { $typeName: "google.protobuf.Duration", seconds: -1n, nanos: 0 };
    p.users[0]!.denyCidrs = ["10.1.2.3"];
    p.clusters[0]!.backends[0]!.maxConnections = 2_000_000;
    const v = validatePolicy(p);
    expect(v.map((x) => `${x.kind}/${x.name}/${x.field}`)).toEqual([
      "Cluster/orders/backends[0].maxConnections",
      "Listener/rw/allowCidrs[2]",
      "Listener/rw/handshakeTimeout",
      "Listener/rw/idleTimeout",
      "User/shop/denyCidrs[0]",
      "Gateway/gateway/denyCidrs[0]",
      "Gateway/gateway/maxConnections",
    ]);
    expect(v[5]!.description).toContain("10.0.0.0/8");
    expect(v[3]!.description).toContain("out of range");
    expect(v[4]!.description).toContain("both allowCidrs and denyCidrs");
  });

  it("diffs the Gateway as kind Gateway, name gateway", () => {
    const before = valid();
    const after = valid();
    after.gateway!.maxConnections = 10;
    const d = diffPolicies(before, after);
    expect(d).toHaveLength(1);
    expect(d[0]).toMatchObject({ kind: "Gateway", name: "gateway", fields: ["maxConnections"] });
    after.gateway = undefined;
    expect(diffPolicies(before, after)[0]).toMatchObject({ kind: "Gateway", name: "gateway", action: 3 });
  });
});

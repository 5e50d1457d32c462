import { create } from "@bufbuild/protobuf";
import { Firewall_Mode, PolicySchema, type Policy } from "@mysqlgw/proto";
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

describe("permissions and the firewall", () => {
  test("unknown statement kinds, empty schemas, malformed digests and unknown firewall users are refused with what to do", () => {
    const violations = validatePolicy(
      create(PolicySchema, {
        users: [{ name: "u1", passwordHash: "", allowedStatementKinds: ["SELECT", "FROB"], allowedSchemas: [""] }],
        gateway: { firewall: { mode: Firewall_Mode.ENFORCE, allowedDigests: ["0123456789abcdef", "xyz"], users: ["u1", "ghost"] } },
      }),
    );
    const fields = violations.map((v) => `${v.kind}/${v.name}:${v.field}`);
    expect(fields).toEqual(
      expect.arrayContaining(["User/u1:allowedStatementKinds[1]", "User/u1:allowedSchemas[0]", "Gateway/gateway:firewall.allowedDigests[1]", "Gateway/gateway:firewall.users[1]"]),
    );
    expect(fields).not.toContain("User/u1:allowedStatementKinds[0]");
    expect(fields).not.toContain("Gateway/gateway:firewall.users[0]");
  });
});

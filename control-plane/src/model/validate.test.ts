import { create } from "@bufbuild/protobuf";
import { PolicySchema, type Policy } from "@mysqlgw/proto";
import { checkAddress, checkSecretRef, validatePolicy } from "./validate";

const HASH = "*F142931D9296BB66D4600D47418DBC1475D27D29"; // PASSWORD('app-password')

function valid(): Policy {
  return create(PolicySchema, {
    clusters: [{ name: "orders", backends: [{ name: "db1", address: "db1.orders.internal:3306" }, { name: "db2", address: "[::1]:3307", weight: 2 }] }],
    listeners: [{ name: "orders-rw", port: 6033, cluster: "orders" }],
    users: [{ name: "shop", passwordHash: HASH, backendCredentials: { user: "shop", secretRef: "env:ORDERS_PW" } }],
  });
}

function only(p: Policy) {
  const v = validatePolicy(p);
  expect(v).toHaveLength(1);
  return v[0]!;
}

describe("validatePolicy", () => {
  it("accepts a valid policy and an empty one", () => {
    expect(validatePolicy(valid())).toEqual([]);
    expect(validatePolicy(create(PolicySchema))).toEqual([]);
  });

  it("reports every problem at once, in kind order", () => {
    const p = valid();
    p.clusters[0]!.name = "Orders";
    p.listeners[0]!.port = 70000;
    p.users[0]!.passwordHash = "hunter2";
    const v = validatePolicy(p);
    expect(v.map((x) => `${x.kind}/${x.index}/${x.field}`)).toEqual([
      "Cluster/0/name", "Listener/0/port", "Listener/0/cluster", "User/0/passwordHash",
    ]);
  });

  describe("names", () => {
    it.each([
      ["", "name is missing"],
      ["Orders", "is not a valid name"],
      ["-x", "is not a valid name"],
      ["a".repeat(64), "is not a valid name"],
      ["a b", "is not a valid name"],
    ])("rejects cluster name %j", (name, text) => {
      const p = valid();
      p.clusters[0]!.name = name;
      p.listeners = [];
      const v = only(p);
      expect(v).toMatchObject({ kind: "Cluster", index: 0, field: "name" });
      expect(v.description).toContain(text);
    });

    it("accepts 63 characters with - and _", () => {
      const p = valid();
      p.clusters[0]!.name = "a" + "-_9".repeat(20) + "zz";
      p.listeners[0]!.cluster = p.clusters[0]!.name;
      expect(validatePolicy(p)).toEqual([]);
    });

    it("rejects duplicates per kind and names the other one", () => {
      const p = valid();
      p.listeners.push({ ...p.listeners[0]!, port: 6034 });
      const v = only(p);
      expect(v).toMatchObject({ kind: "Listener", index: 1, field: "name" });
      expect(v.description).toMatch(/defined twice \(also listeners\[0\]\); rename or remove one/);
    });

    it("allows the same name in different kinds", () => {
      const p = valid();
      p.listeners[0]!.name = "orders";
      expect(validatePolicy(p)).toEqual([]);
    });
  });

  describe("backends", () => {
    it("requires at least one", () => {
      const p = valid();
      p.clusters[0]!.backends = [];
      expect(only(p)).toMatchObject({ field: "backends", description: expect.stringContaining("at least one backend") });
    });

    it("checks backend names and their uniqueness", () => {
      const p = valid();
      p.clusters[0]!.backends[1]!.name = "db1";
      expect(only(p)).toMatchObject({ field: "backends[1].name", description: expect.stringContaining("appears twice") });
      p.clusters[0]!.backends[1]!.name = "";
      expect(only(p)).toMatchObject({ field: "backends[1].name", description: expect.stringContaining("missing") });
    });

    it.each([
      ["", "address is missing"],
      ["db1", "has no port"],
      ["db1:", "is not a number"],
      ["db1:0", "out of range; use 1..65535"],
      ["db1:65536", "out of range; use 1..65535"],
      [":3306", "has no host"],
      ["::1:3306", "without brackets; write it as [::1]:3306"],
      ["[::1", "no closing"],
      ["[::1]", "has no port"],
      ["[db1]:3306", "not an IPv6 address"],
      ["db_1!:3306", "not a valid host name"],
    ])("rejects address %j", (address, text) => {
      const p = valid();
      p.clusters[0]!.backends[0]!.address = address;
      const v = only(p);
      expect(v.field).toBe("backends[0].address");
      expect(v.description).toContain(text);
      expect(v.description).toMatch(/use|write/);
    });

    it.each(["127.0.0.1:3306", "[::1]:3306", "[2001:db8::1]:1", "db1.orders.internal:65535", "localhost:3306"])("accepts %j", (a) => {
      expect(checkAddress(a)).toBeNull();
    });
  });

  describe("listeners", () => {
    it("checks the port range", () => {
      const p = valid();
      p.listeners[0]!.port = 0;
      expect(only(p)).toMatchObject({ field: "port", description: expect.stringContaining("port is missing") });
      p.listeners[0]!.port = 70000;
      expect(only(p).description).toBe("70000 is out of range; use 1..65535");
    });

    it("requires an IP bind address", () => {
      const p = valid();
      p.listeners[0]!.bindAddress = "localhost";
      expect(only(p)).toMatchObject({ field: "bindAddress", description: expect.stringContaining("not an IP address") });
    });

    it("requires ports unique per bind address, wildcards clash with everything", () => {
      const p = valid();
      p.listeners.push({ ...p.listeners[0]!, name: "orders-ro", bindAddress: "127.0.0.1" });
      expect(only(p)).toMatchObject({ index: 1, field: "port", description: expect.stringContaining('clashes with listener "orders-rw"') });
      p.listeners[0]!.bindAddress = "127.0.0.2";
      expect(validatePolicy(p)).toEqual([]);
      p.listeners[1]!.bindAddress = "127.0.0.2";
      expect(only(p).field).toBe("port");
    });

    it("checks proxyProtocol.trustedCidrs and says what to write", () => {
      const p = valid();
      p.listeners[0]!.proxyProtocol = { $typeName: "mysqlgw.config.v1.ProxyProtocol", trustedCidrs: ["10.0.0.0/8", "192.0.2.7", "fd00::/64", "::1"], required: true };
      expect(validatePolicy(p)).toEqual([]);
      p.listeners[0]!.proxyProtocol.trustedCidrs = ["10.0.0.0/33", "lb.example", "10.1.2.3/16", "fd00::/129", "10.0.0.0/08"];
      const v = validatePolicy(p);
      expect(v.map((x) => x.field)).toEqual([0, 1, 2, 3, 4].map((k) => `proxyProtocol.trustedCidrs[${k}]`));
      expect(v[0]!.description).toMatch(/bad prefix length; use 0\.\.32/);
      expect(v[1]!.description).toMatch(/"lb.example" is not a CIDR; write an IPv4 or IPv6 network as address\/prefix-length, e\.g\. 10\.0\.0\.0\/24/);
      expect(v[2]!.description).toBe('"10.1.2.3/16" has host bits set; write the network, 10.1.0.0/16, or the single address 10.1.2.3');
      expect(v[3]!.description).toMatch(/use 0\.\.128/);
      p.listeners[0]!.proxyProtocol.trustedCidrs = [];
      expect(only(p)).toMatchObject({ field: "proxyProtocol.required", description: expect.stringMatching(/list the load balancers' addresses in proxyProtocol\.trustedCidrs/) });
    });

    it("requires the cluster to exist and lists the defined ones", () => {
      const p = valid();
      p.listeners[0]!.cluster = "billing";
      expect(only(p)).toMatchObject({ field: "cluster", description: expect.stringMatching(/"billing" is not defined.*\(defined: orders\)/) });
      p.listeners[0]!.cluster = "";
      expect(only(p).description).toContain("cluster is missing");
    });
  });

  describe("users", () => {
    it("limits names to 80 characters without NUL, unique", () => {
      const p = valid();
      p.users[0]!.name = "u".repeat(80);
      expect(validatePolicy(p)).toEqual([]);
      p.users[0]!.name = "u".repeat(81);
      expect(only(p).description).toContain("at most 80");
      p.users[0]!.name = "a\0b";
      expect(only(p).description).toContain("NUL");
      p.users[0]!.name = "";
      expect(only(p).description).toContain("missing");
      p.users[0]!.name = "Shop.User@x"; // user names are free-form
      p.users.push({ ...p.users[0]!, backendCredentials: undefined });
      expect(only(p)).toMatchObject({ index: 1, field: "name", description: expect.stringContaining("defined twice") });
    });

    it("never echoes a clear password and says how to get a hash", () => {
      const p = valid();
      p.users[0]!.passwordHash = "s3cret-Passw0rd";
      const v = only(p);
      expect(v.field).toBe("passwordHash");
      expect(v.description).toContain("clear password");
      expect(v.description).toContain("mysqlgw hash-password");
      expect(v.description).toContain("SELECT PASSWORD(");
      expect(v.description).not.toContain("s3cret");
    });

    it("asks for upper-case hex and rejects malformed hashes", () => {
      const p = valid();
      p.users[0]!.passwordHash = HASH.toLowerCase();
      expect(only(p).description).toContain("upper case");
      p.users[0]!.passwordHash = "*ABC";
      expect(only(p).description).toContain("not a mysql_native_password hash");
      p.users[0]!.passwordHash = "";
      expect(validatePolicy(p)).toEqual([]);
    });

    it("checks secret references without echoing non-references", () => {
      expect(checkSecretRef("")).toBeNull();
      expect(checkSecretRef("env:ORDERS_PW")).toBeNull();
      expect(checkSecretRef("file:/run/secrets/orders")).toBeNull();
      expect(checkSecretRef("env:1BAD")).toContain("not an environment variable name");
      expect(checkSecretRef("file:relative/path")).toContain("not an absolute path");
      const v = checkSecretRef("my-backend-password")!;
      expect(v).toContain("env:NAME");
      expect(v).not.toContain("my-backend-password");
      const p = valid();
      p.users[0]!.backendCredentials!.secretRef = "hunter2";
      expect(only(p).field).toBe("backendCredentials.secretRef");
      p.users[0]!.backendCredentials!.secretRef = "";
      p.users[0]!.backendCredentials!.user = "x".repeat(81);
      expect(only(p).field).toBe("backendCredentials.user");
    });
  });

describe("caching_sha2_password verifier and backend TLS", () => {
  // cachingSha2PasswordHash("secret", "abcdefghij0123456789") as the data plane computes it
  const SHA2 = "$A$005$abcdefghij0123456789" + "A".repeat(43);

  it("accepts a mysql.user-format verifier and says what is wrong with others", () => {
    const p = valid();
    p.users[0]!.cachingSha2PasswordHash = SHA2;
    p.users[0]!.requireTls = true;
    expect(validatePolicy(p)).toEqual([]);
    p.users[0]!.cachingSha2PasswordHash = "s3cret-Passw0rd";
    const v = only(p);
    expect(v.field).toBe("cachingSha2PasswordHash");
    expect(v.description).toContain("clear password");
    expect(v.description).toContain("mysqlgw hash-password");
    expect(v.description).not.toContain("s3cret");
    p.users[0]!.cachingSha2PasswordHash = HASH;
    expect(only(p).description).toContain("put it in passwordHash");
    p.users[0]!.cachingSha2PasswordHash = SHA2.slice(0, 60);
    expect(only(p).description).toContain("must be 70 characters");
    p.users[0]!.cachingSha2PasswordHash = "$A$000$" + SHA2.slice(7);
    expect(only(p).description).toContain("below MySQL's minimum");
    p.users[0]!.cachingSha2PasswordHash = SHA2.slice(0, 10) + "$" + SHA2.slice(11);
    expect(only(p).description).toContain("salt");
    p.users[0]!.cachingSha2PasswordHash = SHA2.slice(0, 69) + "!";
    expect(only(p).description).toContain("base64");
  });

  it("needs an absolute caFile for the verifying modes and a mode when TLS fields are set", () => {
    const p = valid();
    p.clusters[0]!.tls = { $typeName: "mysqlgw.config.v1.BackendTls", mode: 3, caFile: "/etc/mysqlgw/ca.pem", serverName: "" };
    expect(validatePolicy(p)).toEqual([]);
    p.clusters[0]!.tls.caFile = "";
    expect(only(p)).toMatchObject({ field: "tls.caFile", description: expect.stringContaining("MODE_VERIFY_CA checks the server certificate") });
    p.clusters[0]!.tls.caFile = "ca.pem";
    expect(only(p).description).toContain("not an absolute path");
    p.clusters[0]!.tls = { $typeName: "mysqlgw.config.v1.BackendTls", mode: 0, caFile: "/ca.pem", serverName: "" };
    expect(only(p)).toMatchObject({ field: "tls.mode", description: expect.stringContaining("set mode to MODE_VERIFY_CA") });
    p.clusters[0]!.tls = { $typeName: "mysqlgw.config.v1.BackendTls", mode: 2, caFile: "", serverName: "" };
    expect(validatePolicy(p)).toEqual([]);
  });
});
});

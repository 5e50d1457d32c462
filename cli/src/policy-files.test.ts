import { ListenerRole } from "@mysqlgw/proto";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { create } from "@bufbuild/protobuf";
import { PolicyViolationSchema } from "@mysqlgw/proto";
import { CliError } from "./cli-error";
import { createPolicyBuilder, loadPolicy, locateViolations, splitFieldPath } from "./policy-files";

function load(files: Record<string, string>) {
  const b = createPolicyBuilder();
  for (const [name, text] of Object.entries(files)) b.addText(text, name);
  return b.finish("policy/");
}

function problems(files: Record<string, string>): string[] {
  try {
    load(files);
  } catch (err) {
    expect(err).toBeInstanceOf(CliError);
    return (err as CliError).render();
  }
  throw new Error("expected a CliError");
}

const ORDERS = `kind: Cluster
name: orders
backends:
  - name: db1
    address: db1:3306
---
kind: Listener
name: orders-rw
port: 6033
cluster: orders
---
kind: User
name: shop
password_hash: "*F142931D9296BB66D4600D47418DBC1475D27D29"
backendCredentials: { secretRef: env:PW }
`;

describe("loading policy YAML", () => {
  it("reads multi-document YAML into one policy, remembering where each resource came from", () => {
    const l = load({ "policy/orders.yaml": ORDERS, "policy/users.yaml": "---\nkind: User\nname: admin\n---\n" });
    expect(l.policy.clusters[0]!.backends[0]!.address).toBe("db1:3306");
    expect(l.policy.listeners[0]!.port).toBe(6033);
    expect(l.policy.users.map((u) => u.name)).toEqual(["shop", "admin"]);
    expect(l.policy.users[0]!.passwordHash).toMatch(/^\*F14/); // proto names are accepted too
    expect(l.sources.Listener[0]).toMatchObject({ file: "policy/orders.yaml", document: 2, name: "orders-rw" });
    expect(l.sources.User[1]).toMatchObject({ file: "policy/users.yaml", document: 1, name: "admin" });
    expect(l.sources.Listener[0]!.lineOf("port")).toBe(9);
    expect(l.sources.Cluster[0]!.lineOf("backends[0].address")).toBe(5);
  });

  it("names file, document, field and line for unknown fields and suggests the right one", () => {
    const p = problems({ "a.yaml": "kind: Listener\nname: x\nprot: 6033\ncluster: c\n" });
    expect(p).toEqual(["error: a.yaml document 1 (Listener x): field prot: unknown field (line 3) — did you mean port? (Listener fields: name, bindAddress, port, cluster, proxyProtocol, allowCidrs, denyCidrs, maxConnections, handshakeTimeout, idleTimeout, role, replicaFallback, readYourWrites, causalReadTimeout, multiplexing)"]);
    const q = problems({ "a.yaml": "kind: Cluster\nname: c\nbackends:\n  - name: a\n    adress: h:1\n" });
    expect(q[0]).toContain("field backends[0].adress: unknown field (line 5) — did you mean address?");
  });

  it("reports wrong types with the path", () => {
    const p = problems({ "a.yaml": "kind: Cluster\nname: c\nbackends:\n  - {name: a, address: 'h:1', weight: heavy}\n---\nkind: Listener\nname: l\nport: '60x'\n" });
    expect(p).toHaveLength(2);
    expect(p[0]).toMatch(/^error: a.yaml document 1 \(Cluster c\): field backends\[0\].weight: expected a whole number, got "heavy" \(line 4\) — /);
    expect(p[1]).toContain("document 2 (Listener l): field port: expected a whole number");
    expect(problems({ "a.yaml": "kind: Cluster\nname: c\nbackends: db1\n" })[0]).toContain("field backends: expected a list");
    expect(problems({ "a.yaml": "kind: User\nname: 12\n" })[0]).toContain("field name: expected a string, got 12");
  });

  it("reports unknown and missing kinds and non-mappings", () => {
    expect(problems({ "a.yaml": "kind: Clustr\nname: x\n" })).toEqual(['error: a.yaml document 1, line 1: unknown kind "Clustr" — did you mean Cluster? (Cluster, Listener, User, Gateway, QueryRule, Quota)']);
    expect(problems({ "a.yaml": "kind: Route\n" })[0]).toContain("use one of Cluster, Listener, User");
    expect(problems({ "a.yaml": "name: x\n" })[0]).toBe("error: a.yaml document 1: no kind — add kind: Cluster, Listener or User at the top of the document");
    expect(problems({ "a.yaml": "- a\n- b\n" })[0]).toContain("not a mapping");
  });

  it("reads Quota documents into Policy.quotas, in order", () => {
    const quota = "kind: Quota\nname: app-rate\nusers: [shop]\nqueriesPerSecond: 300\nburst: 600\nonExceed: ON_EXCEED_QUEUE\nmaxWait: 2s\n---\nkind: Quota\nname: slots\nmaxConcurrent: 20\nonExceed: ON_EXCEED_REJECT\n";
    const { policy, sources } = load({ "a.yaml": ORDERS, "b.yaml": quota });
    expect(policy.quotas.map((q) => [q.name, q.queriesPerSecond, q.burst, q.maxConcurrent, q.onExceed, Number(q.maxWait?.seconds ?? 0)])).toEqual([
      ["app-rate", 300, 600, 0, 1, 2],
      ["slots", 0, 0, 20, 2, 0],
    ]);
    expect(sources.Quota.map((r) => `${r.file}#${r.document} ${r.name}`)).toEqual(["b.yaml#1 app-rate", "b.yaml#2 slots"]);
    expect(problems({ "a.yaml": ORDERS, "b.yaml": "kind: Quota\nname: q\nqps: 3\n" })[0]).toContain("field qps");
  });

  it("reports YAML syntax errors with document, line and column", () => {
    const p = problems({ "a.yaml": "kind: User\nname: a\n---\nkind: User\nname: [\n" });
    expect(p[0]).toMatch(/^error: a.yaml document 2, line \d+ column \d+: YAML syntax error: .* — fix the YAML syntax$/);
    expect(problems({ "a.yaml": "kind: User\nname: a\nname: b\n" })[0]).toMatch(/document 1, line 3 .*Map keys must be unique/);
  });

  it("explains an unquoted password hash (a YAML alias)", () => {
    expect(problems({ "a.yaml": "kind: User\nname: a\npasswordHash: *ABC\n" })[0]).toContain('quote values that start with * (e.g. passwordHash: "*6BB4…")');
  });

  it("refuses a policy without documents", () => {
    expect(problems({ "a.yaml": "# nothing\n" })[0]).toContain("holds no policy documents");
  });
});

describe("loadPolicy on disk", () => {
  let dir: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "mysqlgw-cli-"));
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it("reads every *.yaml / *.yml of a directory in name order, ignoring others", () => {
    fs.mkdirSync(path.join(dir, "policy"));
    fs.writeFileSync(path.join(dir, "policy", "b.yml"), "kind: User\nname: b\n");
    fs.writeFileSync(path.join(dir, "policy", "a.yaml"), "kind: User\nname: a\n");
    fs.writeFileSync(path.join(dir, "policy", "README.md"), "not policy");
    const l = loadPolicy("policy", dir);
    expect(l.files).toEqual([path.join("policy", "a.yaml"), path.join("policy", "b.yml")]);
    expect(l.policy.users.map((u) => u.name)).toEqual(["a", "b"]);
  });

  it("says what to do about a missing path or an empty directory", () => {
    expect(() => loadPolicy("nope.yaml", dir)).toThrow("nope.yaml does not exist");
    fs.mkdirSync(path.join(dir, "empty"));
    expect(() => loadPolicy("empty", dir)).toThrow("holds no *.yaml or *.yml files");
  });

  it("loads the example policy", () => {
    const l = loadPolicy(path.join(__dirname, "..", "..", "examples", "policy"));
    expect(l.policy.clusters.map((c) => [c.name, c.backends.map((b) => b.name)])).toEqual([["demo", ["primary", "replica"]]]);
    expect(l.policy.listeners.map((x) => [x.name, x.port, x.cluster, x.role])).toEqual([
      ["demo-rw", 6033, "demo", ListenerRole.UNSPECIFIED],
      ["demo-ro", 6034, "demo", ListenerRole.READ_ONLY],
      ["demo-split", 6035, "demo", ListenerRole.SPLIT],
    ]);
    expect(l.policy.listeners[0]).toMatchObject({ name: "demo-rw", port: 6033, cluster: "demo" });
    expect(l.policy.users[0]).toMatchObject({ name: "app", passwordHash: "*F142931D9296BB66D4600D47418DBC1475D27D29" });
    expect(l.policy.users[0]!.backendCredentials).toMatchObject({ user: "app", secretRef: "env:MYSQLGW_DEMO_BACKEND_PASSWORD" });
  });
});

describe("locateViolations", () => {
  it("maps the server's violations to file and document", () => {
    const l = load({ "policy/orders.yaml": ORDERS });
    const v = (kind: string, name: string, index: number, field: string, description: string) =>
      create(PolicyViolationSchema, { kind, name, index, field, description });
    expect(locateViolations([
      v("Listener", "orders-rw", 0, "port", "70000 is out of range; use 1..65535"),
      v("Cluster", "orders", 0, "", "something about the whole cluster"),
      v("User", "ghost", 5, "name", "not from a file"),
      v("", "", 0, "", "policy-wide"),
    ], l.sources)).toEqual([
      "policy/orders.yaml document 2 (Listener orders-rw): field port: 70000 is out of range; use 1..65535",
      "policy/orders.yaml document 1 (Cluster orders): something about the whole cluster",
      "User ghost: field name: not from a file",
      "policy: policy-wide",
    ]);
  });

  it("splits field paths", () => {
    expect(splitFieldPath("backends[10].address")).toEqual(["backends", 10, "address"]);
    expect(splitFieldPath("backendCredentials.secretRef")).toEqual(["backendCredentials", "secretRef"]);
  });
});

import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { create } from "@bufbuild/protobuf";
import { durationFromMs } from "@bufbuild/protobuf/wkt";
import { createClient, createRouterTransport } from "@connectrpc/connect";
import { AdminService, ConfigVersionSchema, ListenerRole, PolicySchema, RouteAction_Target, type ConfigVersion } from "@mysqlgw/proto";
import { run } from "../program";

const POLICY = create(PolicySchema, {
  clusters: [
    { name: "orders", backends: [{ name: "db1", address: "127.0.0.1:3306" }] },
    { name: "reports", backends: [{ name: "r1", address: "127.0.0.1:3307" }] },
  ],
  listeners: [
    { name: "orders-split", port: 6033, cluster: "orders", role: ListenerRole.SPLIT },
    { name: "orders-ro", port: 6034, cluster: "orders", role: ListenerRole.READ_ONLY },
  ],
  users: [{ name: "app" }, { name: "bi" }],
  rules: [
    { name: "no-unbounded-deletes", match: { kinds: ["DELETE"], pattern: "^(?!.*\\bwhere\\b)" }, deny: { message: "DELETE without WHERE is blocked by policy" } },
    { name: "bi-to-reports", match: { users: ["bi"] }, route: { cluster: "reports", target: RouteAction_Target.REPLICA } },
    { name: "archive", match: { tables: ["shop.archive"], listeners: ["orders-split"] }, route: { target: RouteAction_Target.PRIMARY }, rewrite: { pattern: "\\barchive\\b", replacement: "archive_2025" } },
    { name: "cache-lookups", match: { kinds: ["SELECT"], schemas: ["shop"], pattern: "FROM countries" }, cache: { ttl: durationFromMs(5000) }, mirror: { cluster: "reports", ratio: 0.1 } },
  ],
});

function fakeApi(config: ConfigVersion | undefined) {
  let calls = 0;
  const transport = createRouterTransport(({ service }) => service(AdminService, {
    getPolicy() {
      calls++;
      return { config };
    },
  }));
  return { client: createClient(AdminService, transport), calls: () => calls };
}

async function cli(args: string[], api = fakeApi(create(ConfigVersionSchema, { version: 3n, policy: POLICY }))) {
  const out: string[] = [];
  const err: string[] = [];
  const code = await run(["explain", ...args], { stdout: (l) => out.push(l), stderr: (l) => err.push(l), createClient: () => api.client });
  return { code, out, err, api };
}

describe("mysqlgw explain", () => {
  it("a read on a split listener (the first listener by default) goes to a replica", async () => {
    const r = await cli(["--user", "app", "--sql", "SELECT c FROM sbtest1 WHERE id=5023"]);
    expect(r.err).toEqual([]);
    expect(r.code).toBe(0);
    expect(r.out).toEqual([
      "statement: SELECT c FROM sbtest1 WHERE id=5023",
      "kind:      SELECT",
      "flags:     where",
      "hint:      none",
      expect.stringMatching(/^digest: {4}[0-9a-f]{16} {2}SELECT c FROM sbtest1 WHERE id = \?$/),
      "tables:    sbtest1",
      "session:   user app, schema (none), autocommit",
      "listener:  orders-split (split, cluster orders)",
      "rule:      none",
      "route:     replica of cluster orders",
      "reason:    read",
    ]);
  });

  it("a locking read goes to the primary, and says why", async () => {
    const r = await cli(["--user", "app", "--sql", "SELECT * FROM t WHERE id=1 FOR UPDATE"]);
    expect(r.out.slice(-2)).toEqual(["route:     primary of cluster orders", "reason:    for-update"]);
    expect(r.out[2]).toBe("flags:     for-update, where");
  });

  it("shows a deny rule and no route", async () => {
    const r = await cli(["--user", "app", "--sql", "DELETE FROM orders"]);
    expect(r.out.slice(-2)).toEqual([
      "rule:      no-unbounded-deletes (rule 1): deny 1142 (42000)",
      "denied:    ERROR 1142 (42000): DELETE without WHERE is blocked by policy",
    ]);
    expect((await cli(["--user", "app", "--sql", "DELETE FROM orders WHERE id=1"])).out.slice(-3)).toEqual([
      "rule:      none", "route:     primary of cluster orders", "reason:    write",
    ]);
  });

  it("a rule routes to another cluster, on any listener", async () => {
    const r = await cli(["--user", "bi", "--listener", "orders-ro", "--sql", "SELECT COUNT(*) FROM orders"]);
    expect(r.out.slice(-4)).toEqual([
      "listener:  orders-ro (read-only, cluster orders)",
      "rule:      bi-to-reports (rule 2): route replica, cluster reports",
      "route:     replica of cluster reports",
      "reason:    rule:bi-to-reports",
    ]);
  });

  it("matches tables through the schema, rewrites, and prints JSON", async () => {
    const r = await cli(["--user", "app", "--schema", "shop", "--sql", "SELECT * FROM archive WHERE id=7", "--json"]);
    expect(r.code).toBe(0);
    const e = JSON.parse(r.out.join("\n"));
    expect(e).toEqual({
      statement: "SELECT * FROM archive WHERE id=7",
      kind: "SELECT",
      flags: ["where"],
      hint: null,
      digest: { hash: expect.stringMatching(/^[0-9a-f]{16}$/), text: "SELECT * FROM archive WHERE id = ?" },
      tables: ["archive"],
      user: "app",
      schema: "shop",
      listener: { name: "orders-split", role: "split", cluster: "orders" },
      session: { inTransaction: false, autocommit: true },
      rule: { name: "archive", position: 3, actions: ["route primary", "rewrite"] },
      denied: null,
      rewritten: "SELECT * FROM archive_2025 WHERE id=7",
      route: { target: "primary", cluster: "orders", reason: "rule:archive", ignored: null },
    });
    // the same statement in another schema: the rule does not match
    const other = JSON.parse((await cli(["--user", "app", "--schema", "crm", "--sql", "SELECT * FROM archive WHERE id=7", "--json"])).out.join("\n"));
    expect(other.rule).toBeNull();
    expect(other.route.target).toBe("replica");
  });

  it("lists cache and mirror actions", async () => {
    const r = await cli(["--user", "app", "--schema", "shop", "--sql", "SELECT name FROM countries"]);
    expect(r.out).toContain("rule:      cache-lookups (rule 4): mirror to cluster reports (ratio 0.1); cache 5000 ms (results up to 1048576 bytes, 67108864 bytes in all)");
  });

  it("inside a transaction a hint is ignored and named", async () => {
    const r = await cli(["--user", "app", "--in-transaction", "--sql", "/* mysqlgw:replica */ SELECT 1"]);
    expect(r.out.slice(-3)).toEqual(["rule:      none", "route:     primary of cluster orders", "reason:    in-transaction (hint:replica ignored)"]);
    expect(r.out[6]).toBe("session:   user app, schema (none), in a transaction");
    const off = await cli(["--user", "app", "--autocommit-off", "--sql", "SELECT 1"]);
    expect(off.out.slice(-1)).toEqual(["reason:    autocommit-off"]);
  });

  it("says when the parser cannot read the statement", async () => {
    const r = await cli(["--user", "app", "--sql", "SELECT FROM WHERE"]);
    expect(r.out[5]).toBe("tables:    (not parsed: a rule with tables does not match this statement)");
  });

  it("warns about a user the policy does not define", async () => {
    const r = await cli(["--user", "ghost", "--sql", "SELECT 1"]);
    expect(r.code).toBe(0);
    expect(r.err).toEqual(['warning: user "ghost" is not defined in this policy; rules are matched as if it were']);
  });

  it("reads policy files with -f instead of the control plane", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "mgw-explain-"));
    try {
      const a = path.join(dir, "a.yaml");
      const b = path.join(dir, "b.yaml");
      fs.writeFileSync(a, "kind: Cluster\nname: c1\nbackends: [{name: db1, address: \"127.0.0.1:3306\"}]\n---\nkind: Listener\nname: ro\nport: 7000\ncluster: c1\nrole: LISTENER_ROLE_READ_ONLY\n");
      fs.writeFileSync(b, "kind: User\nname: app\n---\nkind: QueryRule\nname: writes-here\nmatch: {kinds: [INSERT]}\nroute: {target: TARGET_PRIMARY}\n");
      const api = fakeApi(undefined);
      const r = await cli(["--user", "app", "--sql", "INSERT INTO t VALUES (1)", "-f", a, b], api);
      expect(api.calls()).toBe(0);
      expect(r.err).toEqual([]);
      expect(r.out.slice(-4)).toEqual([
        "listener:  ro (read-only, cluster c1)",
        "rule:      writes-here (rule 1): route primary",
        "route:     primary of cluster c1",
        "reason:    rule:writes-here",
      ]);
      expect((await cli(["--user", "app", "--sql", "SELECT 1", "-f", a, b], api)).out.slice(-1)).toEqual(["reason:    listener-read-only"]);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it("fails clearly: unknown listener, nothing applied, missing options", async () => {
    const r = await cli(["--user", "app", "--listener", "nope", "--sql", "SELECT 1"]);
    expect(r.code).toBe(1);
    expect(r.err).toEqual(['error: no listener named "nope" — use one of: orders-split, orders-ro']);
    const none = await cli(["--user", "app", "--sql", "SELECT 1"], fakeApi(undefined));
    expect(none.code).toBe(1);
    expect(none.err[0]).toMatch(/^error: no configuration has been applied yet.* — apply one/);
    const usage = await cli(["--user", "app"]);
    expect(usage.code).toBe(2);
  });
});

// Issue 4 points 2 and 5: query rules in policy files go through the real CLI
// and control plane (validation, diff with positions, etcd) and `mysqlgw
// explain` reads them back and routes statements with the data plane's code.
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { runCli, startControlPlane, startEtcd, type ControlPlane, type EtcdServer } from "../helpers";

let etcd: EtcdServer;
let cp: ControlPlane;
let dir: string;

const BASE = `kind: Cluster
name: orders
backends: [{ name: db1, address: "127.0.0.1:3306" }, { name: db2, address: "127.0.0.1:3307" }]
---
kind: Cluster
name: reports
backends: [{ name: r1, address: "127.0.0.1:3308" }]
---
kind: Listener
name: orders-split
port: 6033
cluster: orders
role: LISTENER_ROLE_SPLIT
---
kind: Listener
name: orders-rw
port: 6034
cluster: orders
---
kind: User
name: app
---
kind: User
name: bi
`;

const RULES = `kind: QueryRule
name: no-unbounded-deletes
match: { kinds: [DELETE, UPDATE], pattern: "^(?!.*\\\\bwhere\\\\b)" }
deny: { code: 1148, message: "DELETE/UPDATE without WHERE is blocked by policy" }
---
kind: QueryRule
name: bi-to-reports
match: { users: [bi] }
route: { cluster: reports, target: TARGET_REPLICA }
---
kind: QueryRule
name: archive-on-primary
match: { tables: [shop.archive] }
route: { target: TARGET_PRIMARY }
`;

function write(name: string, text: string): string {
  const f = path.join(dir, name);
  fs.writeFileSync(f, text);
  return f;
}

async function explainJson(args: string[]) {
  const r = await runCli(cp.url, ["explain", ...args, "--json"]);
  expect(r.stderr).toBe("");
  expect(r.code).toBe(0);
  return JSON.parse(r.stdout);
}

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "mgw-explain-"));
  etcd = await startEtcd();
  cp = await startControlPlane({ etcd });
  write("00-base.yaml", BASE);
  write("10-rules.yaml", RULES);
  const applied = await runCli(cp.url, ["apply", "-f", dir]);
  expect(applied.stderr).toBe("");
  expect(applied.code).toBe(0);
  expect(applied.stdout).toContain("+ QueryRule no-unbounded-deletes");
  expect(applied.stdout).toMatch(/applied: version 1/);
}, 60_000);

afterAll(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

test("explain against the applied policy: the split listener's reads, writes, locks and transactions", async () => {
  const read = await explainJson(["--user", "app", "--sql", "SELECT c FROM sbtest1 WHERE id=5023"]);
  expect(read).toMatchObject({
    kind: "SELECT", flags: ["where"], tables: ["sbtest1"], rule: null,
    digest: { hash: expect.stringMatching(/^[0-9a-f]{16}$/), text: "SELECT c FROM sbtest1 WHERE id = ?" },
    listener: { name: "orders-rw", role: "read-write", cluster: "orders" }, // the first listener of the stored (name-sorted) policy
    route: { target: "primary", cluster: "orders", reason: "listener-read-write" },
  });
  const split = ["--listener", "orders-split", "--user", "app"];
  expect((await explainJson([...split, "--sql", "SELECT c FROM sbtest1 WHERE id=5023"])).route).toEqual({ target: "replica", cluster: "orders", reason: "read", ignored: null });
  // (the whole routing table is unit-tested in data-plane/src/routing/decide.test.ts and cli/src/commands/explain.test.ts;
  // each CLI run here costs a node start and a parser load, so only a few run end to end)
  expect((await explainJson([...split, "--in-transaction", "--sql", "/* mysqlgw:replica */ SELECT 1"])).route)
    .toEqual({ target: "primary", cluster: "orders", reason: "in-transaction", ignored: "hint:replica" });
});

test("explain shows the matching rule: deny, route to another cluster, tables through the schema", async () => {
  const denied = await explainJson(["--user", "app", "--sql", "DELETE FROM orders"]);
  expect(denied).toMatchObject({
    rule: { name: "no-unbounded-deletes", position: 1, actions: ["deny 1148 (42000)"] },
    denied: { errno: 1148, sqlState: "42000", message: "DELETE/UPDATE without WHERE is blocked by policy" },
    route: null,
  });
  const bi = await explainJson(["--user", "bi", "--listener", "orders-split", "--sql", "DELETE FROM orders WHERE id < 10"]);
  expect(bi).toMatchObject({ rule: { name: "bi-to-reports", position: 2 }, route: { target: "replica", cluster: "reports", reason: "rule:bi-to-reports" } });
  const archive = await explainJson(["--user", "app", "--schema", "shop", "--listener", "orders-split", "--sql", "SELECT * FROM archive WHERE y=2020"]);
  expect(archive).toMatchObject({ tables: ["archive"], rule: { name: "archive-on-primary", position: 3 }, route: { target: "primary", reason: "rule:archive-on-primary" } });

  // the text form
  const text = await runCli(cp.url, ["explain", "--user", "app", "--sql", "UPDATE t SET a=1"]);
  expect(text.code).toBe(0);
  expect(text.stdout.trimEnd().split("\n").slice(-2)).toEqual([
    "rule:      no-unbounded-deletes (rule 1): deny 1148 (42000)",
    "denied:    ERROR 1148 (42000): DELETE/UPDATE without WHERE is blocked by policy",
  ]);
});

test("rules round-trip through get, diff reports a move as a change of position, explain -f reads files", async () => {
  const got = await runCli(cp.url, ["get", "rules"]);
  expect(got.code).toBe(0);
  expect([...got.stdout.matchAll(/^name: (.*)$/gm)].map((m) => m[1])).toEqual(["no-unbounded-deletes", "bi-to-reports", "archive-on-primary"]);

  const swapped = RULES.split("---\n");
  const moved = write("10-rules.yaml", [swapped[1], swapped[0], swapped[2]].join("---\n"));
  const diff = await runCli(cp.url, ["diff", "-f", dir]);
  expect(diff.code).toBe(0);
  expect(diff.stdout).toContain("~ QueryRule bi-to-reports\n    position: 2 → 1");
  expect(diff.stdout).toContain("~ QueryRule no-unbounded-deletes\n    position: 1 → 2");

  // explain against the files, not the applied policy: bi's DELETE now meets its route rule first
  const fromFiles = await explainJson(["--user", "bi", "--sql", "DELETE FROM orders", "-f", path.join(dir, "00-base.yaml"), moved]);
  expect(fromFiles).toMatchObject({ listener: { name: "orders-split" }, rule: { name: "bi-to-reports", position: 1 }, route: { cluster: "reports", reason: "rule:bi-to-reports" } });
  write("10-rules.yaml", RULES);
});

test("an invalid rule is refused by the control plane, naming file, document and field", async () => {
  const bad = write("20-bad.yaml", "kind: QueryRule\nname: bad\nmatch: { kinds: [SELEC], digests: [abc] }\nroute: { cluster: nowhere }\ndeny: {}\n");
  try {
    const r = await runCli(cp.url, ["apply", "-f", dir]);
    expect(r.code).toBe(1);
    const lines = r.stderr.trimEnd().split("\n");
    expect(lines).toEqual([
      expect.stringMatching(/20-bad.yaml document 1 \(QueryRule bad\): field match.kinds\[0\]: "SELEC" is not a statement kind — did you mean SELECT\?/),
      expect.stringMatching(/20-bad.yaml document 1 \(QueryRule bad\): field match.digests\[0\]: "abc" is not a digest/),
      expect.stringMatching(/20-bad.yaml document 1 \(QueryRule bad\): field deny: a rule that denies runs nothing, so route would never apply/),
      expect.stringMatching(/20-bad.yaml document 1 \(QueryRule bad\): field route.cluster: cluster "nowhere" is not defined/),
    ]);
    const status = await runCli(cp.url, ["get", "rules", "-o", "json"]);
    expect(JSON.parse(status.stdout)).toHaveLength(3); // nothing written
  } finally {
    fs.rmSync(bad);
  }
});

// Issue 6, point 6 (control-plane half): `mysqlgw history` and `mysqlgw rollback
// VERSION` through the real CLI, control plane and etcd (versions/<n>), the
// same calls over gRPC and REST, and a data plane moving to the version a
// rollback writes.
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { HistoryService, ResourceChange_Action as A } from "@mysqlgw/proto";
import { freePort, runCli, startControlPlane, startDataPlane, startEtcd, type ControlPlane, type DataPlane, type EtcdServer } from "../helpers";

let etcd: EtcdServer;
let cp: ControlPlane;
let dp: DataPlane;
let dir: string;
let port: number;

const policy = (listenerPort: number, users: string[]): string =>
  [
    `kind: Cluster\nname: orders\nbackends: [{ name: db1, address: "127.0.0.1:3306" }]`,
    `kind: Listener\nname: orders-rw\nport: ${listenerPort}\nbindAddress: 127.0.0.1\ncluster: orders`,
    ...users.map((u) => `kind: User\nname: ${u}`),
  ].join("\n---\n") + "\n";

function write(text: string): string {
  const f = path.join(dir, "policy.yaml");
  fs.writeFileSync(f, text);
  return f;
}

const cli = (args: string[]) => runCli(cp.url, args);

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "mgw-history-"));
  etcd = await startEtcd();
  cp = await startControlPlane({ etcd });
  port = await freePort();
  for (const [i, text] of [policy(port, ["app"]), policy(port, ["app", "bi"]), policy(port, ["app", "bi", "ops"])].entries()) {
    const r = await cli(["apply", "-f", write(text)]);
    expect(r.stderr).toBe("");
    expect(r.stdout).toContain(`applied: version ${i + 1}`);
  }
  dp = await startDataPlane({ etcd, waitForConfig: 3 });
}, 90_000);

afterAll(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

test("mysqlgw history lists the versions newest first, with who and what changed", async () => {
  const r = await cli(["history"]);
  expect(r.stderr).toBe("");
  expect(r.code).toBe(0);
  const lines = r.stdout.trim().split("\n");
  expect(lines[0]).toMatch(/^VERSION\s+APPLIED \(UTC\)\s+BY\s+CHANGES$/);
  expect(lines[1]).toMatch(/^3 \*\s+\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ\s+cli:\S+\s+\+User ops$/);
  expect(lines[2]).toMatch(/^2\s+.*\+User bi$/);
  expect(lines[3]).toMatch(/^1\s+.*\+Cluster orders, \+Listener orders-rw, \+User app$/);
  expect(r.stdout).toContain("roll back with: mysqlgw rollback VERSION");

  const page = await cli(["history", "--limit", "1"]);
  expect(page.stdout).toContain("older versions: mysqlgw history --before 3");
  const json = JSON.parse((await cli(["history", "--json", "--limit", "2", "--before", "3"])).stdout);
  expect(json).toMatchObject({ currentVersion: "3", nextBefore: "0", versions: [{ version: "2" }, { version: "1" }] });
  expect(json.versions[0].digest).toMatch(/^[0-9a-f]{64}$/);

  const bad = await cli(["history", "--limit", "0"]);
  expect(bad.code).toBe(2);
  expect(bad.stderr).toMatch(/--limit "0" is not a number from 1 to 1000/);
});

test("mysqlgw rollback: dry run, then a new version with the old policy that the data plane serves", async () => {
  const dry = await cli(["rollback", "1", "--dry-run"]);
  expect(dry.stderr).toBe("");
  expect(dry.stdout).toBe("- User bi\n- User ops\ndry run: rolling back to version 1 would apply 2 changes as version 4; nothing was written\n");

  const r = await cli(["rollback", "1"]);
  expect(r.stderr).toBe("");
  expect(r.code).toBe(0);
  expect(r.stdout).toContain("rolled back: version 4 restores version 1 (2 changes)");
  await dp.waitForConfig(4);

  const users = await cli(["get", "users", "-o", "json"]);
  expect(JSON.parse(users.stdout).map((u: { name: string }) => u.name)).toEqual(["app"]);
  const hist = (await cli(["history", "--limit", "1"])).stdout.split("\n")[1]!;
  expect(hist).toMatch(/^4 \*\s+\S+ \S+\s+cli:\S+ \(rollback to version 1\)\s+-User bi, -User ops$/);

  const again = await cli(["rollback", "1"]);
  expect(again.stdout).toBe("no changes: version 4 is current and equals version 1\n");
  const missing = await cli(["rollback", "9"]);
  expect(missing.code).toBe(1);
  expect(missing.stderr).toMatch(/^error: config version 9 does not exist; versions go from 1 to 4 \(mysqlgw history lists them\)/);
  const usage = await cli(["rollback", "x"]);
  expect(usage.code).toBe(2);
});

test("the same service over gRPC and REST", async () => {
  const grpc = createClient(HistoryService, createGrpcTransport({ baseUrl: cp.url }));
  const list = await grpc.listVersions({ limit: 2 });
  expect(list.currentVersion).toBe(4n);
  expect(list.versions.map((v) => v.version)).toEqual([4n, 3n]);
  expect(list.versions[0]!.changes.map((c) => [c.action, c.name])).toEqual([
    [A.DELETE, "bi"],
    [A.DELETE, "ops"],
  ]);
  const back = await grpc.rollbackPolicy({ version: 3n, appliedBy: "grpc-test", expectedVersion: 4n });
  expect(back).toMatchObject({ version: 5n, changed: true, restoredVersion: 3n });
  await dp.waitForConfig(5);

  const rest = (await (await fetch(`${cp.url}/v1/versions?limit=1`)).json()) as { versions: { version: string; appliedBy: string }[] };
  expect(rest.versions[0]).toMatchObject({ version: "5", appliedBy: "grpc-test (rollback to version 3)" });
  const stale = await fetch(`${cp.url}/v1/policy:rollback`, { method: "POST", body: JSON.stringify({ version: "1", expectedVersion: "4" }) });
  expect(stale.status).toBe(400); // FAILED_PRECONDITION
  expect(await stale.json()).toMatchObject({ code: "failed_precondition", message: expect.stringMatching(/current version is 5, not the expected 4/) });

  // counted like the AdminService's calls; versions are read from the store, not through GetPolicy
  const metrics = await (await fetch(`${cp.url}/metrics`)).text();
  expect(metrics).toMatch(/^mysqlgw_api_requests_total\{method="ListVersions",code="ok"\} [1-9]/m);
  expect(metrics).toMatch(/^mysqlgw_api_requests_total\{method="RollbackPolicy",code="failed_precondition"\} 1$/m);
  expect(metrics).not.toMatch(/method="GetPolicy",code="not_found"/);
});

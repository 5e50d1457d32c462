import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createClient, createRouterTransport } from "@connectrpc/connect";
import {
  AdminService,
  ConfigVersionSchema,
  DataPlaneSchema,
  PolicyViolationsSchema,
  ResourceChange_Action as A,
  ResourceChangeSchema,
  type ConfigVersion,
  type Policy,
} from "@mysqlgw/proto";
import { run } from "./program";

/** A stand-in AdminService: records applies, rejects port 70000 like the real one. */
function fakeApi() {
  const versions: ConfigVersion[] = [];
  const calls: string[] = [];
  const changesOf = (p: Policy) => p.listeners.map((l) => create(ResourceChangeSchema, { action: A.ADD, kind: "Listener", name: l.name }));
  const check = (p: Policy) => {
    const i = p.listeners.findIndex((l) => l.port > 65535);
    if (i >= 0) {
      throw new ConnectError("policy is invalid", Code.InvalidArgument, undefined, [{
        desc: PolicyViolationsSchema,
        value: create(PolicyViolationsSchema, { violations: [{ kind: "Listener", name: p.listeners[i]!.name, index: i, field: "port", description: `${p.listeners[i]!.port} is out of range; use 1..65535` }] }),
      }]);
    }
  };
  const transport = createRouterTransport(({ service }) => service(AdminService, {
    applyPolicy(req) {
      calls.push(`apply dry=${req.dryRun} by=${req.appliedBy.startsWith("cli:")}`);
      check(req.policy!);
      const cur = versions[versions.length - 1];
      if (cur && JSON.stringify(cur.policy) === JSON.stringify(req.policy)) return { version: cur.version, changed: false, changes: [] };
      if (req.dryRun) return { version: cur?.version ?? 0n, changes: changesOf(req.policy!) };
      const v = create(ConfigVersionSchema, { version: BigInt(versions.length + 1), policy: req.policy, appliedBy: req.appliedBy, appliedAt: timestampFromMs(0) });
      versions.push(v);
      return { version: v.version, changed: true, changes: changesOf(req.policy!) };
    },
    diffPolicy(req) {
      check(req.policy!);
      return { baseVersion: BigInt(versions.length), changes: changesOf(req.policy!) };
    },
    getPolicy(req) {
      if (req.version === 0n) return { config: versions[versions.length - 1] };
      const c = versions.find((v) => v.version === req.version);
      if (!c) throw new ConnectError(`config version ${req.version} does not exist; versions go from 1 to ${versions.length}`, Code.NotFound);
      return { config: c };
    },
    listDataPlanes() {
      return {
        currentVersion: BigInt(versions.length),
        dataPlanes: [
          create(DataPlaneSchema, { id: "gw1-100", pid: 100, workers: 2, configVersion: BigInt(versions.length), listeners: ["demo-rw"], configSource: "etcd", startedAt: timestampFromMs(Date.now() - 90_000) }),
          create(DataPlaneSchema, { id: "gw2-200", pid: 200, workers: 1, configVersion: 0n, configSource: "disk", startedAt: timestampFromMs(Date.now() - 5_000) }),
        ],
      };
    },
    getHealth() {
      return { status: "SERVING" };
    },
  }));
  return { client: createClient(AdminService, transport), calls, versions };
}

async function cli(args: string[], api = fakeApi()) {
  const out: string[] = [];
  const err: string[] = [];
  const code = await run(args, { stdout: (l) => out.push(l), stderr: (l) => err.push(l), createClient: () => api.client });
  return { code, out, err };
}

let dir: string;
let cwd: string;
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "mysqlgw-cli-"));
  cwd = process.cwd();
  process.chdir(dir);
  fs.mkdirSync("policy");
  fs.writeFileSync("policy/orders.yaml", "kind: Cluster\nname: orders\nbackends: [{name: db1, address: 'db1:3306'}]\n---\nkind: Listener\nname: orders-rw\nport: 6033\ncluster: orders\n");
});
afterEach(() => {
  process.chdir(cwd);
  fs.rmSync(dir, { recursive: true, force: true });
});

describe("mysqlgw apply / diff", () => {
  it("applies, prints the diff and the version, then reports no changes", async () => {
    const api = fakeApi();
    let r = await cli(["apply", "-f", "policy"], api);
    expect(r).toMatchObject({ code: 0, err: [] });
    expect(r.out).toEqual(["+ Listener orders-rw", "applied: version 1 (1 change)"]);
    r = await cli(["apply", "-f", "policy/orders.yaml"], api);
    expect(r.out).toEqual(["no changes: version 1 is current"]);
    expect(api.calls).toEqual(["apply dry=false by=true", "apply dry=false by=true"]);
  });

  it("--dry-run says what it would do and writes nothing", async () => {
    const api = fakeApi();
    const r = await cli(["apply", "-f", "policy", "--dry-run"], api);
    expect(r.out).toEqual(["+ Listener orders-rw", "dry run: would apply 1 change as version 1; nothing was written"]);
    expect(api.versions).toHaveLength(0);
  });

  it("maps server violations to file and document, exit 1", async () => {
    fs.writeFileSync("policy/orders.yaml", fs.readFileSync("policy/orders.yaml", "utf8").replace("6033", "70000"));
    const r = await cli(["apply", "-f", "policy"]);
    expect(r.code).toBe(1);
    expect(r.err).toEqual(["error: policy/orders.yaml document 2 (Listener orders-rw): field port: 70000 is out of range; use 1..65535"]);
    expect(r.out).toEqual([]);
  });

  it("reports local errors without calling the API", async () => {
    fs.writeFileSync("policy/bad.yaml", "kind: Listener\nname: x\nprot: 1\n");
    const api = fakeApi();
    const r = await cli(["diff", "-f", "policy"], api);
    expect(r.code).toBe(1);
    expect(r.err).toEqual(["error: policy/bad.yaml document 1 (Listener x): field prot: unknown field (line 3) — did you mean port? (Listener fields: name, bindAddress, port, cluster, proxyProtocol, allowCidrs, denyCidrs, maxConnections, handshakeTimeout, idleTimeout, role, replicaFallback, readYourWrites, causalReadTimeout, multiplexing)"]);
    expect(api.calls).toEqual([]);
  });

  it("diff prints changes against the base version", async () => {
    const r = await cli(["diff", "-f", "policy"]);
    expect(r.out).toEqual(["+ Listener orders-rw", "1 change against version 0"]);
  });
});

describe("mysqlgw get / status", () => {
  it("prints YAML in the shape apply takes, JSON on request", async () => {
    const api = fakeApi();
    await cli(["apply", "-f", "policy"], api);
    let r = await cli(["get", "listener"], api);
    expect(r.out.join("\n")).toBe("# mysqlgw config version 1, applied at 1970-01-01T00:00:00.000Z by " + api.versions[0]!.appliedBy + "\nkind: Listener\nname: orders-rw\nport: 6033\ncluster: orders");
    r = await cli(["get", "clusters", "orders", "-o", "json"], api);
    expect(JSON.parse(r.out.join("\n"))).toEqual([{ kind: "Cluster", name: "orders", backends: [{ name: "db1", address: "db1:3306" }] }]);
    r = await cli(["get", "clusters", "nope"], api);
    expect(r).toMatchObject({ code: 1, err: ['error: no Cluster named "nope" in version 1 — list them with mysqlgw get clusters'] });
    r = await cli(["get", "policy", "--version", "4"], api);
    expect(r.err).toEqual(["error: config version 4 does not exist; versions go from 1 to 1"]);
    r = await cli(["get", "widgets"], api);
    expect(r).toMatchObject({ code: 2, err: ['error: unknown kind "widgets" — use clusters, listeners, users, gateway, rules, quotas or policy'] });
  });

  it("status prints a table and warns about data planes behind or on disk", async () => {
    const api = fakeApi();
    await cli(["apply", "-f", "policy"], api);
    const r = await cli(["status"], api);
    expect(r.code).toBe(0);
    expect(r.out).toEqual([
      "control plane http://127.0.0.1:7070: current config version 1",
      "DATA PLANE  PID  WORKERS  VERSION  LISTENERS  SOURCE  AGE",
      "gw1-100     100  2        1/1      demo-rw    etcd    90s",
      "gw2-200     200  1        0/1      -          disk    5s",
    ]);
    expect(r.err).toHaveLength(2);
    expect(r.err[0]).toMatch(/^warning: data plane gw2-200 serves version 0, current is 1 — /);
    expect(r.err[1]).toMatch(/^warning: data plane gw2-200 serves its last good copy from disk — /);
  });
});

describe("errors and usage", () => {
  it("says the control plane cannot be reached, in one line", async () => {
    const out: string[] = [];
    const err: string[] = [];
    const code = await run(["--api", "http://127.0.0.1:1", "status"], { stdout: (l) => out.push(l), stderr: (l) => err.push(l) });
    expect(code).toBe(1);
    expect(err).toEqual(["error: cannot reach the control plane at http://127.0.0.1:1 — start it or pass --api"]);
  });

  it("exits 2 on usage errors", async () => {
    expect((await cli(["apply"])).code).toBe(2);
    expect((await cli(["frobnicate"])).err[0]).toMatch(/^error: unknown command 'frobnicate'/);
    expect((await cli(["--api", "ftp://x", "status"])).code).toBe(2);
    expect((await cli(["--help"])).code).toBe(0);
  });

  it("registers demo without loading the sandbox (help only)", async () => {
    const r = await cli(["demo", "--help"]);
    expect(r.code).toBe(0);
    expect(r.out.join("\n")).toContain("--port-base <n>");
    expect(r.out.join("\n")).toContain('"./.mysqlgw/demo"');
  });
});

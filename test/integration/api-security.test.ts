// Issue 6, point 6: the control plane's API over TLS, with bearer tokens of
// roles viewer / operator / admin (and mTLS as an option), every mutating call
// and every refusal in the audit log (mysqlgw audit, GET /v1/audit), history
// and rollback through the secured API — with the real CLI, curl, a
// @grpc/grpc-js client, a real control plane and etcd. No clear token ends up
// in etcd, the logs or an API answer.
import * as fs from "node:fs";
import * as path from "node:path";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { Etcd3 } from "etcd3";
import { createHash } from "node:crypto";
import { repoRoot, runCli, runProcess, startControlPlane, startEtcd, tempDir, type ControlPlane, type EtcdServer } from "../helpers";

let etcd: EtcdServer;
let cp: ControlPlane; // TLS + tokens
let mtls: ControlPlane; // TLS + tokens + client certificates
let dir: string;
let api: string;
let mtlsApi: string;

// distinctive tokens, so that a hit in the final grep cannot be a coincidence
const TOKEN = { viewer: "mgw_viewer-9c1e7f3a5b", operator: "mgw_operator-4d2a8e61c0", admin: "mgw_admin-7b3f0c9d24" };
const sha256 = (s: string): string => createHash("sha256").update(s).digest("hex");
const p = (f: string): string => path.join(dir, f);

function openssl(args: string[]): Promise<void> {
  return runProcess("openssl", args, { timeoutMs: 30_000 }).then((r) => {
    if (r.code !== 0) throw new Error(`openssl ${args.join(" ")}: ${r.stderr}`);
  });
}

/** A CA with a server certificate for 127.0.0.1/localhost and a client certificate (CN ops-laptop); a second CA with a client certificate (CN intruder). */
async function makeCertificates(): Promise<void> {
  for (const ca of ["ca", "other-ca"]) {
    await openssl(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", p(`${ca}-key.pem`), "-out", p(`${ca}.pem`), "-days", "2", "-subj", `/CN=mysqlgw test ${ca}`]);
  }
  fs.writeFileSync(p("server.ext"), "subjectAltName=IP:127.0.0.1,DNS:localhost\n");
  for (const [leaf, cn, ca] of [["server", "localhost", "ca"], ["client", "ops-laptop", "ca"], ["intruder", "intruder", "other-ca"]] as const) {
    await openssl(["req", "-newkey", "rsa:2048", "-nodes", "-keyout", p(`${leaf}-key.pem`), "-out", p(`${leaf}.csr`), "-subj", `/CN=${cn}`]);
    await openssl([
      "x509", "-req", "-in", p(`${leaf}.csr`), "-CA", p(`${ca}.pem`), "-CAkey", p(`${ca}-key.pem`), "-CAcreateserial",
      "-out", p(`${leaf}.pem`), "-days", "2", ...(leaf === "server" ? ["-extfile", p("server.ext")] : []),
    ]);
  }
}

const POLICY_1 = `kind: Cluster\nname: orders\nbackends: [{ name: db1, address: "127.0.0.1:3306" }]\n---\nkind: Listener\nname: orders-rw\nport: 16033\nbindAddress: 127.0.0.1\ncluster: orders\n`;
const POLICY_2 = POLICY_1.replace("port: 16033", "port: 16034");

/** The CLI against the TLS control plane with the test CA; `token` as --token. */
const cli = (args: string[], token?: string, env?: NodeJS.ProcessEnv) =>
  runCli(api, ["--ca-file", p("ca.pem"), ...(token === undefined ? [] : ["--token", token]), ...args], { env });
const curl = (args: string[]) => runProcess("curl", ["-sS", "--max-time", "10", ...args], { timeoutMs: 15_000 });

beforeAll(async () => {
  dir = tempDir("api-security");
  fs.mkdirSync(dir, { recursive: true });
  await makeCertificates();
  fs.writeFileSync(p("tokens.yaml"), [
    "tokens:",
    ...Object.entries(TOKEN).map(([role, t]) => `  - { name: ${role}-bot, role: ${role}, sha256: ${sha256(t)} }`),
    "certificates:",
    "  - { cn: ops-laptop, role: operator }",
    "",
  ].join("\n"));
  etcd = await startEtcd();
  const tlsArgs = ["--tls-cert", p("server.pem"), "--tls-key", p("server-key.pem"), "--tokens-file", p("tokens.yaml"), "--no-monitor", "--log-level", "debug"];
  [cp, mtls] = await Promise.all([
    startControlPlane({ etcd, args: tlsArgs }),
    startControlPlane({ etcd, args: [...tlsArgs, "--tls-client-ca", p("ca.pem")] }),
  ]);
  api = `https://127.0.0.1:${cp.port}`;
  mtlsApi = `https://127.0.0.1:${mtls.port}`;
  fs.writeFileSync(p("policy-1.yaml"), POLICY_1);
  fs.writeFileSync(p("policy-2.yaml"), POLICY_2);
}, 120_000);

afterAll(async () => {
  await cp?.stop();
  await mtls?.stop();
  await etcd?.stop();
  if (dir !== undefined) fs.rmSync(dir, { recursive: true, force: true });
});

test("the control plane says it serves TLS and tokens", () => {
  const rec = cp.logs.find((r) => r.msg === "control plane listening")!;
  expect(rec).toMatchObject({ tls: "on", auth: "3 tokens" });
  expect(mtls.logs.find((r) => r.msg === "control plane listening")).toMatchObject({ tls: "mtls", auth: "3 tokens, client certificates" });
});

test("curl: 401 without or with a wrong token, with what to do; health and metrics stay open", async () => {
  let r = await curl(["--cacert", p("ca.pem"), "-i", `${api}/v1/policy`]);
  expect(r.stdout).toMatch(/^HTTP\/\S+ 401/);
  expect(r.stdout).toMatch(/www-authenticate: Bearer realm="mysqlgw"/i);
  const body = JSON.parse(r.stdout.slice(r.stdout.indexOf("{")));
  expect(body).toEqual({
    code: "unauthenticated",
    message: "this API requires authentication and the request carries no token; pass a token: mysqlgw --token TOKEN (or MYSQLGW_TOKEN), or the header \"Authorization: Bearer TOKEN\"; an admin creates one with mysqlgw token create",
    details: [],
  });
  r = await curl(["--cacert", p("ca.pem"), "-H", "Authorization: Bearer mgw_not-a-token", "-w", "%{http_code}", "-o", "/dev/null", `${api}/v1/policy`]);
  expect(r.stdout).toBe("401");
  r = await curl(["--cacert", p("ca.pem"), "-H", `Authorization: Bearer ${TOKEN.viewer}`, "-w", "%{http_code}", "-o", "/dev/null", `${api}/v1/policy`]);
  expect(r.stdout).toBe("200");
  r = await curl(["--cacert", p("ca.pem"), `${api}/v1/health`]);
  expect(JSON.parse(r.stdout)).toMatchObject({ status: "SERVING" });
  r = await curl(["--cacert", p("ca.pem"), `${api}/metrics`]);
  expect(r.stdout).toMatch(/^mysqlgw_api_requests_total/m);
});

test("plain HTTP to the TLS port fails; the CLI says to use https:// or --ca-file", async () => {
  const r = await curl([`http://127.0.0.1:${cp.port}/v1/health`]);
  expect(r.code).not.toBe(0);
  const plain = await runCli(`http://127.0.0.1:${cp.port}`, ["--token", TOKEN.viewer, "status"]);
  expect(plain.code).toBe(1);
  expect(plain.stderr).toMatch(/^error: cannot reach the control plane at http:\/\/127\.0\.0\.1:\d+ \(\w+\) — if the control plane serves TLS \(--tls-cert\), use https:\/\/ in --api/);
  const noCa = await runCli(api, ["--token", TOKEN.viewer, "status"]);
  expect(noCa.code).toBe(1);
  expect(noCa.stderr).toMatch(/^error: TLS with the control plane at https:\/\/127\.0\.0\.1:\d+ failed \(\w+\) — pass the CA that signed the control plane's certificate with --ca-file/);
});

test("CLI: no token → 401 with the message; a viewer reads but cannot apply; an admin applies", async () => {
  let r = await cli(["status"]);
  expect(r.code).toBe(1);
  expect(r.stderr).toMatch(/^error: not authenticated: this API requires authentication and the request carries no token; pass a token: mysqlgw --token TOKEN \(or MYSQLGW_TOKEN\)/);

  r = await cli(["apply", "-f", p("policy-1.yaml")], TOKEN.viewer);
  expect(r.code).toBe(1);
  expect(r.stderr).toBe('error: permission denied: token "viewer-bot" has role viewer; /mysqlgw.admin.v1.AdminService/ApplyPolicy needs admin; use a token with role admin or higher (an admin creates one with mysqlgw token create --role admin)\n');
  r = await cli(["apply", "-f", p("policy-1.yaml")], TOKEN.operator);
  expect(r.code).toBe(1);
  expect(r.stderr).toMatch(/token "operator-bot" has role operator; .*ApplyPolicy needs admin/);

  r = await cli(["apply", "-f", p("policy-1.yaml")], TOKEN.admin);
  expect(r.stderr).toBe("");
  expect(r.stdout).toContain("applied: version 1 (2 changes)");
  // MYSQLGW_TOKEN instead of --token
  r = await cli(["apply", "-f", p("policy-2.yaml")], undefined, { MYSQLGW_TOKEN: TOKEN.admin });
  expect(r.stderr).toBe("");
  expect(r.stdout).toContain("~ Listener orders-rw\n    port: 16033 → 16034\napplied: version 2 (1 change)");

  for (const args of [["status"], ["get", "listeners", "-o", "json"], ["history"]]) {
    r = await cli(args, TOKEN.viewer);
    expect({ args, stderr: r.stderr, code: r.code }).toEqual({ args, stderr: "", code: 0 });
  }
  expect(JSON.parse((await cli(["get", "listeners", "-o", "json"], TOKEN.viewer)).stdout)[0]).toMatchObject({ name: "orders-rw", port: 16034 });
  // who applied: the token's name, then what the CLI said about itself
  expect((await cli(["history", "--limit", "1"], TOKEN.viewer)).stdout).toMatch(/^2 \*\s+\S+ \S+\s+admin-bot via cli:\S+\s+~Listener orders-rw/m);
});

test("history and rollback VERSION through the secured API restore an earlier config", async () => {
  let r = await cli(["rollback", "1"], TOKEN.operator);
  expect(r.code).toBe(1);
  expect(r.stderr).toMatch(/token "operator-bot" has role operator; .*RollbackPolicy needs admin/);
  r = await cli(["rollback", "1"], TOKEN.admin);
  expect(r.stderr).toBe("");
  expect(r.stdout).toContain("rolled back: version 3 restores version 1 (1 change)");
  expect(JSON.parse((await cli(["get", "listeners", "-o", "json"], TOKEN.viewer)).stdout)[0]).toMatchObject({ port: 16033 });
  expect((await cli(["history", "--limit", "1"], TOKEN.viewer)).stdout).toMatch(/^3 \*\s+\S+ \S+\s+admin-bot via cli:\S+ \(rollback to version 1\)/m);
});

test("gRPC (@grpc/grpc-js over TLS): UNAUTHENTICATED without a token, PERMISSION_DENIED below the role, OK with it", async () => {
  const def = protoLoader.loadSync("mysqlgw/admin/v1/admin_service.proto", { includeDirs: [path.join(repoRoot(), "proto")], longs: String, defaults: true });
  const { AdminService } = (grpc.loadPackageDefinition(def) as any).mysqlgw.admin.v1; // eslint-disable-line @typescript-eslint/no-explicit-any
  const client = new AdminService(`127.0.0.1:${cp.port}`, grpc.credentials.createSsl(fs.readFileSync(p("ca.pem"))));
  const call = (method: string, req: object, token?: string): Promise<{ err: grpc.ServiceError | null; res: any }> => // eslint-disable-line @typescript-eslint/no-explicit-any
    new Promise((resolve) => {
      const md = new grpc.Metadata();
      if (token !== undefined) md.set("authorization", `Bearer ${token}`);
      client[method](req, md, { deadline: Date.now() + 10_000 }, (err: grpc.ServiceError | null, res: unknown) => resolve({ err, res }));
    });
  try {
    let out = await call("getPolicy", {});
    expect(out.err?.code).toBe(grpc.status.UNAUTHENTICATED);
    expect(out.err?.details).toMatch(/request carries no token/);
    out = await call("getPolicy", {}, TOKEN.viewer);
    expect(out.err).toBeNull();
    expect(out.res.config.version).toBe("3");
    out = await call("applyPolicy", { policy: {}, dryRun: true }, TOKEN.operator);
    expect(out.err?.code).toBe(grpc.status.PERMISSION_DENIED);
    out = await call("getHealth", {});
    expect(out.err).toBeNull();
    expect(out.res.status).toBe("SERVING");
  } finally {
    client.close();
  }
});

test("ReplicationService (REST and gRPC) is authorised by method name: operator yes, viewer no; audited", async () => {
  const post = (token: string, route: string) =>
    curl(["--cacert", p("ca.pem"), "-X", "POST", "-H", `Authorization: Bearer ${token}`, "-d", '{"dryRun": true}', "-w", "\n%{http_code}", `${api}${route}`]);
  let r = await post(TOKEN.viewer, "/v1/clusters/nope/backends/db1:pause");
  expect(r.stdout).toMatch(/has role viewer; POST \/v1\/clusters\/nope\/backends\/db1:pause needs operator[\s\S]*\n403$/);
  r = await post(TOKEN.operator, "/v1/clusters/nope/backends/db1:pause");
  expect(r.stdout).toMatch(/"code": "not_found"[\s\S]*\n404$/); // reached the service
  r = await curl(["--cacert", p("ca.pem"), "-H", `Authorization: Bearer ${TOKEN.viewer}`, "-w", "\n%{http_code}", `${api}/v1/operations`]);
  expect(r.stdout).toMatch(/\n200$/);

  const def = protoLoader.loadSync("mysqlgw/admin/v1/replication_service.proto", { includeDirs: [path.join(repoRoot(), "proto")], longs: String, defaults: true });
  const { ReplicationService } = (grpc.loadPackageDefinition(def) as any).mysqlgw.admin.v1; // eslint-disable-line @typescript-eslint/no-explicit-any
  const client = new ReplicationService(`127.0.0.1:${cp.port}`, grpc.credentials.createSsl(fs.readFileSync(p("ca.pem"))));
  const detach = (token: string): Promise<grpc.ServiceError | null> =>
    new Promise((resolve) => {
      const md = new grpc.Metadata();
      md.set("authorization", `Bearer ${token}`);
      client.detachReplica({ cluster: "nope", backend: "db1", dryRun: true }, md, { deadline: Date.now() + 10_000 }, (err: grpc.ServiceError | null) => resolve(err));
    });
  try {
    expect((await detach(TOKEN.viewer))?.code).toBe(grpc.status.PERMISSION_DENIED);
    expect((await detach(TOKEN.operator))?.code).toBe(grpc.status.NOT_FOUND);
  } finally {
    client.close();
  }
  const records = JSON.parse((await cli(["audit", "--json", "--limit", "10"], TOKEN.admin)).stdout).records as Record<string, string>[];
  expect(records.find((x) => x.method === "/mysqlgw.admin.v1.ReplicationService/DetachReplica" && x.status === "NOT_FOUND")).toMatchObject({ principal: "operator-bot", role: "operator" });
  expect(records.find((x) => x.method === "/mysqlgw.admin.v1.ReplicationService/DetachReplica" && x.status === "PERMISSION_DENIED")).toMatchObject({ principal: "viewer-bot" });
  const rest = records.find((x) => x.method === "POST /v1/clusters/nope/backends/db1:pause" && x.status === "NOT_FOUND")!;
  expect(rest).toMatchObject({ principal: "operator-bot", requestJson: '{"dryRun":true}' });
});

test("mTLS: a certificate signed by --tls-client-ca is required; its CN maps to a role; a token still names the caller", async () => {
  const m = (args: string[], extra: string[] = []) => runCli(mtlsApi, ["--ca-file", p("ca.pem"), ...extra, ...args]);
  // no certificate: refused even with a valid token; health stays open
  let r = await m(["status"], ["--token", TOKEN.admin]);
  expect(r.code).toBe(1);
  expect(r.stderr).toMatch(/^error: not authenticated: this API requires a client certificate signed by its --tls-client-ca and none was sent; pass mysqlgw --cert FILE --key FILE/);
  const health = await curl(["--cacert", p("ca.pem"), `${mtlsApi}/v1/health`]);
  expect(JSON.parse(health.stdout)).toMatchObject({ status: "SERVING" });
  // a certificate from another CA
  r = await m(["status"], ["--cert", p("intruder.pem"), "--key", p("intruder-key.pem")]);
  expect(r.code).toBe(1);
  expect(r.stderr).toMatch(/client certificate signed by its --tls-client-ca \(the one sent was refused: \w+\)/);
  // CN=ops-laptop is an operator: reads, but no apply
  const mine = ["--cert", p("client.pem"), "--key", p("client-key.pem")];
  r = await m(["status"], mine);
  expect(r.stderr).toBe("");
  expect(r.code).toBe(0);
  r = await m(["apply", "-f", p("policy-2.yaml")], mine);
  expect(r.stderr).toMatch(/^error: permission denied: client certificate "CN=ops-laptop" has role operator; .*ApplyPolicy needs admin/);
  // certificate and admin token: the token decides who it is
  r = await m(["apply", "-f", p("policy-2.yaml")], [...mine, "--token", TOKEN.admin]);
  expect(r.stderr).toBe("");
  expect(r.stdout).toContain("applied: version 4 (1 change)");
  // curl with the certificate
  const c = await curl(["--cacert", p("ca.pem"), "--cert", p("client.pem"), "--key", p("client-key.pem"), `${mtlsApi}/v1/versions?limit=1`]);
  expect(JSON.parse(c.stdout).versions[0]).toMatchObject({ version: "4", appliedBy: expect.stringMatching(/^admin-bot via cli:/) });
});

test("mysqlgw audit: the applies (principal, role, changes, resulting version) and the refused attempts", async () => {
  let r = await cli(["audit"], TOKEN.viewer);
  expect(r.stderr).toMatch(/permission denied: token "viewer-bot" has role viewer; \/mysqlgw\.admin\.v1\.AuditService\/ListAuditRecords needs operator/);
  r = await cli(["audit", "--json", "--limit", "100"], TOKEN.operator);
  expect(r.stderr).toBe("");
  const records = JSON.parse(r.stdout).records as Record<string, unknown>[];
  const find = (pred: (x: Record<string, unknown>) => boolean) => records.filter(pred);
  // the admin's applies and the rollback
  const applied = find((x) => x.method === "/mysqlgw.admin.v1.AdminService/ApplyPolicy" && x.status === "OK");
  expect(applied.map((x) => x.resultingVersion).sort()).toEqual(["1", "2", "4"]);
  expect(applied.find((x) => x.resultingVersion === "2")).toMatchObject({
    principal: "admin-bot", role: "admin", peer: expect.stringMatching(/^127\.0\.0\.1:\d+$/),
    changes: ["~ Listener orders-rw: port 16033 → 16034"], error: "",
  });
  expect(applied.find((x) => x.resultingVersion === "1")!.changes).toEqual(["+ Cluster orders", "+ Listener orders-rw"]);
  expect(JSON.parse(applied[0]!.requestJson as string)).toMatchObject({ appliedBy: expect.stringMatching(/^cli:/), policy: { clusters: [{ name: "orders" }] } });
  expect(find((x) => x.method === "/mysqlgw.admin.v1.HistoryService/RollbackPolicy" && x.status === "OK")).toEqual([
    expect.objectContaining({ principal: "admin-bot", resultingVersion: "3", changes: ["~ Listener orders-rw: port 16034 → 16033"] }),
  ]);
  // the refused ones
  expect(find((x) => x.status === "PERMISSION_DENIED" && x.method === "/mysqlgw.admin.v1.AdminService/ApplyPolicy").map((x) => x.principal).sort())
    .toEqual(["CN=ops-laptop", "operator-bot", "operator-bot", "viewer-bot"]); // viewer (CLI), operator (CLI; gRPC dry run), CN=ops-laptop (CLI)
  expect(find((x) => x.status === "UNAUTHENTICATED").length).toBeGreaterThanOrEqual(4);
  expect(find((x) => x.status === "UNAUTHENTICATED" && x.method === "GET /v1/policy")[0]).toMatchObject({ principal: "", error: expect.stringMatching(/no token/) });

  // the table
  r = await cli(["audit", "--limit", "3"], TOKEN.admin);
  expect(r.stderr).toBe("");
  expect(r.stdout).toMatch(/^SEQ\s+AT\s+PRINCIPAL\s+ROLE\s+PEER\s+METHOD\s+STATUS\s+VERSION$/m);
  expect(r.stdout).toMatch(/^older records: mysqlgw audit --before \d+$/m);
  // REST, paged
  const rest = await curl(["--cacert", p("ca.pem"), "-H", `Authorization: Bearer ${TOKEN.admin}`, `${api}/v1/audit?limit=2`]);
  const page = JSON.parse(rest.stdout);
  expect(page.records).toHaveLength(2);
  expect(BigInt(page.nextBefore)).toBe(BigInt(page.records[1].sequence));
  // counted on /metrics
  const metrics = (await curl(["--cacert", p("ca.pem"), `${api}/metrics`])).stdout;
  expect(metrics).toMatch(/^mysqlgw_api_refused_total\{reason="unauthenticated"\} [1-9]/m);
  expect(metrics).toMatch(/^mysqlgw_api_refused_total\{reason="permission_denied"\} [1-9]/m);
  expect(metrics).toMatch(/^mysqlgw_audit_records_total\{result="written"\} [1-9]/m);
  expect(metrics).toMatch(/^mysqlgw_audit_records_total\{result="failed"\} 0$/m);
});

test("mysqlgw token create / hash-token print a tokens-file line with the SHA-256, never storing the token", async () => {
  const r = await runCli(api, ["token", "create", "--name", "deploy", "--role", "operator"]);
  expect(r.stderr).toBe("");
  const lines = r.stdout.trim().split("\n");
  const token = lines[1]!;
  expect(token).toMatch(/^mgw_[A-Za-z0-9_-]{43}$/);
  expect(lines[3]).toBe(`  - { name: deploy, role: operator, sha256: ${sha256(token)} }`);
  const h = await runCli(api, ["hash-token", "--name", "deploy", "--role", "operator"], { input: `${token}\n` });
  expect(h.stdout).toBe(`${lines[3]}\n`);
});

test("without authentication a non-loopback --listen is refused (exit 2) unless --insecure-no-auth", async () => {
  const main = path.join(repoRoot(), "control-plane", "dist", "main.js");
  const r = await runProcess(process.execPath, [main, "--listen", "0.0.0.0:0", "--etcd", etcd.endpoint, "--no-monitor"], { timeoutMs: 15_000 });
  expect(r.code).toBe(2);
  expect(r.stderr).toBe("error: --listen 0.0.0.0:0 is not a loopback address and the API has no authentication; pass --tokens-file (and --tls-cert/--tls-key), or --insecure-no-auth to serve it open — see mysqlgw-control-plane --help\n");
});

test("no clear token in etcd, the control planes' logs or the API's answers", async () => {
  const client = new Etcd3({ hosts: etcd.endpoint });
  let stored: string;
  try {
    stored = JSON.stringify(await client.getAll().prefix("/").strings());
  } finally {
    client.close();
  }
  expect(stored).toContain("admin-bot"); // the audit records are there
  const logs = JSON.stringify([...cp.logs, ...mtls.logs]);
  const answers = (await cli(["audit", "--json", "--limit", "1000"], TOKEN.admin)).stdout + (await cli(["get", "policy", "-o", "json"], TOKEN.admin)).stdout;
  for (const t of [...Object.values(TOKEN), "mgw_not-a-token"]) {
    expect({ token: t, inEtcd: stored.includes(t), inLogs: logs.includes(t), inAnswers: answers.includes(t) }).toEqual({ token: t, inEtcd: false, inLogs: false, inAnswers: false });
  }
});

// Issue 6 point 7 (the etcd segment): control plane and data plane talk to an
// etcd that serves its client port over TLS and requires client certificates
// (--client-cert-auth), with --etcd-ca/--etcd-cert/--etcd-key; without a
// client certificate the control plane cannot reach it.
import * as fs from "node:fs";
import * as path from "node:path";
import { Etcd3 } from "etcd3";
import { freePort, runCli, runProcess, startControlPlane, startDataPlane, startEtcd, tempDir, type ControlPlane, type DataPlane, type EtcdServer } from "../helpers";

let dir: string;
let etcd: EtcdServer;
let cp: ControlPlane;
let dp: DataPlane;
const p = (f: string): string => path.join(dir, f);

function openssl(args: string[]): Promise<void> {
  return runProcess("openssl", args, { timeoutMs: 30_000 }).then((r) => {
    if (r.code !== 0) throw new Error(`openssl ${args.join(" ")}: ${r.stderr}`);
  });
}

beforeAll(async () => {
  dir = tempDir("etcd-tls");
  fs.mkdirSync(dir, { recursive: true });
  await openssl(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", p("ca-key.pem"), "-out", p("ca.pem"), "-days", "2", "-subj", "/CN=mysqlgw etcd test ca"]);
  fs.writeFileSync(p("server.ext"), "subjectAltName=IP:127.0.0.1,DNS:localhost\n");
  for (const [leaf, cn] of [["server", "localhost"], ["client", "mysqlgw-planes"]] as const) {
    await openssl(["req", "-newkey", "rsa:2048", "-nodes", "-keyout", p(`${leaf}-key.pem`), "-out", p(`${leaf}.csr`), "-subj", `/CN=${cn}`]);
    await openssl(["x509", "-req", "-in", p(`${leaf}.csr`), "-CA", p("ca.pem"), "-CAkey", p("ca-key.pem"), "-CAcreateserial", "-out", p(`${leaf}.pem`), "-days", "2",
      "-extfile", p("server.ext")]);
  }
  etcd = await startEtcd({ tls: { cert: p("server.pem"), key: p("server-key.pem"), ca: p("ca.pem"), clientCertAuth: true, clientCert: p("client.pem"), clientKey: p("client-key.pem") } });
}, 120_000);

afterAll(async () => {
  await dp?.stop();
  await cp?.stop();
  await etcd?.stop();
  if (dir !== undefined) fs.rmSync(dir, { recursive: true, force: true });
});

const etcdTls = (): string[] => ["--etcd-ca", p("ca.pem"), "--etcd-cert", p("client.pem"), "--etcd-key", p("client-key.pem")];

test("control plane and data plane use etcd over TLS with a client certificate", async () => {
  expect(etcd.endpoint).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
  cp = await startControlPlane({ etcd, args: [...etcdTls(), "--no-monitor"] });
  const port = await freePort();
  fs.writeFileSync(p("policy.yaml"), `kind: Cluster\nname: c\nbackends: [{ name: db, address: "127.0.0.1:3306" }]\n---\nkind: Listener\nname: rw\nport: ${port}\nbindAddress: 127.0.0.1\ncluster: c\n`);
  const r = await runCli(cp.url, ["apply", "-f", p("policy.yaml")]);
  expect(r.stderr).toBe("");
  expect(r.stdout).toContain("applied: version 1");
  dp = await startDataPlane({ etcd, args: etcdTls(), waitForConfig: 1 });
  expect(dp.servedVersion).toBe(1n);
  // the audit record went to the same etcd
  const client = new Etcd3({ hosts: etcd.endpoint, credentials: { rootCertificate: fs.readFileSync(p("ca.pem")), certChain: fs.readFileSync(p("client.pem")), privateKey: fs.readFileSync(p("client-key.pem")) } });
  try {
    const audit = await client.getAll().prefix("/mysqlgw/v1/audit/").strings();
    expect(Object.values(audit).map((v) => JSON.parse(v).method)).toContain("/mysqlgw.admin.v1.AdminService/ApplyPolicy");
  } finally {
    client.close();
  }
});

test("without a client certificate etcd refuses the control plane: health says so", async () => {
  const other = await startControlPlane({ etcd, args: ["--etcd-ca", p("ca.pem"), "--no-monitor", "--etcd-timeout-ms", "1000"] });
  try {
    const res = await fetch(`${other.url}/v1/health`);
    expect(res.status).toBe(503);
    expect(await res.json()).toMatchObject({ status: "NOT_SERVING", etcdReachable: false });
  } finally {
    await other.stop();
  }
});

test("the flags are checked: --etcd-ca needs https://, --etcd-cert needs --etcd-key", async () => {
  const main = path.join(__dirname, "..", "..", "control-plane", "dist", "main.js");
  let r = await runProcess(process.execPath, [main, "--etcd", "http://127.0.0.1:1", "--etcd-ca", p("ca.pem")], { timeoutMs: 15_000 });
  expect(r.code).toBe(2);
  expect(r.stderr).toMatch(/^error: --etcd-ca needs https:\/\/ --etcd endpoints/);
  r = await runProcess(process.execPath, [main, "--etcd", etcd.endpoint, "--etcd-ca", p("ca.pem"), "--etcd-cert", p("client.pem")], { timeoutMs: 15_000 });
  expect(r.code).toBe(2);
  expect(r.stderr).toMatch(/^error: --etcd-cert and --etcd-key go together; pass both/);
});

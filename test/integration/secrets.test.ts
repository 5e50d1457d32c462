// Issue 6, point 1: no clear password or backend secret is ever stored in etcd,
// written to a log, a request log, a metric, a trace attribute or an API
// response. A full run — logins (good and bad passwords, both auth plugins'
// paths), statements through routed and pass-through listeners, a policy
// change, the monitor probing with its own secret — then every place is read
// back and searched for each secret.
import * as fs from "node:fs";
import * as path from "node:path";
import { Etcd3 } from "etcd3";
import {
  applyPolicy,
  connect,
  freePort,
  nativePasswordHash,
  runMariadbCli,
  startControlPlane,
  startDataPlane,
  startEtcd,
  startReplicatedCluster,
  tempDir,
  type ControlPlane,
  type DataPlane,
  type EtcdServer,
  type ReplicatedCluster,
} from "../helpers";

let etcd: EtcdServer;
let cluster: ReplicatedCluster;
let cp: ControlPlane;
let dp: DataPlane;
let dir: string;
const ports = { rw: 0, split: 0, metrics: 0 };
// distinctive secrets, so that a hit cannot be a coincidence
const CLIENT_PASSWORD = "client-Pw-7f3a9c2e";
const WRONG_PASSWORD = "wrong-Pw-5d81be04";
const MONITOR_SECRET_ENV = "MONITOR_PW";

beforeAll(async () => {
  dir = tempDir("secrets");
  fs.mkdirSync(dir, { recursive: true });
  [etcd, cluster] = await Promise.all([startEtcd(), startReplicatedCluster({ replicas: 1 })]);
  await cluster.primary.query("CREATE DATABASE shop; CREATE TABLE shop.t (id INT PRIMARY KEY, v VARCHAR(40)); INSERT INTO shop.t VALUES (1, 'one')");
  cp = await startControlPlane({ etcd, env: { [MONITOR_SECRET_ENV]: cluster.app.password } });
  for (const k of Object.keys(ports) as (keyof typeof ports)[]) ports[k] = await freePort();
  const { version } = await applyPolicy(cp, policy(1));
  dp = await startDataPlane({
    etcd,
    workers: 1,
    args: ["--metrics-listen", `127.0.0.1:${ports.metrics}`, "--request-log", path.join(dir, "requests.log"), "--log-level", "debug"],
    env: { APP_PW: cluster.app.password },
  });
  await dp.waitForConfig(version);
}, 180_000);

afterAll(async () => {
  await dp?.stop();
  await cp?.stop();
  await cluster?.stop();
  await etcd?.stop();
  fs.rmSync(dir, { recursive: true, force: true });
});

function policy(maxConnections: number): unknown {
  return {
    clusters: [
      {
        name: "shop",
        backends: [
          { name: "db1", address: cluster.primary.address, expectedRole: "ROLE_PRIMARY" },
          { name: "db2", address: cluster.replicas[0].address, expectedRole: "ROLE_REPLICA" },
        ],
        health: { interval: "0.3s", credentials: { user: cluster.app.user, secretRef: `env:${MONITOR_SECRET_ENV}` } },
      },
    ],
    listeners: [
      { name: "rw", bindAddress: "127.0.0.1", port: ports.rw, cluster: "shop" },
      { name: "split", bindAddress: "127.0.0.1", port: ports.split, cluster: "shop", role: "LISTENER_ROLE_SPLIT" },
    ],
    users: [{ name: "shop", passwordHash: nativePasswordHash(CLIENT_PASSWORD), backendCredentials: { user: cluster.app.user, secretRef: "env:APP_PW" }, maxConnections: 100 * maxConnections }],
  };
}

test("after a full run, no secret is in etcd, the logs, the request log, the metrics or the API's answers", async () => {
  // sessions: good logins on both listeners, statements with literals, a wrong password, a change user
  for (const port of [ports.rw, ports.split]) {
    const c = await connect({ port, user: "shop", password: CLIENT_PASSWORD, database: "shop" });
    await c.query("SELECT v FROM t WHERE id = 1");
    await c.query("UPDATE t SET v = 'two' WHERE id = 1");
    await c.changeUser({ user: "shop", password: CLIENT_PASSWORD });
    await c.end();
    await expect(connect({ port, user: "shop", password: WRONG_PASSWORD })).rejects.toMatchObject({ errno: 1045 });
  }
  const cli = await runMariadbCli({ port: ports.split, user: "shop", password: CLIENT_PASSWORD, sql: "SELECT 1 AS one" });
  expect(cli.code).toBe(0);
  // a policy change, and the monitor's probes using its own secret
  const { version } = await applyPolicy(cp, policy(2));
  await dp.waitForConfig(version);
  await new Promise((r) => setTimeout(r, 1000));

  const secrets: Record<string, string> = {
    "client password": CLIENT_PASSWORD,
    "a wrong password tried": WRONG_PASSWORD,
    "backend secret (data planes' and monitor's)": cluster.app.password,
  };
  const places: Record<string, string> = {};
  // etcd, every key and value
  const client = new Etcd3({ hosts: etcd.endpoint });
  try {
    const all = await client.getAll().prefix("").buffers();
    places.etcd = Object.entries(all).map(([k, v]) => `${k}=${v.toString("latin1")}`).join("\n");
    expect(Object.keys(all).length).toBeGreaterThan(3);
  } finally {
    client.close();
  }
  places["data plane log"] = dp.logs.map((r) => JSON.stringify(r)).join("\n");
  // the data plane's disk copy of its last good config (read when etcd is unreachable at start)
  const stateFiles = fs.readdirSync(dp.stateDir, { recursive: true, withFileTypes: true }).filter((e) => e.isFile());
  expect(stateFiles.length).toBeGreaterThan(0);
  places["data plane state dir"] = stateFiles.map((e) => fs.readFileSync(path.join(e.parentPath ?? e.path, e.name), "latin1")).join("\n");
  expect(places["data plane state dir"]).toContain("env:APP_PW");
  places["control plane log"] = cp.logs.map((r) => JSON.stringify(r)).join("\n");
  places["request log"] = fs.readFileSync(path.join(dir, "requests.log"), "utf8");
  expect(places["request log"]).toContain('"user":"shop"');
  const get = async (url: string): Promise<string> => (await fetch(url)).text();
  places["data plane metrics"] = await get(`http://127.0.0.1:${ports.metrics}/metrics`);
  places["control plane metrics"] = await get(`${cp.url}/metrics`);
  for (const p of ["/v1/policy", "/v1/versions", "/v1/backends", "/v1/dataplanes", "/v1/health", "/v1/digests", "/v1/failovers"]) places[`API ${p}`] = await get(`${cp.url}${p}`);
  expect(places["API /v1/policy"]).toContain("env:APP_PW"); // the reference is there; the secret is not

  const leaks: string[] = [];
  for (const [where, text] of Object.entries(places)) {
    for (const [what, secret] of Object.entries(secrets)) if (text.includes(secret)) leaks.push(`${what} found in ${where}`);
  }
  expect(leaks).toEqual([]);
}, 90_000);

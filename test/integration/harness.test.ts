// Smoke test of the test harness itself: real etcd and a real MariaDB primary +
// replica with GTID replication, started on free loopback ports and stopped.
import * as fs from "node:fs";
import { Etcd3 } from "etcd3";
import {
  connectTo,
  freePort,
  isPortFree,
  runMariadbCli,
  startControlPlane,
  startDemo,
  startEtcd,
  startReplicatedCluster,
  stopAll,
  waitFor,
  waitForReplica,
  type EtcdServer,
  type ReplicatedCluster,
} from "../helpers";

let etcd: EtcdServer;
let cluster: ReplicatedCluster;
const timings: Record<string, number> = {};

beforeAll(async () => {
  let t = Date.now();
  etcd = await startEtcd();
  timings.etcdMs = Date.now() - t;
  t = Date.now();
  cluster = await startReplicatedCluster({ replicas: 1 });
  timings.clusterMs = Date.now() - t;
}, 90_000);

afterAll(() => {
  // Visible with --verbose; the figures the sandbox README quotes.
  process.stdout.write(`harness start times: etcd ${timings.etcdMs} ms, primary+replica ${timings.clusterMs} ms\n`);
});

test("etcd answers on its loopback endpoint, and keeps its data across stop/restart", async () => {
  expect(etcd.endpoint).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
  expect(etcd.state).toBe("running");
  const client = new Etcd3({ hosts: etcd.endpoint });
  try {
    await client.put("/harness/k").value("v1");
    expect(await client.get("/harness/k").string()).toBe("v1");
  } finally {
    client.close();
  }

  await etcd.stop();
  expect(etcd.state).toBe("stopped");
  expect(etcd.pid).toBeNull();
  await etcd.restart();
  expect(etcd.state).toBe("running");

  const again = new Etcd3({ hosts: etcd.endpoint });
  try {
    expect(await again.get("/harness/k").string()).toBe("v1");
  } finally {
    again.close();
  }
});

test("both servers run with GTID binlogs in strict mode, distinct server ids, on loopback", async () => {
  const { primary, replicas } = cluster;
  expect(replicas).toHaveLength(1);
  expect(primary.host).toBe("127.0.0.1");
  expect(primary.port).not.toBe(replicas[0].port);
  for (const [server, id] of [[primary, "1"], [replicas[0], "2"]] as const) {
    const [v] = await server.query(
      "SELECT @@gtid_strict_mode AS strict, @@server_id AS id, @@log_bin AS log_bin, @@binlog_format AS fmt, @@log_slave_updates AS lsu, @@bind_address AS bind",
    );
    expect(v).toEqual({ strict: "1", id, log_bin: "1", fmt: "ROW", lsu: "1", bind: "127.0.0.1" });
  }
});

test("the replica replicates from the primary with GTID and is read-only", async () => {
  const { primary, replicas } = cluster;
  const replica = replicas[0];
  const [status] = await replica.query("SHOW SLAVE STATUS");
  expect(status.Slave_IO_Running).toBe("Yes");
  expect(status.Slave_SQL_Running).toBe("Yes");
  expect(status.Using_Gtid).toBe("Slave_Pos");
  expect(Number(status.Master_Port)).toBe(primary.port);
  expect(status.Master_Host).toBe("127.0.0.1");

  const [ro] = await replica.query("SELECT @@read_only AS ro");
  expect(ro.ro).toBe("1");
  const [rw] = await primary.query("SELECT @@read_only AS ro");
  expect(rw.ro).toBe("0");

  // A plain account (no READ ONLY ADMIN) cannot write on the replica.
  await replica.query("SET SESSION sql_log_bin = 0; CREATE USER 'probe'@'%' IDENTIFIED BY 'probe-pw'; GRANT INSERT, CREATE ON *.* TO 'probe'@'%'");
  const probe = await connectTo(replica, { user: "probe", password: "probe-pw" });
  try {
    await expect(probe.query("CREATE DATABASE nope")).rejects.toMatchObject({ errno: 1290, sqlState: "HY000" });
  } finally {
    await probe.end();
  }
});

test("a write on the primary through the app account is seen on the replica", async () => {
  const { primary, replicas, app } = cluster;
  const conn = await connectTo(primary, app);
  try {
    await conn.query("CREATE DATABASE harness");
    await conn.query("CREATE TABLE harness.t (id INT PRIMARY KEY, v VARCHAR(20) NOT NULL)");
    await conn.query("INSERT INTO harness.t VALUES (1, 'one'), (2, 'two'), (3, 'three')");
  } finally {
    await conn.end();
  }
  await waitForReplica(replicas[0], primary);
  const rows = await replicas[0].query("SELECT id, v FROM harness.t ORDER BY id");
  expect(rows).toEqual([
    { id: 1, v: "one" },
    { id: 2, v: "two" },
    { id: 3, v: "three" },
  ]);
  const [p] = await primary.query<{ pos: string }>("SELECT @@gtid_binlog_pos AS pos");
  const [r] = await replicas[0].query<{ pos: string }>("SELECT @@gtid_slave_pos AS pos");
  expect(p.pos).toMatch(/^0-1-\d+$/);
  expect(r.pos).toBe(p.pos);

  // the app account over TCP on the replica also sees it
  const onReplica = await connectTo(replicas[0], app, "harness");
  try {
    const [cnt] = await onReplica.query("SELECT COUNT(*) AS n FROM t");
    expect(cnt).toEqual([{ n: "3" }]);
  } finally {
    await onReplica.end();
  }
});

test("the real mariadb client connects to the primary, and a bad password gets 1045/28000", async () => {
  const { primary, app } = cluster;
  const ok = await runMariadbCli({ port: primary.port, user: app.user, password: app.password, sql: "SELECT 40 + 2 AS answer" });
  expect(ok).toEqual({ code: 0, stdout: "answer\n42\n", stderr: "" });

  const bad = await runMariadbCli({ port: primary.port, user: app.user, password: "wrong", sql: "SELECT 1" });
  expect(bad.code).toBe(1);
  expect(bad.stderr).toMatch(/^ERROR 1045 \(28000\)/);
});

test("startControlPlane runs the built control plane on a free port and stops it cleanly", async () => {
  const cp = await startControlPlane({ etcd });
  expect(cp.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
  expect(cp.url).toBe(`http://${cp.address}`);
  expect(cp.running).toBe(true);
  const res = await fetch(`${cp.url}/v1/policy`);
  expect(res.status).toBe(200);
  expect(cp.logs.some((r) => r.msg === "control plane listening")).toBe(true);
  expect(await cp.stop("SIGTERM")).toBe(0);
  expect(cp.running).toBe(false);
  expect(cp.exitCode).toBe(0);
});

test("a process that exits before its awaited log line fails fast with its output", async () => {
  const t0 = Date.now();
  await expect(startControlPlane({ etcd, args: ["--no-such-flag"] })).rejects.toMatchObject({
    code: "MGW_ERR_SANDBOX_EXITED",
    message: expect.stringContaining("no-such-flag"),
  });
  expect(Date.now() - t0).toBeLessThan(10_000);
});

test("waitFor retries until a value, and times out with the last error", async () => {
  let n = 0;
  await expect(waitFor(() => (++n >= 3 ? n : undefined), { intervalMs: 5 })).resolves.toBe(3);
  await expect(
    waitFor(
      () => {
        throw new Error("still down");
      },
      { timeoutMs: 100, intervalMs: 10, what: "a thing" },
    ),
  ).rejects.toMatchObject({ code: "MGW_ERR_SANDBOX_TIMEOUT", message: expect.stringContaining("still down") });
});

test("startDemo (what `mysqlgw demo` runs) serves the example policy through the gateway, then stops", async () => {
  // A block of four free ports: the API on portBase, demo-rw on portBase+1, demo-ro on portBase+2, demo-split on portBase+3.
  let portBase = 0;
  for (let i = 0; i < 20 && portBase === 0; i++) {
    const p = await freePort();
    if (p < 65000 && (await isPortFree(p + 1)) && (await isPortFree(p + 2)) && (await isPortFree(p + 3))) portBase = p;
  }
  expect(portBase).toBeGreaterThan(0);
  const lines: string[] = [];
  const demo = await startDemo({ portBase, out: (t) => void lines.push(t) });
  try {
    const text = lines.join("");
    expect(text).toContain("starting MariaDB primary + replica with GTID replication… ok");
    expect(demo.connectCommand).toBe(`mariadb -h127.0.0.1 -P${portBase + 1} -uapp -papp-password`);
    expect(text).toContain(`    ${demo.connectCommand}\n`);
    expect(demo.apiUrl).toBe(`http://127.0.0.1:${portBase}`);
    expect(demo.dataPlane.servedVersion).toBe(1n);

    const viaGateway = await runMariadbCli({
      port: portBase + 1,
      user: "app",
      password: "app-password",
      sql: "CREATE DATABASE demo_check; CREATE TABLE demo_check.t (id INT PRIMARY KEY); INSERT INTO demo_check.t VALUES (7); SELECT id FROM demo_check.t",
    });
    expect(viaGateway).toEqual({ code: 0, stdout: "id\n7\n", stderr: "" });
    // it went to the sandbox primary, and replicated
    await waitForReplica(demo.cluster.replicas[0], demo.cluster.primary);
    expect(await demo.cluster.replicas[0].query("SELECT id FROM demo_check.t")).toEqual([{ id: 7 }]);
    // demo-ro reaches the replica (server id 2), where the row has replicated.
    const viaReadOnly = await runMariadbCli({ port: portBase + 2, user: "app", password: "app-password", sql: "SELECT id, @@server_id AS sid FROM demo_check.t" });
    expect(viaReadOnly).toEqual({ code: 0, stdout: "id\tsid\n7\t2\n", stderr: "" });
    // demo-split: the insert goes to the primary, the read after it (read-your-writes) sees it, a plain read goes to the replica
    const viaSplit = await runMariadbCli({
      port: portBase + 3,
      user: "app",
      password: "app-password",
      sql: "INSERT INTO demo_check.t VALUES (8); SELECT COUNT(*) AS n FROM demo_check.t",
    });
    expect(viaSplit).toEqual({ code: 0, stdout: "n\n2\n", stderr: "" });
    const splitRead = await runMariadbCli({ port: portBase + 3, user: "app", password: "app-password", sql: "SELECT @@server_id AS sid" });
    expect(splitRead).toEqual({ code: 0, stdout: "sid\n2\n", stderr: "" });
  } finally {
    await demo.stop();
  }
  expect(demo.dataPlane.running).toBe(false);
  expect(demo.controlPlane.running).toBe(false);
  expect(demo.etcd.state).not.toBe("running");
  expect(fs.existsSync(demo.dir)).toBe(false);
});

test("stopAll stops every process and removes the temp dirs", async () => {
  const pids = [etcd.pid, cluster.primary.pid, cluster.replicas[0].pid];
  expect(pids.every((p) => typeof p === "number")).toBe(true);
  const dirs = [etcd.dir, cluster.primary.dir, cluster.replicas[0].dir];
  await stopAll();
  for (const pid of pids as number[]) {
    expect(() => process.kill(pid, 0)).toThrow(expect.objectContaining({ code: "ESRCH" }));
  }
  for (const d of dirs) expect(fs.existsSync(d)).toBe(false);
  expect(cluster.primary.state).not.toBe("running");
  expect(etcd.state).not.toBe("running");
});

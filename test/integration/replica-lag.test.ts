// Issue 4, point 3 (last sentence): replicas lagging more than the cluster's
// health.maxReplicationLag are skipped for reads. A real replica made to lag
// with MASTER_DELAY, the real monitor measuring it, a SPLIT listener routing.
import type * as mysql from "mysql2/promise";
import {
  applyPolicy,
  connect,
  freePort,
  nativePasswordHash,
  startControlPlane,
  startDataPlane,
  startEtcd,
  startReplicatedCluster,
  waitFor,
  type ControlPlane,
  type DataPlane,
  type EtcdServer,
  type ReplicatedCluster,
} from "../helpers";

let etcd: EtcdServer;
let cluster: ReplicatedCluster;
let cp: ControlPlane;
let dp: DataPlane;
let port = 0;
const PASSWORD = "lag-pw-4";

beforeAll(async () => {
  [etcd, cluster] = await Promise.all([startEtcd(), startReplicatedCluster({ replicas: 2 })]);
  await cluster.primary.query("CREATE DATABASE lagdb; CREATE TABLE lagdb.t (id INT AUTO_INCREMENT PRIMARY KEY, at TIMESTAMP(3) DEFAULT CURRENT_TIMESTAMP(3))");
  await cluster.waitForReplicas();
  cp = await startControlPlane({ etcd, env: { MONITOR_PW: cluster.app.password } });
  port = await freePort();
  const { version } = await applyPolicy(cp, {
    clusters: [
      {
        name: "lagc",
        backends: [
          { name: "db1", address: cluster.primary.address, expectedRole: "ROLE_PRIMARY" },
          { name: "db2", address: cluster.replicas[0].address, expectedRole: "ROLE_REPLICA" },
          { name: "db3", address: cluster.replicas[1].address, expectedRole: "ROLE_REPLICA" },
        ],
        health: { interval: "0.2s", timeout: "0.5s", failureThreshold: 2, maxReplicationLag: "1s", credentials: { user: cluster.app.user, secretRef: "env:MONITOR_PW" } },
      },
    ],
    listeners: [{ name: "lag-split", bindAddress: "127.0.0.1", port, cluster: "lagc", role: "LISTENER_ROLE_SPLIT" }],
    users: [{ name: "lagapp", passwordHash: nativePasswordHash(PASSWORD), backendCredentials: { user: cluster.app.user, secretRef: "env:APP_PW" } }],
  });
  dp = await startDataPlane({ etcd, workers: 1, env: { APP_PW: cluster.app.password } });
  await dp.waitForConfig(version);
}, 180_000);

afterAll(async () => {
  await dp?.stop();
  await cp?.stop();
  await cluster?.stop();
  await etcd?.stop();
});

async function readers(c: mysql.Connection, n: number): Promise<Set<number>> {
  const seen = new Set<number>();
  for (let i = 0; i < n; i++) {
    const [r] = await c.query<mysql.RowDataPacket[]>("SELECT @@server_id AS id");
    seen.add(Number(r[0].id));
  }
  return seen;
}

test("a replica lagging past maxReplicationLag gets no reads until it catches up", async () => {
  const c = await connect({ port, user: "lagapp", password: PASSWORD, database: "lagdb" });
  try {
    await waitFor(async () => (await readers(c, 8)).size === 2, { timeoutMs: 10_000, intervalMs: 100, what: "reads on both replicas" });
    // db3 applies events 3 s late; writes keep coming, so its Seconds_Behind_Master grows past 1 s
    const lagging = cluster.replicas[1];
    await lagging.query("STOP SLAVE; CHANGE MASTER TO MASTER_DELAY = 3; START SLAVE");
    const writer = setInterval(() => void cluster.primary.query("INSERT INTO lagdb.t () VALUES ()").catch(() => undefined), 100);
    try {
      const t0 = Date.now();
      await waitFor(async () => !(await readers(c, 8)).has(3), { timeoutMs: 15_000, intervalMs: 100, what: "reads avoid the lagging replica" });
      process.stdout.write(`lag: reads left the lagging replica ${Date.now() - t0} ms after MASTER_DELAY=3\n`);
      const [st] = await lagging.query<{ Seconds_Behind_Master: number | null }>("SHOW SLAVE STATUS");
      expect(st.Seconds_Behind_Master === null || Number(st.Seconds_Behind_Master) > 1).toBe(true);
      expect(await readers(c, 20)).toEqual(new Set([2]));
    } finally {
      clearInterval(writer);
    }
    // caught up again: it takes reads again
    await lagging.query("STOP SLAVE; CHANGE MASTER TO MASTER_DELAY = 0; START SLAVE");
    await waitFor(async () => (await readers(c, 8)).has(3), { timeoutMs: 15_000, intervalMs: 200, what: "reads back on the caught-up replica" });
  } finally {
    await c.end();
  }
}, 60_000);

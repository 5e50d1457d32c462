// Issue 5, points 1 and 2: the control plane's health monitor — one leader
// elected in etcd among two control planes, probing a real primary and replica,
// role discovery, DOWN/UP, and leader takeover after SIGKILL.
import { Etcd3 } from "etcd3";
import {
  applyPolicy,
  startControlPlane,
  startEtcd,
  startReplicatedCluster,
  waitFor,
  type ControlPlane,
  type EtcdServer,
  type ReplicatedCluster,
} from "../helpers";

const MONITOR_USER = "mgw_monitor";
const MONITOR_PASSWORD = "monitor-secret-5";
const INTERVAL_MS = 300;
const THRESHOLD = 2;
/** interval × threshold + probe timeout + one etcd write + scheduling slack on a 2-core box. */
const DOWN_BOUND_MS = INTERVAL_MS * THRESHOLD + 500 + 1500;

interface HealthJson {
  cluster: string;
  backend: string;
  address: string;
  state?: string;
  role?: string;
  readOnly?: boolean;
  serverId?: number;
  gtidBinlogPos?: string;
  gtidCurrentPos?: string;
  gtidSlavePos?: string;
  replicaIoRunning?: boolean;
  replicaSqlRunning?: boolean;
  replicationLag?: string;
  sourceAddress?: string;
  consecutiveFailures?: number;
  lastError?: string;
  checkedAt: string;
  monitorId: string;
  roleDisagreement?: string;
}

let etcd: EtcdServer;
let cluster: ReplicatedCluster;
const cps: ControlPlane[] = [];

async function backends(cp: ControlPlane): Promise<{ backends: HealthJson[]; monitorLeader: string }> {
  const res = await fetch(`${cp.url}/v1/backends?cluster=orders`);
  const text = await res.text();
  if (res.status !== 200) throw new Error(`GET /v1/backends answered ${res.status}: ${text}`);
  const body = JSON.parse(text) as { backends?: HealthJson[]; monitorLeader?: string };
  return { backends: body.backends ?? [], monitorLeader: body.monitorLeader ?? "" };
}

function byName(list: HealthJson[], name: string): HealthJson | undefined {
  return list.find((b) => b.backend === name);
}

async function waitForBackend(cp: ControlPlane, name: string, pred: (h: HealthJson) => boolean, timeoutMs: number, what: string): Promise<HealthJson> {
  let last: HealthJson | undefined;
  await waitFor(
    async () => {
      last = byName((await backends(cp)).backends, name);
      return last !== undefined && pred(last);
    },
    { timeoutMs, intervalMs: 100, what: `${what} (last: ${JSON.stringify(last)})` },
  );
  return last!;
}

/** cps[i] runs with --id cp-<i> (MYSQLGW_CONTROL_PLANE_ID). */
function leaderOf(id: string): ControlPlane {
  const cp = cps.find((c, i) => c.running && `cp-${i}` === id);
  if (cp === undefined) throw new Error(`no running control plane has id ${id}`);
  return cp;
}

beforeAll(async () => {
  [etcd, cluster] = await Promise.all([
    startEtcd(),
    startReplicatedCluster({
      replicas: 1,
      accounts: [{ user: MONITOR_USER, password: MONITOR_PASSWORD, grants: "REPLICATION CLIENT, SLAVE MONITOR" }],
    }),
  ]);
  await cluster.primary.query("CREATE DATABASE shop; CREATE TABLE shop.t (id INT PRIMARY KEY); INSERT INTO shop.t VALUES (1)");
  await cluster.waitForReplicas();
  for (let i = 0; i < 2; i++) {
    // The monitor credential comes from the control plane's environment (secretRef env:MONITOR_PW).
    const cp = await startControlPlane({ etcd, env: { MONITOR_PW: MONITOR_PASSWORD, MYSQLGW_CONTROL_PLANE_ID: `cp-${i}` } });
    cps.push(cp);
  }
  await applyPolicy(cps[0], policy());
}, 120_000);

/** The policy; `db2Expected` sets db2's expectedRole. */
function policy(db2Expected?: string): unknown {
  return {
    clusters: [
      {
        name: "orders",
        backends: [
          { name: "db1", address: cluster.primary.address, expectedRole: "ROLE_PRIMARY" },
          { name: "db2", address: cluster.replicas[0].address, ...(db2Expected !== undefined ? { expectedRole: db2Expected } : {}) },
        ],
        health: {
          interval: `${INTERVAL_MS / 1000}s`,
          timeout: "0.5s",
          failureThreshold: THRESHOLD,
          credentials: { user: MONITOR_USER, secretRef: "env:MONITOR_PW" },
        },
      },
    ],
  };
}

afterAll(async () => {
  await Promise.allSettled(cps.map((c) => c.stop()));
});

test("GET /v1/backends: db1 PRIMARY/UP, db2 REPLICA/UP with server ids, GTID positions and source; one leader", async () => {
  const db1 = await waitForBackend(cps[0], "db1", (h) => h.state === "STATE_UP", 10_000, "db1 up");
  const db2 = await waitForBackend(cps[0], "db2", (h) => h.state === "STATE_UP" && h.gtidSlavePos !== undefined && h.gtidSlavePos !== "", 10_000, "db2 up");
  const [{ pos }] = await cluster.primary.query<{ pos: string }>("SELECT @@gtid_binlog_pos AS pos");
  expect(pos).toMatch(/^0-1-\d+$/);
  expect(db1).toMatchObject({
    cluster: "orders",
    address: cluster.primary.address,
    state: "STATE_UP",
    role: "ROLE_PRIMARY",
    serverId: 1,
    gtidBinlogPos: pos,
    gtidCurrentPos: pos,
  });
  expect(db1.readOnly ?? false).toBe(false);
  expect(db1.sourceAddress ?? "").toBe("");
  expect(db2).toMatchObject({
    address: cluster.replicas[0].address,
    state: "STATE_UP",
    role: "ROLE_REPLICA",
    readOnly: true,
    serverId: 2,
    gtidSlavePos: pos,
    gtidCurrentPos: pos,
    replicaIoRunning: true,
    replicaSqlRunning: true,
    replicationLag: "0s",
    sourceAddress: cluster.primary.address,
  });
  // Both control planes answer with the same leader, which wrote the keys.
  const [a, b] = await Promise.all(cps.map((c) => backends(c)));
  expect(a.monitorLeader).not.toBe("");
  expect(b.monitorLeader).toBe(a.monitorLeader);
  expect(["cp-0", "cp-1"]).toContain(a.monitorLeader);
  expect(db1.monitorId).toBe(a.monitorLeader);
  // Exactly one campaign key holds the election.
  const client = new Etcd3({ hosts: etcd.endpoint });
  try {
    const keys = await client.getAll().prefix("/mysqlgw/v1/election/monitor/").keys();
    expect(keys.length).toBe(2); // both campaign; the oldest key leads
    const leaderValues = await client.getAll().prefix("/mysqlgw/v1/election/monitor/").sort("Create", "Ascend").strings();
    expect(Object.values(leaderValues)[0]).toBe(a.monitorLeader);
  } finally {
    client.close();
  }
  // Only the leader probes: only it logs state changes.
  const changers = cps.filter((c) => c.logs.some((r) => r.msg === "monitor: backend state changed"));
  expect(changers.map((c) => c.logs.find((r) => r.msg === "monitor: elected leader; probing backends")?.monitorId)).toEqual([a.monitorLeader]);
});

test("--no-monitor: a control plane stays out of the election and still reports the leader", async () => {
  const passive = await startControlPlane({ etcd, args: ["--no-monitor", "--id", "cp-passive"] });
  try {
    await passive.waitForLog((r) => r.msg === "monitor disabled (--no-monitor)", 5000);
    expect(passive.logs.some((r) => r.msg === "monitor campaigning")).toBe(false);
    const [a, p] = await Promise.all([backends(cps[0]), backends(passive)]);
    expect(p.monitorLeader).toBe(a.monitorLeader);
    expect(p.backends.map((h) => h.backend)).toEqual(["db1", "db2"]);
    const client = new Etcd3({ hosts: etcd.endpoint });
    try {
      const values = await client.getAll().prefix("/mysqlgw/v1/election/monitor/").strings();
      expect(Object.values(values).sort()).toEqual(["cp-0", "cp-1"]);
    } finally {
      client.close();
    }
  } finally {
    await passive.stop();
  }
});

test("a role written in policy is an expectation: a disagreement is reported, the discovered role kept", async () => {
  await applyPolicy(cps[0], policy("ROLE_PRIMARY"));
  const db2 = await waitForBackend(cps[0], "db2", (h) => (h.roleDisagreement ?? "") !== "", 10_000, "db2 disagreement reported");
  expect(db2.role).toBe("ROLE_REPLICA");
  expect(db2.roleDisagreement).toBe(`policy expects PRIMARY, the server is REPLICA: it replicates from ${cluster.primary.address} and is read_only; fix the server or the policy's expectedRole`);
  expect(byName((await backends(cps[0])).backends, "db1")?.roleDisagreement ?? "").toBe("");
  await applyPolicy(cps[0], policy("ROLE_REPLICA"));
  await waitForBackend(cps[0], "db2", (h) => (h.roleDisagreement ?? "") === "" && h.state === "STATE_UP", 10_000, "db2 agreement");
});

test("a backend leaving the policy loses its key; a cluster without health.credentials is skipped with one warning", async () => {
  const leader = leaderOf((await backends(cps[0])).monitorLeader);
  const mark = leader.mark();
  const full = policy("ROLE_REPLICA") as { clusters: { backends: unknown[] }[] };
  const reduced = {
    clusters: [
      { ...full.clusters[0], backends: full.clusters[0].backends.slice(0, 1) },
      { name: "billing", backends: [{ name: "b1", address: "127.0.0.1:1" }] },
    ],
  };
  await applyPolicy(cps[0], reduced);
  await waitFor(async () => byName((await backends(cps[0])).backends, "db2") === undefined, { timeoutMs: 5000, intervalMs: 100, what: "db2 key deleted" });
  const all = await fetch(`${cps[0].url}/v1/backends`).then((r) => r.json() as Promise<{ backends: HealthJson[] }>);
  expect(all.backends.map((b) => `${b.cluster}/${b.backend}`)).toEqual(["orders/db1"]);
  await leader.waitForLog((r) => r.cluster === "billing" && typeof r.msg === "string" && r.msg.includes("has no health.credentials"), 5000, mark);
  // Once per cluster, not per config change or probe.
  await applyPolicy(cps[0], { ...reduced, clusters: [...reduced.clusters, { name: "audit", backends: [{ name: "a1", address: "127.0.0.1:2" }] }] });
  await leader.waitForLog((r) => r.cluster === "audit" && typeof r.msg === "string" && r.msg.includes("has no health.credentials"), 5000, mark);
  expect(leader.logs.slice(mark).filter((r) => r.cluster === "billing" && typeof r.msg === "string" && r.msg.includes("has no health.credentials"))).toHaveLength(1);
  await applyPolicy(cps[0], policy("ROLE_REPLICA"));
  await waitForBackend(cps[0], "db2", (h) => h.state === "STATE_UP", 10_000, "db2 back");
});

test("the replica's server stopped → db2 DOWN within interval × threshold + slack; restarted → UP again", async () => {
  const replica = cluster.replicas[0];
  const t0 = Date.now();
  await replica.stop();
  const stoppedAt = Date.now();
  const down = await waitForBackend(cps[0], "db2", (h) => h.state === "STATE_DOWN", DOWN_BOUND_MS + (stoppedAt - t0), "db2 down");
  const downMs = Date.now() - stoppedAt;
  process.stderr.write(`monitor test: db2 DOWN ${downMs} ms after its server stopped (bound ${DOWN_BOUND_MS} ms)\n`);
  expect(down.consecutiveFailures).toBeGreaterThanOrEqual(THRESHOLD);
  expect(down.lastError).toMatch(/refused|no answer/);
  expect(down.role).toBe("ROLE_REPLICA"); // the last known role is kept
  const db1 = byName((await backends(cps[0])).backends, "db1");
  expect(db1?.state).toBe("STATE_UP");

  await replica.restart();
  const restartedAt = Date.now();
  const up = await waitForBackend(cps[0], "db2", (h) => h.state === "STATE_UP", 10_000, "db2 up again");
  process.stderr.write(`monitor test: db2 UP ${Date.now() - restartedAt} ms after its server restarted\n`);
  expect(up).toMatchObject({ role: "ROLE_REPLICA", serverId: 2 });
  expect(up.consecutiveFailures ?? 0).toBe(0);
  expect(up.lastError ?? "").toBe("");
});

test("a frozen leader (SIGSTOP) is replaced; when it wakes (SIGCONT) it stops probing and never overwrites the new leader's keys", async () => {
  const before = await backends(cps[0]);
  const frozen = leaderOf(before.monitorLeader);
  const other = cps.find((c) => c !== frozen)!;
  const otherId = `cp-${cps.indexOf(other)}`;
  const mark = frozen.mark();
  frozen.signal("SIGSTOP");
  try {
    await waitFor(async () => (await backends(other)).monitorLeader === otherId, { timeoutMs: 10_000, intervalMs: 100, what: `${otherId} leading while ${before.monitorLeader} is frozen` });
    await waitForBackend(other, "db1", (h) => h.monitorId === otherId, 8000, "db1 written by the new leader");
  } finally {
    frozen.signal("SIGCONT");
  }
  await frozen.waitForLog((r) => typeof r.msg === "string" && r.msg.includes("stopped probing"), 5000, mark);
  // For three seconds after waking, every key stays the new leader's.
  const until = Date.now() + 3000;
  for (let i = 0; i < 100 && Date.now() < until; i++) {
    const now = await backends(other);
    expect(now.backends.map((h) => h.monitorId)).toEqual([otherId, otherId]);
    expect(now.monitorLeader).toBe(otherId);
    await new Promise((r) => setTimeout(r, 200));
  }
  // It campaigns again and answers with the new leader.
  expect((await backends(frozen)).monitorLeader).toBe(otherId);
});

test("SIGKILL of the leading control plane → the other leads within a few seconds and keeps the keys fresh", async () => {
  const before = await backends(cps[0]);
  const leader = leaderOf(before.monitorLeader);
  const other = cps.find((c) => c !== leader)!;
  const otherId = other === cps[0] ? "cp-0" : "cp-1";
  const killedAt = Date.now();
  await leader.stop("SIGKILL");
  await waitFor(async () => (await backends(other)).monitorLeader === otherId, { timeoutMs: 8000, intervalMs: 100, what: `${otherId} leading` });
  const takeoverMs = Date.now() - killedAt;
  process.stderr.write(`monitor test: ${otherId} leads ${takeoverMs} ms after SIGKILL of the leader\n`);
  expect(takeoverMs).toBeLessThan(6000);
  // The new leader rewrites every key (its own monitor id) and keeps checked_at advancing.
  const first = await waitForBackend(other, "db1", (h) => h.monitorId === otherId, 8000, "db1 written by the new leader");
  await waitForBackend(other, "db2", (h) => h.monitorId === otherId && h.state === "STATE_UP", 8000, "db2 written by the new leader");
  const later = await waitForBackend(other, "db1", (h) => Date.parse(h.checkedAt) > Date.parse(first.checkedAt), 8000, "db1 refreshed");
  expect(later.state).toBe("STATE_UP");
  expect(later.role).toBe("ROLE_PRIMARY");
  // The killed leader's lease expired: its keys are gone or overwritten, never stale with its id.
  const after = await backends(other);
  expect(after.backends.map((b) => b.monitorId)).toEqual([otherId, otherId]);
});

test("etcd stopped → the leader stops probing; etcd back → it leads and writes again", async () => {
  const survivor = cps.find((c) => c.running)!;
  const id = `cp-${cps.indexOf(survivor)}`;
  expect((await backends(survivor)).monitorLeader).toBe(id);
  const mark = survivor.mark();
  await etcd.stop();
  const stoppedAt = Date.now();
  await survivor.waitForLog((r) => typeof r.msg === "string" && r.msg.includes("stopped probing"), 8000, mark);
  process.stderr.write(`monitor test: probing stopped ${Date.now() - stoppedAt} ms after etcd stopped\n`);
  const quiet = survivor.mark();
  await etcd.restart();
  const restartedAt = Date.now();
  await survivor.waitForLog((r) => r.msg === "monitor: elected leader; probing backends", 20_000, quiet);
  process.stderr.write(`monitor test: leading again ${Date.now() - restartedAt} ms after etcd restarted\n`);
  const first = await waitForBackend(survivor, "db1", (h) => h.monitorId === id && Date.parse(h.checkedAt) > restartedAt, 10_000, "db1 written after etcd restart");
  expect(first).toMatchObject({ state: "STATE_UP", role: "ROLE_PRIMARY" });
  expect((await backends(survivor)).monitorLeader).toBe(id);
});

// Issue 6, point 5: fleet-wide quotas. Three real data planes (one worker
// each, on 127.0.0.1/2/3 with one policy: --bind-address), one etcd, a control
// plane and a MariaDB primary; real mysql2 clients.
//
// (a) a 300 qps QUEUE quota for user app, hammered through all three data
//     planes: the fleet admits 300 ± 10% per second in the steady part;
// (c) one user's burst (its own quota) does not raise another user's median
//     point-select latency by more than 20%;
// (d) REJECT gives ERR 1226 / 42000 naming the quota; the session goes on;
// (b) a data plane stops: the others see the registry shrink and the two
//     left admit 300 ± 10% per second between them;
// (e) maxConcurrent 2 over the two left: never more than 2 statements running
//     on the server, the others wait (QUEUE) and all succeed.
// The measured figures are printed (docs/benchmarks.md "Quotas").
import type * as mysql from "mysql2/promise";
import {
  type ControlPlane,
  applyPolicy,
  connect,
  freePort,
  nativePasswordHash,
  scrape,
  sleep,
  startControlPlane,
  startDataPlane,
  startEtcd,
  startMariaDB,
  type DataPlane,
  type MariaDBServer,
} from "../helpers";

const PW = "quota-gw-pw-5";
const APP_PW = "quota-backend-pw-5";
const FLEET_QPS = 300;
const BURSTY_QPS = 30;
const HOSTS = ["127.0.0.1", "127.0.0.2", "127.0.0.3"];

let db: MariaDBServer;
let cp: ControlPlane;
let port = 0;
const dps: DataPlane[] = [];
const metricsPorts: number[] = [];
const open: mysql.Connection[] = [];

async function client(host: string, user: string): Promise<mysql.Connection> {
  const c = await connect({ host, port, user, password: PW, database: "shop" });
  open.push(c);
  return c;
}

/** `perHost` connections of `user` to each of `hosts`. */
async function clients(hosts: readonly string[], user: string, perHost: number): Promise<mysql.Connection[]> {
  const out: mysql.Connection[] = [];
  for (const h of hosts) for (let i = 0; i < perHost; i++) out.push(await client(h, user));
  return out;
}

/** Every connection runs `sql` back to back for `ms`; the completion times (ms from the start). */
async function hammer(conns: readonly mysql.Connection[], sql: string, ms: number): Promise<number[]> {
  const t0 = performance.now();
  const done: number[] = [];
  await Promise.all(
    conns.map(async (c) => {
      for (let i = 0; i < 1_000_000 && performance.now() - t0 < ms; i++) {
        await c.query(sql);
        done.push(performance.now() - t0);
      }
    }),
  );
  return done;
}

/** Statements per second completed within [fromMs, toMs). */
function rateIn(done: readonly number[], fromMs: number, toMs: number): number {
  return done.filter((t) => t >= fromMs && t < toMs).length / ((toMs - fromMs) / 1000);
}

function quantile(xs: readonly number[], q: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))] ?? NaN;
}

/** Waits until each of `planes` logged that the fleet it computes shares for has `n` data planes. */
async function fleetOf(planes: readonly DataPlane[], n: number, since: readonly number[]): Promise<void> {
  await Promise.all(planes.map((dp, i) => dp.waitForLog((r) => r.msg === "quota fleet changed" && r.dataPlanes === n, 30_000, since[i])));
}

async function metricSum(name: string, labels: Record<string, string>, hosts = HOSTS): Promise<number> {
  let sum = 0;
  for (let i = 0; i < hosts.length; i++) sum += (await scrape(`http://${hosts[i]}:${metricsPorts[i]}/metrics`)).sum(name, labels);
  return sum;
}

function policy(extra: unknown[], burstyQps = BURSTY_QPS): unknown {
  const user = (name: string) => ({ name, passwordHash: nativePasswordHash(PW), backendCredentials: { user: "app", secretRef: "env:APP_PW" } });
  return {
    clusters: [{ name: "main", backends: [{ name: "db", address: db.address }] }],
    listeners: [{ name: "rw", bindAddress: "127.0.0.1", port, cluster: "main" }],
    users: ["app", "bursty", "steady", "rej", "slow"].map(user),
    // no action: it only names the statements it matches, for the quota below
    rules: [{ name: "reports", match: { pattern: "reports_marker" } }],
    quotas: [
      { name: "app-rate", users: ["app"], queriesPerSecond: FLEET_QPS, onExceed: "ON_EXCEED_QUEUE", maxWait: "10s" },
      { name: "bursty-rate", users: ["bursty"], queriesPerSecond: burstyQps, burst: burstyQps === BURSTY_QPS ? 3 : 0, maxWait: "10s" },
      // steady goes through the quota path too, never limited
      { name: "steady-rate", users: ["steady"], queriesPerSecond: 100_000 },
      { name: "rej-rate", users: ["rej"], queriesPerSecond: 3, onExceed: "ON_EXCEED_REJECT" },
      { name: "slow-slots", users: ["slow"], maxConcurrent: 2, maxWait: "20s" },
      { name: "reports-rate", rules: ["reports"], queriesPerSecond: 3, onExceed: "ON_EXCEED_REJECT" },
      ...extra,
    ],
  };
}

beforeAll(async () => {
  const etcd = await startEtcd();
  db = await startMariaDB({ accounts: [{ user: "app", password: APP_PW }] });
  await db.query("CREATE DATABASE shop; CREATE TABLE shop.t (id INT PRIMARY KEY, c VARCHAR(40))");
  await db.query(`INSERT INTO shop.t SELECT seq, CONCAT('row-', seq) FROM shop.seq_1_to_1000`);
  cp = await startControlPlane({ etcd });
  port = await freePort();
  const { version } = await applyPolicy(cp, policy([]));
  const marks: number[] = [];
  for (let i = 0; i < 3; i++) {
    metricsPorts.push(await freePort());
    const dp = await startDataPlane({
      etcd,
      workers: 1,
      env: { APP_PW },
      waitForConfig: version,
      args: ["--id", `dp-${i + 1}`, "--bind-address", HOSTS[i], "--metrics-listen", `${HOSTS[i]}:${metricsPorts[i]}`, "--drain-timeout", "2000"],
    });
    dps.push(dp);
    marks.push(0);
  }
  await fleetOf(dps, 3, marks);
}, 180_000);

afterAll(async () => {
  await Promise.all(open.map((c) => c.end().catch(() => undefined)));
});

test("(a) 300 qps for user app, hammered through 3 data planes: the fleet admits 300 ± 10% per second", async () => {
  const conns = await clients(HOSTS, "app", 6);
  const done = await hammer(conns, "SELECT 1", 6000);
  const steady = rateIn(done, 1500, 5500);
  const perPlane = conns.length / 3;
  console.log(`quotas (a): 3 data planes × ${perPlane} clients, app-rate ${FLEET_QPS} qps: ${done.length} statements in 6 s, steady part (1.5-5.5 s) ${steady.toFixed(1)} qps (${(steady / FLEET_QPS).toFixed(3)} of the figure); first 1.5 s ${rateIn(done, 0, 1500).toFixed(1)} qps (bucket of ${FLEET_QPS / 3} per data plane)`);
  expect(steady).toBeGreaterThanOrEqual(FLEET_QPS * 0.9);
  expect(steady).toBeLessThanOrEqual(FLEET_QPS * 1.1);
  expect(await metricSum("mysqlgw_quota_statements_total", { quota: "app-rate", outcome: "queued" })).toBeGreaterThan(0);
  expect(await metricSum("mysqlgw_quota_share_queries_per_second", { quota: "app-rate" })).toBeCloseTo(FLEET_QPS, 6);
  await Promise.all(conns.map((c) => c.end()));
}, 60_000);

test("(c) a burst of user bursty (its own quota) does not raise steady's point-select latency by more than 20%", async () => {
  const steadyConns = await clients([HOSTS[0]], "steady", 2);
  const burstConns = await clients(HOSTS, "bursty", 6);
  try {
    await burstIsolation(steadyConns, burstConns);
  } finally {
    await Promise.all([...steadyConns, ...burstConns].map((c) => c.end().catch(() => undefined)));
  }
}, 120_000);

async function burstIsolation(steadyConns: mysql.Connection[], burstConns: mysql.Connection[]): Promise<void> {
  const pointSelect = () => `SELECT c FROM t WHERE id = ${1 + Math.floor(Math.random() * 1000)}`;
  // steady: each connection a point select every 10 ms (200/s in all); latency of each, by phase
  const runSteady = async (ms: number): Promise<number[]> => {
    const lat: number[] = [];
    const t0 = performance.now();
    await Promise.all(
      steadyConns.map(async (c, k) => {
        for (let i = 0; i < 100_000; i++) {
          const due = t0 + k * 5 + i * 10;
          if (due - t0 >= ms) break;
          const wait = due - performance.now();
          if (wait > 0) await sleep(wait);
          const s = performance.now();
          await c.query(pointSelect());
          if (s - t0 >= 200) lat.push(performance.now() - s); // the phase's first 200 ms warm up
        }
      }),
    );
    return lat;
  };
  const runBurst = async (ms: number): Promise<number> => {
    const t0 = performance.now();
    let n = 0;
    await Promise.all(
      burstConns.map(async (c) => {
        for (let i = 0; i < 1_000_000 && performance.now() - t0 < ms; i++) {
          await c.query(pointSelect());
          n++;
        }
      }),
    );
    return n;
  };
  await runSteady(1000);
  // short interleaved rounds, alternating which phase comes first, so that load from elsewhere on
  // this shared machine falls on both alike; the figure is the ratio of the medians of all samples
  // of each phase (each round's own ratio is printed too: a 1 s round is noisy here)
  const measure = async (rounds: number, phaseMs: number) => {
    const m = { base: [] as number[], burst: [] as number[], ratios: [] as number[], statements: 0, ms: 0 };
    const withBurst = async (): Promise<number[]> => {
      const t = performance.now();
      const [lat, n] = await Promise.all([runSteady(phaseMs), runBurst(phaseMs)]);
      m.ms += performance.now() - t;
      m.statements += n;
      return lat;
    };
    for (let round = 0; round < rounds; round++) {
      let b: number[];
      let w: number[];
      if (round % 2 === 0) {
        b = await runSteady(phaseMs);
        w = await withBurst();
      } else {
        w = await withBurst();
        b = await runSteady(phaseMs);
      }
      m.base.push(...b);
      m.burst.push(...w);
      m.ratios.push(quantile(w, 0.5) / quantile(b, 0.5));
    }
    return { ...m, ratio: quantile(m.burst, 0.5) / quantile(m.base, 0.5), rate: m.statements / (m.ms / 1000) };
  };
  const fmt = (xs: number[]) => `median ${quantile(xs, 0.5).toFixed(3)} ms, p90 ${quantile(xs, 0.9).toFixed(3)} ms (${xs.length} samples)`;
  const show = (m: Awaited<ReturnType<typeof measure>>) =>
    `without the burst ${fmt(m.base)}; during bursty's burst (18 connections as fast as they can, ${m.rate.toFixed(1)} admitted/s) ${fmt(m.burst)}; ` +
    `median ratio ${m.ratio.toFixed(3)}, p90 ratio ${(quantile(m.burst, 0.9) / quantile(m.base, 0.9)).toFixed(3)} (${m.ratios.length} interleaved rounds; each round's median ratio: ${m.ratios.map((r) => r.toFixed(2)).join(" ")})`;
  const q = await measure(12, 1000);
  console.log(`quotas (c): steady 200 point selects/s on dp-1, bursty's quota ${BURSTY_QPS} qps: ${show(q)}`);
  expect(q.base.length).toBeGreaterThan(1000);
  expect(q.burst.length).toBeGreaterThan(1000);
  expect(q.ratio).toBeLessThanOrEqual(1.2);
  // the burst was far above the quota, and the quota held it
  expect(q.rate).toBeLessThanOrEqual(BURSTY_QPS * 1.5);
  expect(await metricSum("mysqlgw_quota_statements_total", { quota: "bursty-rate", outcome: "queued" })).toBeGreaterThan(100);

  // for comparison (printed, not asserted): the same burst with bursty's quota raised out of reach
  const raised = await applyPolicy(cp, policy([], 1_000_000));
  await Promise.all(dps.map((dp) => dp.waitForConfig(raised.version)));
  const u = await measure(4, 1000);
  console.log(`quotas (c), for comparison, bursty's quota raised to 1,000,000 qps: ${show(u)}`);
  const restored = await applyPolicy(cp, policy([]));
  await Promise.all(dps.map((dp) => dp.waitForConfig(restored.version)));
}

test("(d) REJECT: ERR 1226 / 42000 naming the quota and its figure; the session goes on", async () => {
  const c = await client(HOSTS[0], "rej");
  const errors: { errno?: number; sqlState?: string; message?: string }[] = [];
  let ok = 0;
  for (let i = 0; i < 20; i++) {
    await c.query("SELECT 1").then(
      () => ok++,
      (e: { errno?: number; sqlState?: string; message?: string }) => errors.push(e),
    );
  }
  console.log(`quotas (d): rej-rate 3 qps REJECT, 20 statements back to back on one data plane: ${ok} admitted, ${errors.length} refused; "${errors[0]?.message}"`);
  expect(errors.length).toBeGreaterThanOrEqual(15);
  for (const e of errors) {
    expect(e).toMatchObject({ errno: 1226, sqlState: "42000" });
    expect(e.message).toBe("User 'rej' has exceeded the 'quota rej-rate: 3 queries per second' resource (fleet-wide); slow down and retry, or raise the quota (mysqlgw get quotas)");
  }
  // one token per data plane per second: after a pause the same session runs again
  await sleep(1100);
  const [[row]] = (await c.query("SELECT 6 * 7 AS v")) as unknown as [[{ v: string }]];
  expect(Number(row.v)).toBe(42);
  expect(await metricSum("mysqlgw_quota_statements_total", { quota: "rej-rate", outcome: "rejected" })).toBe(errors.length);
}, 30_000);

test("(b) a data plane leaves: the two left see it and admit 300 ± 10% per second between them", async () => {
  const left = dps.slice(0, 2);
  const marks = left.map((dp) => dp.mark());
  const t0 = performance.now();
  await dps[2].stop("SIGTERM");
  const stopped = performance.now();
  await fleetOf(left, 2, marks);
  console.log(`quotas (b): dp-3 stopped (SIGTERM, deregistered) in ${(stopped - t0).toFixed(0)} ms; both others counted 2 data planes ${(performance.now() - stopped).toFixed(0)} ms later`);
  const conns = await clients(HOSTS.slice(0, 2), "app", 6);
  const done = await hammer(conns, "SELECT 1", 6000);
  const steady = rateIn(done, 1500, 5500);
  console.log(`quotas (b): data plane dp-3 stopped, 2 data planes × 6 clients: steady part ${steady.toFixed(1)} qps (${(steady / FLEET_QPS).toFixed(3)} of ${FLEET_QPS})`);
  expect(steady).toBeGreaterThanOrEqual(FLEET_QPS * 0.9);
  expect(steady).toBeLessThanOrEqual(FLEET_QPS * 1.1);
  expect(await metricSum("mysqlgw_quota_data_planes", {}, HOSTS.slice(0, 2))).toBe(4); // 2 as each sees it
  await Promise.all(conns.map((c) => c.end()));
}, 90_000);

test("(e) maxConcurrent 2 over the fleet: never more than 2 running on the server; the others wait and succeed", async () => {
  const conns = await clients(HOSTS.slice(0, 2), "slow", 3);
  const root = await connect({ port: db.port, user: "app", password: APP_PW });
  open.push(root);
  const marker = "SELECT SLEEP(0.5) AS s /*quota-e*/";
  let maxRunning = 0;
  let polls = 0;
  let stop = false;
  const poller = (async () => {
    for (let i = 0; i < 2000 && !stop; i++) {
      const [[r]] = (await root.query("SELECT COUNT(*) AS n FROM information_schema.PROCESSLIST WHERE INFO LIKE 'SELECT SLEEP(0.5) AS s /*quota-e*/%'")) as unknown as [[{ n: string }]];
      maxRunning = Math.max(maxRunning, Number(r.n));
      polls++;
      await sleep(10);
    }
  })();
  const t0 = performance.now();
  const results = await Promise.all(conns.map((c) => c.query(marker).then(([rows]) => (rows as { s: string }[])[0]?.s)));
  const elapsed = performance.now() - t0;
  stop = true;
  await poller;
  console.log(`quotas (e): slow-slots maxConcurrent 2, 6 clients × SELECT SLEEP(0.5) over 2 data planes: all done in ${elapsed.toFixed(0)} ms; at most ${maxRunning} running at once on the server (${polls} processlist polls)`);
  expect(results.map(Number)).toEqual([0, 0, 0, 0, 0, 0]);
  expect(maxRunning).toBeLessThanOrEqual(2);
  expect(maxRunning).toBeGreaterThanOrEqual(1);
  // 6 × 0.5 s through 2 slots: three rounds
  expect(elapsed).toBeGreaterThanOrEqual(1400);
  expect(await metricSum("mysqlgw_quota_statements_total", { quota: "slow-slots", outcome: "queued" }, HOSTS.slice(0, 2))).toBeGreaterThanOrEqual(3);
}, 60_000);

test("(f) a quota added, then removed, applies to sessions already open from their next statement", async () => {
  const c = await client(HOSTS[0], "steady");
  await c.query("SELECT 1");
  const added = await applyPolicy(cp, policy([{ name: "steady-block", users: ["steady"], queriesPerSecond: 0.01, burst: 1, onExceed: "ON_EXCEED_REJECT" }]));
  await Promise.all(dps.slice(0, 2).map((dp) => dp.waitForConfig(added.version)));
  // one token (the bucket starts full), then refused
  const outcomes: string[] = [];
  for (let i = 0; i < 3; i++) await c.query("SELECT 1").then(() => outcomes.push("ok"), (e: { errno?: number; message?: string }) => outcomes.push(`${e.errno} ${e.message?.slice(0, 60)}`));
  expect(outcomes[0]).toBe("ok");
  expect(outcomes.slice(1)).toEqual(Array(2).fill("1226 User 'steady' has exceeded the 'quota steady-block: 0.01 que"));
  const removed = await applyPolicy(cp, policy([]));
  await Promise.all(dps.slice(0, 2).map((dp) => dp.waitForConfig(removed.version)));
  const [[row]] = (await c.query("SELECT 7 AS v")) as unknown as [[{ v: string }]];
  expect(Number(row.v)).toBe(7);
}, 60_000);

test("(g) a rule-matched quota counts only the statements its query rule matched", async () => {
  const c = await client(HOSTS[0], "steady");
  const outcomes: string[] = [];
  for (let i = 0; i < 10; i++) {
    await c.query("SELECT 'reports_marker' AS r").then(() => outcomes.push("ok"), (e: { errno?: number; message?: string }) => outcomes.push(`${e.errno} ${/quota [a-z-]+/.exec(e.message ?? "")?.[0]}`));
    // statements the rule does not match are not counted
    const [[row]] = (await c.query("SELECT 1 AS one")) as unknown as [[{ one: string }]];
    expect(Number(row.one)).toBe(1);
  }
  console.log(`quotas (g): reports-rate 3 qps REJECT on statements of rule "reports", 10 of them back to back on one data plane (a plain SELECT between each): ${outcomes.filter((o) => o === "ok").length} admitted`);
  expect(outcomes.filter((o) => o !== "ok").length).toBeGreaterThanOrEqual(7);
  for (const o of outcomes) if (o !== "ok") expect(o).toBe("1226 quota reports-rate");
}, 30_000);

// Issue 7, point 4: Prometheus metrics on the data plane (supervisor + 2 workers,
// --metrics-listen) and on the control plane (GET /metrics on its API port),
// scraped over HTTP and parsed as the text exposition format.
import * as net from "node:net";
import type * as mysql from "mysql2/promise";
import {
  applyPolicy,
  connect,
  freePort,
  nativePasswordHash,
  parseExposition,
  scrape,
  startControlPlane,
  startDataPlane,
  startEtcd,
  startMariaDB,
  type ControlPlane,
  type DataPlane,
} from "../helpers";

const APP_PW = "metrics-app-pw-1";
const PW = "metrics-gw-pw-1";
const MONITOR_PW = "metrics-monitor-pw-1";
let cp: ControlPlane;
let dp: DataPlane;
let port: number;
let deadPort: number;
let brokenPort: number;
let splitPort: number;
let dpMetrics: string;
let policy: (extraListenerMax: number) => unknown;

beforeAll(async () => {
  const [etcd, db] = await Promise.all([
    startEtcd(),
    startMariaDB({ accounts: [{ user: "app", password: APP_PW }, { user: "monitor", password: MONITOR_PW, grants: "REPLICATION CLIENT, SLAVE MONITOR" }] }),
  ]);
  cp = await startControlPlane({ etcd, env: { MONITOR_PW } });
  // the control plane's monitor probes both clusters
  const health = { interval: "0.5s", timeout: "0.5s", credentials: { user: "monitor", secretRef: "env:MONITOR_PW" } };
  [port, deadPort, brokenPort, splitPort] = [await freePort(), await freePort(), await freePort(), await freePort()];
  policy = (max) => ({
    clusters: [
      { name: "main", backends: [{ name: "db", address: db.address }], health },
      // nothing listens there: every login attempt fails to connect (not probed: the data plane tries it)
      { name: "gone", backends: [{ name: "nobody", address: `127.0.0.1:${deadPort}` }] },
      // probed only, by the monitor: every probe fails
      { name: "ghost", backends: [{ name: "nobody", address: `127.0.0.1:${deadPort}` }], health },
    ],
    listeners: [
      { name: "app", bindAddress: "127.0.0.1", port, cluster: "main", denyCidrs: ["127.0.0.2/32"], maxConnections: max },
      { name: "broken", bindAddress: "127.0.0.1", port: brokenPort, cluster: "gone" },
      // the routed engine (pooled backend connections)
      { name: "split", bindAddress: "127.0.0.1", port: splitPort, cluster: "main", role: "LISTENER_ROLE_SPLIT" },
    ],
    users: [{ name: "app", passwordHash: nativePasswordHash(PW), backendCredentials: { user: "app", secretRef: "env:APP_PW" } }],
  });
  const { version } = await applyPolicy(cp, policy(100));
  dp = await startDataPlane({ etcd, workers: 2, env: { APP_PW }, args: ["--metrics-listen", "127.0.0.1:0"], waitForConfig: version });
  const rec = await dp.waitForLog((r) => r.msg === "serving metrics", 10_000);
  dpMetrics = String(rec.metrics);
  expect(dpMetrics).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/metrics$/);
}, 120_000);

function gw(localAddress?: string, password = PW, to = port): Promise<mysql.Connection> {
  // mysql2 does not pass its localAddress option on: give it the socket
  const stream = localAddress === undefined ? undefined : net.connect({ port: to, host: "127.0.0.1", localAddress });
  return connect({ port: to, user: "app", password, extra: stream === undefined ? undefined : { stream } });
}

async function refused(p: Promise<mysql.Connection>): Promise<{ errno?: number }> {
  return p.then(
    async (c) => {
      await c.end();
      throw new Error("connection unexpectedly accepted");
    },
    (e: { errno?: number }) => e,
  );
}

/** Polls `fn` until it returns true, at most `ms`. */
async function eventually(fn: () => Promise<boolean>, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await fn())) {
    if (Date.now() > end) throw new Error("condition not met in time");
    await new Promise((r) => setTimeout(r, 100));
  }
}

test("the text exposition parser reads HELP/TYPE, escaped labels, +Inf, and rejects malformed lines", () => {
  const e = parseExposition('# HELP a_total x\n# TYPE a_total counter\na_total{l="q\\"u\\\\o\\nte",m="2"} 3\nb_bucket{le="+Inf"} +Inf 1700000000\nc Nan\n');
  expect(e.types.get("a_total")).toBe("counter");
  expect(e.value("a_total", { l: 'q"u\\o\nte' })).toBe(3);
  expect(e.value("b_bucket")).toBe(Infinity);
  expect(e.value("c")).toBeNaN(); // prom-client writes NaN so; Prometheus reads NaN in any case
  expect(() => parseExposition("a_total{l=x} 1")).toThrow(/without quotes/);
  expect(() => parseExposition("a_total one")).toThrow(/bad value/);
  expect(() => parseExposition("# TYPE a counter\n# TYPE a gauge")).toThrow(/twice/);
});

test("data plane: connections accepted, refused by the deny list, failed logins, backend failures, config version and watch delay, summed over 2 workers", async () => {
  const before = await scrape(dpMetrics);
  expect(before.types.get("mysqlgw_client_connections_accepted_total")).toBe("counter");
  expect(before.sum("mysqlgw_client_connections_accepted_total")).toBe(0);

  // 4 sessions (2 kept open while scraping), 1 wrong password, 1 refused by the listener's deny list
  const held = [await gw(), await gw()];
  for (let i = 0; i < 2; i++) {
    const c = await gw();
    await c.query("SELECT 1");
    await c.end();
  }
  expect(await refused(gw(undefined, "wrong-password"))).toMatchObject({ errno: 1045 });
  expect(await refused(gw("127.0.0.2"))).toMatchObject({ errno: 1130 });
  // the cluster behind "broken" has no reachable backend: 1105 after one failed login
  expect(await refused(gw(undefined, PW, brokenPort))).toMatchObject({ errno: 1105 });

  // a routed listener: one session, one refused by the server (unknown database, 1049 passed on)
  const routed = await gw(undefined, PW, splitPort);
  expect(await routed.query("SELECT 1 AS one").then(([rows]) => rows)).toEqual([{ one: 1 }]);
  await routed.end();
  expect(await refused(connect({ port: splitPort, user: "app", password: PW, database: "no_such_db" }))).toMatchObject({ errno: 1049 });

  let m = await scrape(dpMetrics);
  expect(m.value("mysqlgw_client_connections_accepted_total", { listener: "split" })).toBe(2);
  expect(m.value("mysqlgw_client_sessions_established_total", { listener: "split" })).toBe(1);
  expect(m.value("mysqlgw_client_handshake_failures_total", { listener: "split", reason: "backend_refused" })).toBe(1);
  expect(m.value("mysqlgw_client_connections_accepted_total", { listener: "app" })).toBe(5);
  expect(m.value("mysqlgw_client_connections_accepted_total", { listener: "broken" })).toBe(1);
  expect(m.value("mysqlgw_client_sessions_established_total", { listener: "app" })).toBe(4);
  expect(m.value("mysqlgw_client_connections_refused_total", { listener: "app", reason: "host_not_allowed" })).toBe(1);
  expect(m.sum("mysqlgw_client_connections_refused_total")).toBe(1);
  expect(m.value("mysqlgw_client_handshake_failures_total", { listener: "app", reason: "access_denied" })).toBe(1);
  expect(m.value("mysqlgw_client_handshake_failures_total", { listener: "broken", reason: "no_backend" })).toBe(1);
  expect(m.value("mysqlgw_backend_connect_failures_total", { cluster: "gone", backend: "nobody", reason: "connect" })).toBe(1);
  expect(m.types.get("mysqlgw_client_connections")).toBe("gauge");
  expect(m.value("mysqlgw_client_connections", { listener: "app" })).toBe(2);
  // one series per label set after the merge of the workers' registries
  const keys = m.samples.map((s) => `${s.name}${JSON.stringify(s.labels)}`);
  expect(new Set(keys).size).toBe(keys.length);
  // no secret and no client address in any label
  const text = await (await fetch(dpMetrics)).text();
  for (const s of [PW, APP_PW, "127.0.0.2", "wrong-password"]) expect(text).not.toContain(s);

  await Promise.all(held.map((c) => c.end()));
  await eventually(async () => (await scrape(dpMetrics)).value("mysqlgw_client_connections", { listener: "app" }) === 0);

  // config: version 1 served; a new version arrives over the etcd watch
  expect(m.value("mysqlgw_config_version")).toBe(Number(dp.servedVersion));
  expect(m.value("mysqlgw_config_changes_total", { result: "applied" })).toBe(1);
  expect(m.value("mysqlgw_config_watch_delay_seconds_count")).toBe(0);
  const { version } = await applyPolicy(cp, policy(200));
  await dp.waitForConfig(version);
  m = await scrape(dpMetrics);
  expect(m.value("mysqlgw_config_version")).toBe(Number(version));
  expect(m.value("mysqlgw_config_served_from_disk")).toBe(0);
  expect(m.value("mysqlgw_config_changes_total", { result: "applied" })).toBe(2);
  expect(m.value("mysqlgw_config_watch_delay_seconds_count")).toBe(1);
  const delay = m.value("mysqlgw_config_watch_delay_seconds_sum")!;
  expect(delay).toBeGreaterThanOrEqual(0);
  expect(delay).toBeLessThan(10);
  expect(m.value("mysqlgw_metrics_worker_scrape_failures_total")).toBeUndefined();
  // the standard process metrics, one series per process
  expect(m.samples.filter((s) => s.name === "process_cpu_seconds_total").map((s) => s.labels.worker).sort()).toEqual(["0", "1", "supervisor"]);
  expect(m.sum("process_resident_memory_bytes")).toBeGreaterThan(3 * 20e6);
  expect(m.value("nodejs_eventloop_lag_seconds", { worker: "1" })).toBeGreaterThanOrEqual(0);
  console.log(`data plane: watch delay of config version ${version}: ${(delay * 1000).toFixed(0)} ms`);

  const health = await fetch(dpMetrics.replace(/\/metrics$/, "/healthz"));
  expect(health.status).toBe(200);
  expect(await health.json()).toMatchObject({ status: "serving", version });
}, 60_000);

test("control plane: API requests by method and code, applies, current version, monitor leader", async () => {
  const url = `${cp.url}/metrics`;
  let m = await scrape(url);
  const applies = m.value("mysqlgw_api_requests_total", { method: "ApplyPolicy", code: "ok" }) ?? 0;
  expect(applies).toBeGreaterThanOrEqual(2);
  const listed = m.value("mysqlgw_api_requests_total", { method: "ListDataPlanes", code: "ok" }) ?? 0;
  expect((await fetch(`${cp.url}/v1/dataplanes`)).status).toBe(200);
  expect((await fetch(`${cp.url}/v1/policy?version=999`)).status).toBe(404);
  m = await scrape(url);
  expect(m.value("mysqlgw_api_requests_total", { method: "ListDataPlanes", code: "ok" })).toBe(listed + 1);
  expect(m.value("mysqlgw_api_requests_total", { method: "GetPolicy", code: "not_found" })).toBe(1);
  expect(m.value("mysqlgw_api_request_duration_seconds_count", { method: "ListDataPlanes" })).toBe(listed + 1);
  expect(m.types.get("mysqlgw_api_request_duration_seconds")).toBe("histogram");
  expect(m.value("mysqlgw_policy_applies_total", { result: "applied" })).toBe(applies);
  expect(m.value("mysqlgw_config_version")).toBe(Number(dp.servedVersion));
  expect(m.value("mysqlgw_etcd_reachable")).toBe(1);
  expect(m.value("process_resident_memory_bytes")).toBeGreaterThan(20e6);
  // the only control plane wins the monitor election and probes: db up, ghost/nobody down
  await eventually(async () => {
    const s = await scrape(url);
    return (
      s.value("mysqlgw_monitor_leader") === 1 &&
      (s.value("mysqlgw_monitor_probes_total", { cluster: "main", backend: "db", result: "ok" }) ?? 0) >= 1 &&
      (s.value("mysqlgw_monitor_probes_total", { cluster: "ghost", backend: "nobody", result: "error" }) ?? 0) >= 3 &&
      s.value("mysqlgw_monitor_backend_up", { cluster: "ghost", backend: "nobody" }) === 0
    );
  }, 20_000);
  m = await scrape(url);
  expect(m.value("mysqlgw_monitor_backend_up", { cluster: "main", backend: "db" })).toBe(1);
  expect(m.value("mysqlgw_monitor_probes_total", { cluster: "main", backend: "db", result: "error" })).toBeUndefined();
  // a primary has no replication lag
  expect(m.value("mysqlgw_monitor_backend_replication_lag_seconds", { cluster: "main", backend: "db" })).toBeUndefined();
}, 60_000);

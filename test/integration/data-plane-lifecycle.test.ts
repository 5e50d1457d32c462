// Issue 2, point 4: worker processes sharing the listeners, the registry in
// etcd, and SIGTERM draining — through the real data-plane binary.
import * as net from "node:net";
import {
  applyPolicy,
  connect,
  freePort,
  nativePasswordHash,
  startControlPlane,
  startDataPlane,
  startEtcd,
  startMariaDB,
  waitFor,
  type ControlPlane,
  type EtcdServer,
  type MariaDBServer,
} from "../helpers";

const PASSWORD = "lifecycle-pw";
let etcd: EtcdServer;
let db: MariaDBServer;
let cp: ControlPlane;
let port: number;


interface Listed {
  dataPlanes?: { id: string; pid: number; workers: number; configVersion: string; listeners: string[]; configSource: string }[];
  currentVersion: string;
}

async function listDataPlanes(): Promise<Listed> {
  const res = await fetch(`${cp.url}/v1/dataplanes`);
  expect(res.status).toBe(200);
  return (await res.json()) as Listed;
}

function refused(p: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(p, "127.0.0.1");
    s.on("error", () => resolve(true));
    s.on("connect", () => {
      s.destroy();
      resolve(false);
    });
  });
}

beforeAll(async () => {
  [etcd, db] = await Promise.all([startEtcd(), startMariaDB({ accounts: [{ user: "app", password: PASSWORD }] })]);
  cp = await startControlPlane({ etcd });
  port = await freePort();
  const applied = await applyPolicy(cp, {
    clusters: [{ name: "main", backends: [{ name: "db", address: db.address }] }],
    listeners: [{ name: "main", bindAddress: "127.0.0.1", port, cluster: "main" }],
    users: [{ name: "app", passwordHash: nativePasswordHash(PASSWORD), backendCredentials: { secretRef: "env:LIFECYCLE_PW" } }],
  }, "test");
  expect(applied).toEqual({ version: "1", changed: true });
}, 60_000);

test("the very first client of a fresh data plane is greeted as a direct client is (version, MariaDB column metadata)", async () => {
  const dp = await startDataPlane({ etcd, workers: 1, env: { LIFECYCLE_PW: PASSWORD }, waitForConfig: 1 });
  try {
    const sql = "SELECT JSON_OBJECT('a', 1) AS j, VERSION() AS v";
    const direct = await connect({ port: db.port, user: "app", password: PASSWORD });
    const first = await connect({ port, user: "app", password: PASSWORD });
    const [[d]] = (await direct.query(sql)) as unknown as [[{ j: unknown; v: string }]];
    const [[g]] = (await first.query(sql)) as unknown as [[{ j: unknown; v: string }]];
    // mysql2 decodes JSON columns only when the server offers MariaDB's extended type info.
    expect(g).toEqual(d);
    expect(g.j).toEqual({ a: 1 });
    const greeting = (c: unknown): string => (c as { connection: { _handshakePacket: { serverVersion: string } } }).connection._handshakePacket.serverVersion;
    expect(greeting(first)).toBe(greeting(direct));
    await Promise.all([direct.end(), first.end()]);
  } finally {
    await dp.stop("SIGTERM");
  }
});

test("two workers share one listener, the data plane registers once with the version it serves, and deregisters on SIGTERM", async () => {
  const dp = await startDataPlane({ etcd, workers: 2, env: { LIFECYCLE_PW: PASSWORD }, waitForConfig: 1 });
  const conns = await Promise.all(Array.from({ length: 12 }, () => connect({ port, user: "app", password: PASSWORD })));
  // The handshake's connection id carries the worker index in its top 8 bits.
  const workers = new Set(conns.map((c) => c.threadId! >>> 24));
  expect([...workers].sort()).toEqual([0, 1]);
  for (const c of conns) {
    const [[r]] = (await c.query("SELECT 6 * 7 AS v")) as unknown as [[{ v: number }]];
    expect(Number(r.v)).toBe(42);
  }
  await Promise.all(conns.map((c) => c.end()));

  const listed = await waitFor(async () => {
    const l = await listDataPlanes();
    return l.dataPlanes?.length === 1 && l.dataPlanes[0].configVersion === "1" ? l : null;
  }, { timeoutMs: 10_000, what: "the data plane's registry entry" });
  expect(listed.dataPlanes![0]).toMatchObject({ pid: dp.pid, workers: 2, configVersion: "1", listeners: ["main"], configSource: "etcd" });

  expect(await dp.stop("SIGTERM")).toBe(0);
  const after = await listDataPlanes();
  expect(after.dataPlanes ?? []).toEqual([]);
});

test("SIGTERM stops accepting at once, lets a running query finish, and closes what is left at the drain timeout", async () => {
  const dp = await startDataPlane({ etcd, workers: 1, env: { LIFECYCLE_PW: PASSWORD }, waitForConfig: 1, args: ["--drain-timeout", "4000"] });
  const busy = await connect({ port, user: "app", password: PASSWORD });
  const idle = await connect({ port, user: "app", password: PASSWORD });
  let idleGone = false;
  idle.on("error", () => (idleGone = true));
  const query = busy.query("SELECT SLEEP(1.5) AS slept, 'done' AS state");
  await new Promise((r) => setTimeout(r, 200));
  const t0 = Date.now();
  dp.signal("SIGTERM");
  // New connections are refused while draining.
  await waitFor(() => refused(port), { timeoutMs: 2000, what: "the listener to stop accepting" });
  expect(Date.now() - t0).toBeLessThan(1500);
  // The query that was running completes normally.
  const [[r]] = (await query) as unknown as [[{ slept: number; state: string }]];
  expect({ slept: Number(r.slept), state: r.state }).toEqual({ slept: 0, state: "done" });
  await busy.end();
  // The idle connection is closed at the drain timeout, then the process exits cleanly.
  const info = await dp.exited;
  const took = Date.now() - t0;
  expect(info.code).toBe(0);
  expect(took).toBeGreaterThanOrEqual(3500);
  expect(took).toBeLessThan(9000);
  // The idle client finds its connection gone (1053 Server shutdown, or closed).
  await expect(idle.query("SELECT 1")).rejects.toBeInstanceOf(Error);
  expect(idleGone).toBe(true);
  idle.destroy();
});

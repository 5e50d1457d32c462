// Issue 6, point 3: connection limits are counted per worker process, each
// worker keeping to ceil(limit / workers), so a data plane with 2 workers as a
// whole never holds more than the configured figure (limit 4: 2 per worker).
import type * as mysql from "mysql2/promise";
import { applyPolicy, connect, freePort, nativePasswordHash, startControlPlane, startDataPlane, startEtcd, startMariaDB } from "../helpers";

const APP_PW = "workers-app-pw-1";
const PW = "workers-gw-pw-1";
let port: number;

beforeAll(async () => {
  const [etcd, db] = await Promise.all([startEtcd(), startMariaDB({ accounts: [{ user: "app", password: APP_PW }] })]);
  const cp = await startControlPlane({ etcd });
  port = await freePort();
  const { version } = await applyPolicy(cp, {
    clusters: [{ name: "main", backends: [{ name: "db", address: db.address }] }],
    listeners: [{ name: "l", bindAddress: "127.0.0.1", port, cluster: "main", maxConnections: 4 }],
    users: [{ name: "app", passwordHash: nativePasswordHash(PW), backendCredentials: { user: "app", secretRef: "env:APP_PW" } }],
  });
  await startDataPlane({ etcd, workers: 2, env: { APP_PW }, waitForConfig: version });
}, 120_000);

test("listener maxConnections 4 over 2 workers: at most 4 sessions in all, the rest get 1040", async () => {
  const open: mysql.Connection[] = [];
  const refused: { errno?: number; sqlState?: string }[] = [];
  try {
    for (let i = 0; i < 10; i++) {
      await connect({ port, user: "app", password: PW }).then(
        (c) => open.push(c),
        (e: { errno?: number; sqlState?: string }) => refused.push(e),
      );
    }
    expect(open.length).toBeLessThanOrEqual(4);
    expect(open.length).toBeGreaterThanOrEqual(2);
    expect(refused.length).toBe(10 - open.length);
    for (const e of refused) expect(e).toMatchObject({ errno: 1040, sqlState: "08004" });
    for (const c of open) await c.query("SELECT 1");
    console.log(`2 workers, listener maxConnections 4: ${open.length} admitted of 10`);
  } finally {
    await Promise.all(open.map((c) => c.end()));
  }
}, 30_000);

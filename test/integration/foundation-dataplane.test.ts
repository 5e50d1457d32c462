// Issue 2, point 4, the parts foundation.test.ts does not show through real
// servers: round robin over a cluster's real backends skipping one that refuses
// the connection (backend password from a file: reference), results streamed
// with back-pressure rather than buffered whole, and the registry entry living
// under an etcd lease (gone once the process is killed without deregistering).
import * as fs from "node:fs";
import * as path from "node:path";
import { Etcd3 } from "etcd3";
import {
  applyPolicy,
  connect,
  freePort,
  nativePasswordHash,
  startControlPlane,
  startDataPlane,
  startEtcd,
  startReplicatedCluster,
  tempDir,
  waitFor,
  type ControlPlane,
  type DataPlane,
  type EtcdServer,
  type ReplicatedCluster,
} from "../helpers";

const USER = "rr";
const PASSWORD = "rr-secret";
const ROWS = 100_000;
const PAD = 1000; // ~100 MB of result

let etcd: EtcdServer;
let cluster: ReplicatedCluster;
let cp: ControlPlane;
let dp: DataPlane;
let port: number;
let refusing: number;

function rssKiB(pid: number): number {
  const m = /^VmRSS:\s+(\d+) kB$/m.exec(fs.readFileSync(`/proc/${pid}/status`, "utf8"));
  if (m === null) throw new Error(`no VmRSS for pid ${pid}`);
  return Number(m[1]);
}

beforeAll(async () => {
  [etcd, cluster] = await Promise.all([startEtcd(), startReplicatedCluster({ replicas: 1 })]);
  await cluster.primary.query("CREATE DATABASE rr");
  await cluster.waitForReplicas();
  cp = await startControlPlane({ etcd });
  port = await freePort();
  refusing = await freePort(); // nothing listens there: connections are refused
  const secretFile = path.join(tempDir("secret"), "backend-password");
  fs.writeFileSync(secretFile, `${cluster.app.password}\n`, { mode: 0o600 });
  const applied = await applyPolicy(cp, {
    clusters: [{
      name: "rr",
      backends: [
        // named so that their order (the policy sorts backends by name) is primary, refusing, replica
        { name: "a-primary", address: cluster.primary.address },
        { name: "b-gone", address: `127.0.0.1:${refusing}` },
        { name: "c-replica", address: cluster.replicas[0].address },
      ],
    }],
    listeners: [{ name: "rr", bindAddress: "127.0.0.1", port, cluster: "rr" }],
    users: [{ name: USER, passwordHash: nativePasswordHash(PASSWORD), backendCredentials: { user: cluster.app.user, secretRef: `file:${secretFile}` } }],
  });
  // workers 0: one process serves, so the round robin is one counter and its memory is dp.pid's
  dp = await startDataPlane({ etcd, workers: 0, waitForConfig: applied.version });
}, 120_000);

test("round robin over the cluster's backends; the one that refuses the connection is skipped, its turn goes to the next", async () => {
  const seen: number[] = [];
  for (let i = 0; i < 6; i++) {
    const c = await connect({ port, user: USER, password: PASSWORD });
    try {
      const [[r]] = (await c.query("SELECT @@server_id AS sid")) as unknown as [[{ sid: number }]];
      seen.push(Number(r.sid));
    } finally {
      await c.end();
    }
  }
  // backends in order a-primary (server 1), b-gone (refuses), c-replica (server 2): b-gone's turn lands on c-replica
  const count = (sid: number) => seen.filter((s) => s === sid).length;
  expect(seen).toHaveLength(6);
  expect({ primary: count(1), replica: count(2) }).toEqual({ primary: 2, replica: 4 });
  for (let i = 0; i < 6; i += 3) expect(seen.slice(i, i + 3).sort()).toEqual([1, 2, 2]);
});

test("a big result is streamed with back-pressure: a client that stops reading holds the backend's query, not the gateway's memory", async () => {
  const gw = await connect({ port, user: USER, password: PASSWORD, database: "rr" });
  const direct = await connect({ port: cluster.primary.port, user: cluster.app.user, password: cluster.app.password });
  try {
    // Land on the primary (round robin), where the query will be watched.
    const [[where]] = (await gw.query("SELECT @@server_id AS sid")) as unknown as [[{ sid: number }]];
    if (Number(where.sid) !== 1) throw new Error(`expected the gateway connection on the primary, got server ${where.sid}`);
    const before = rssKiB(dp.pid);
    // mysql2's callback connection under the promise one: rows as events, and pause()/resume() of its socket
    const raw = (gw as unknown as { connection: { query(sql: string): NodeJS.EventEmitter; pause(): void; resume(): void } }).connection;
    let rows = 0;
    let lastSeq = 0;
    let padOk = true;
    const done = new Promise<void>((resolve, reject) => {
      const q = raw.query(`SELECT seq, REPEAT('x', ${PAD}) AS pad FROM seq_1_to_${ROWS}`);
      q.on("result", (row: { seq: string | number; pad: string }) => {
        rows++;
        if (rows === 1) raw.pause();
        if (Number(row.seq) !== lastSeq + 1 || row.pad.length !== PAD) padOk = false;
        lastSeq = Number(row.seq);
      });
      q.on("error", reject);
      q.on("end", () => resolve());
    });
    await waitFor(() => rows > 0, { timeoutMs: 10_000, what: "the first row" });
    // Give a buffering proxy ample time to pull the whole 100 MB from the backend.
    await new Promise((r) => setTimeout(r, 2000));
    const [running] = (await direct.query(
      `SELECT COMMAND AS command FROM information_schema.PROCESSLIST WHERE ID <> CONNECTION_ID() AND INFO LIKE '%seq_1_to_${ROWS}%'`,
    )) as unknown as [{ command: string }[]];
    // The backend is still sending: it is blocked on the socket the gateway stopped reading.
    expect(running).toEqual([{ command: "Query" }]);
    const grownMiB = (rssKiB(dp.pid) - before) / 1024;
    expect(grownMiB).toBeLessThan(32); // the result is ~100 MB
    expect(rows).toBeLessThan(ROWS / 2);
    raw.resume();
    await done;
    expect({ rows, lastSeq, padOk }).toEqual({ rows: ROWS, lastSeq: ROWS, padOk: true });
    const [[still]] = (await gw.query("SELECT 1 + 1 AS two")) as unknown as [[{ two: number }]];
    expect(Number(still.two)).toBe(2);
    await gw.end();
  } finally {
    gw.destroy(); // a paused client left by a failed assertion would never finish end()
    await direct.end();
  }
});

test("the registry entry lives under an etcd lease: it carries the served version, and expires when the data plane is killed without deregistering", async () => {
  const client = new Etcd3({ hosts: etcd.endpoint });
  try {
    const prefix = "/mysqlgw/v1/dataplanes/";
    const entries = await client.getAll().prefix(prefix).exec();
    expect(entries.kvs).toHaveLength(1);
    const kv = entries.kvs[0]!;
    const entry = JSON.parse(kv.value.toString()) as { pid: number; configVersion: string; listeners: string[] };
    expect(entry).toMatchObject({ pid: dp.pid, configVersion: String(dp.servedVersion), listeners: ["rr"] });
    expect(kv.lease).not.toBe("0");
    const ttl = await client.leaseClient.leaseTimeToLive({ ID: kv.lease });
    expect(Number(ttl.grantedTTL)).toBeGreaterThan(0);
    expect(Number(ttl.grantedTTL)).toBeLessThanOrEqual(30);

    await dp.stop("SIGKILL");
    // No revoke was sent: the entry outlives the process until its lease runs out.
    expect((await client.getAll().prefix(prefix).keys())).toHaveLength(1);
    await waitFor(async () => (await client.getAll().prefix(prefix).keys()).length === 0, {
      timeoutMs: (Number(ttl.grantedTTL) + 5) * 1000,
      intervalMs: 250,
      what: "the registry entry to expire with its lease",
    });
    const listed = (await (await fetch(`${cp.url}/v1/dataplanes`)).json()) as { dataPlanes?: unknown[] };
    expect(listed.dataPlanes ?? []).toEqual([]);
  } finally {
    client.close();
  }
});

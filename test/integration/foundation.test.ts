// Issue 2, point 7: the foundation end to end through real processes —
// CLI → control plane → etcd → data plane → MariaDB, with real clients.
import * as crypto from "node:crypto";
import * as fs from "node:fs";
import * as net from "node:net";
import * as path from "node:path";
import { Etcd3 } from "etcd3";
import {
  connect,
  freePort,
  nativePasswordHash,
  runCli,
  runMariadbCli,
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

const USER = "shop";
const PASSWORD = "shop-secret-1";
const HANDSHAKE_TIMEOUT_MS = 1500;

let etcd: EtcdServer;
let cluster: ReplicatedCluster;
let cp: ControlPlane;
let dp: DataPlane;
let policyDir: string;
let port1: number;


interface PolicyShape {
  backends: string[];
  listeners: { name: string; port: number }[];
}

/** Writes the policy as two YAML files (clusters+listeners, users), as an operator would. */
function writePolicy(dir: string, shape: PolicyShape): void {
  fs.rmSync(dir, { recursive: true, force: true });
  fs.mkdirSync(dir, { recursive: true });
  const docs = [
    ["kind: Cluster", "name: orders", "backends:", ...shape.backends.map((a, i) => `  - { name: db${i + 1}, address: "${a}" }`)].join("\n"),
    ...shape.listeners.map((l) => [`kind: Listener`, `name: ${l.name}`, `bindAddress: 127.0.0.1`, `port: ${l.port}`, `cluster: orders`].join("\n")),
  ];
  fs.writeFileSync(path.join(dir, "10-topology.yaml"), docs.join("\n---\n") + "\n");
  fs.writeFileSync(
    path.join(dir, "20-users.yaml"),
    [`kind: User`, `name: ${USER}`, `passwordHash: "${nativePasswordHash(PASSWORD)}"`, `backendCredentials: { user: app, secretRef: env:ORDERS_BACKEND_PASSWORD }`].join("\n") + "\n",
  );
}

async function apply(dir: string): Promise<bigint> {
  const r = await runCli(cp.url, ["apply", "-f", dir]);
  expect(r.stderr).toBe("");
  expect(r.code).toBe(0);
  const m = /version (\d+)/.exec(r.stdout);
  expect(m).not.toBeNull();
  return BigInt(m![1]);
}

async function currentInEtcd(): Promise<string | null> {
  const client = new Etcd3({ hosts: etcd.endpoint });
  try {
    return await client.get("/mysqlgw/v1/config/current").string();
  } finally {
    client.close();
  }
}

function viaGateway(port = port1, password = PASSWORD, user = USER) {
  return connect({ port, user, password, database: "shop" });
}

beforeAll(async () => {
  [etcd, cluster] = await Promise.all([startEtcd(), startReplicatedCluster({ replicas: 1 })]);
  await cluster.primary.query("CREATE DATABASE shop");
  await cluster.waitForReplicas();
  cp = await startControlPlane({ etcd });
  port1 = await freePort();
  policyDir = tempDir("policy");
  writePolicy(policyDir, { backends: [cluster.primary.address], listeners: [{ name: "orders-rw", port: port1 }] });
  const v = await apply(policyDir);
  dp = await startDataPlane({
    etcd,
    workers: 1,
    handshakeTimeoutMs: HANDSHAKE_TIMEOUT_MS,
    env: { ORDERS_BACKEND_PASSWORD: cluster.app.password },
    waitForConfig: v,
  });
}, 120_000);

describe("a) real clients through the data plane", () => {
  test("mysql2 runs DDL, DML and SELECT and sees the same rows as a direct connection", async () => {
    const gw = await viaGateway();
    try {
      await gw.query("CREATE TABLE items (id INT PRIMARY KEY, name VARCHAR(40), price DECIMAL(10,2), at DATETIME)");
      const [ins] = await gw.query("INSERT INTO items VALUES (1,'apple',1.25,'2026-01-02 03:04:05'),(2,'pear',NULL,NULL),(3,'plum',9.99,'2026-11-22 00:00:00')");
      expect(ins).toMatchObject({ affectedRows: 3 });
      const [upd] = await gw.query("UPDATE items SET price = price * 2 WHERE id = 3");
      expect(upd).toMatchObject({ affectedRows: 1, changedRows: 1 });
      const [rows] = await gw.query("SELECT * FROM items ORDER BY id");
      const direct = await connect({ port: cluster.primary.port, user: cluster.app.user, password: cluster.app.password, database: "shop" });
      try {
        const [directRows] = await direct.query("SELECT * FROM items ORDER BY id");
        expect(rows).toEqual(directRows);
        expect(rows).toEqual([
          { id: 1, name: "apple", price: "1.25", at: "2026-01-02 03:04:05" },
          { id: 2, name: "pear", price: null, at: null },
          { id: 3, name: "plum", price: "19.98", at: "2026-11-22 00:00:00" },
        ]);
      } finally {
        await direct.end();
      }
      // An error from the server passes through with its code and SQLSTATE.
      await expect(gw.query("SELECT * FROM no_such_table")).rejects.toMatchObject({ errno: 1146, sqlState: "42S02" });
      const [[still]] = (await gw.query("SELECT COUNT(*) AS n FROM items")) as unknown as [[{ n: number }]];
      expect(Number(still.n)).toBe(3);
    } finally {
      await gw.end();
    }
  });

  test("the mariadb command-line client gets the same output through the gateway as direct", async () => {
    const sql = "SELECT id, name, price FROM shop.items ORDER BY id; SELECT @@server_id AS sid";
    const through = await runMariadbCli({ port: port1, user: USER, password: PASSWORD, sql });
    const direct = await runMariadbCli({ port: cluster.primary.port, user: cluster.app.user, password: cluster.app.password, sql });
    expect(through.stderr).toBe("");
    expect(through.code).toBe(0);
    expect(through.stdout).toBe(direct.stdout);
    expect(through.stdout).toContain("1\tapple\t1.25\n");
    const ddl = await runMariadbCli({ port: port1, user: USER, password: PASSWORD, database: "shop", sql: "CREATE TABLE cli_t (a INT); INSERT INTO cli_t VALUES (7),(8); SELECT SUM(a) FROM cli_t" });
    expect(ddl.code).toBe(0);
    expect(ddl.stdout.trim().split("\n")).toEqual(["SUM(a)", "15"]);
  });

  test("a 50,000-row SELECT streams intact", async () => {
    const sql = "SELECT seq, SHA1(seq) AS h, REPEAT('x', seq % 200) AS pad FROM seq_1_to_50000";
    const gw = await viaGateway();
    try {
      const [rows] = (await gw.query(sql)) as unknown as [{ seq: string | number; h: string; pad: string }[]];
      expect(rows).toHaveLength(50_000);
      let bad = 0;
      for (let i = 0; i < rows.length; i++) {
        const n = i + 1;
        if (Number(rows[i].seq) !== n || rows[i].h !== crypto.createHash("sha1").update(String(n)).digest("hex") || rows[i].pad.length !== n % 200) bad++;
      }
      expect(bad).toBe(0);
    } finally {
      await gw.end();
    }
  });
});

describe("c) authentication failures", () => {
  test("a wrong password gets 1045 / 28000", async () => {
    await expect(viaGateway(port1, "not-the-password")).rejects.toMatchObject({ errno: 1045, sqlState: "28000" });
    const cli = await runMariadbCli({ port: port1, user: USER, password: "nope", sql: "SELECT 1" });
    expect(cli.code).toBe(1);
    expect(cli.stderr).toMatch(/ERROR 1045 \(28000\).*Access denied for user 'shop'/);
  });

  test("an unknown user gets 1045 / 28000 too", async () => {
    await expect(viaGateway(port1, PASSWORD, "mallory")).rejects.toMatchObject({ errno: 1045, sqlState: "28000" });
    const cli = await runMariadbCli({ port: port1, user: "mallory", password: "x", sql: "SELECT 1" });
    expect(cli.stderr).toMatch(/ERROR 1045 \(28000\)/);
  });
});

describe("d) bad clients are closed within the handshake timeout; others are unaffected", () => {
  /** Connects raw, waits for the server's greeting, sends `bytes`, resolves with ms until close and what came back. */
  function rawClient(bytes: Buffer | null): Promise<{ closedAfterMs: number; received: Buffer }> {
    return new Promise((resolve, reject) => {
      const s = net.connect(port1, "127.0.0.1");
      const parts: Buffer[] = [];
      let greeted = false;
      const start = Date.now();
      const guard = setTimeout(() => {
        s.destroy();
        reject(new Error("connection still open after 10 s"));
      }, 10_000);
      s.on("data", (d) => {
        parts.push(d);
        if (!greeted) {
          greeted = true;
          if (bytes) s.write(bytes);
        }
      });
      s.on("error", () => undefined);
      s.on("close", () => {
        clearTimeout(guard);
        resolve({ closedAfterMs: Date.now() - start, received: Buffer.concat(parts) });
      });
    });
  }

  test("silent, malformed and truncated first packets, while a real client keeps working", async () => {
    const good = await viaGateway();
    try {
      const busy = (async () => {
        let ok = 0;
        for (let i = 0; i < 40; i++) {
          const [[r]] = (await good.query("SELECT ? + 1 AS v", [i])) as unknown as [[{ v: number }]];
          if (Number(r.v) === i + 1) ok++;
          await new Promise((res) => setTimeout(res, 25));
        }
        return ok;
      })();
      const garbage = Buffer.from([0x05, 0x00, 0x00, 0x01, 0xde, 0xad, 0xbe, 0xef, 0x00]);
      const truncated = Buffer.from([0x64, 0x00, 0x00, 0x01, 0x85, 0xa6, 0x03, 0x00]); // says 100 bytes, sends 4
      const [silent, malformed, cut] = await Promise.all([rawClient(null), rawClient(garbage), rawClient(truncated)]);
      // Silent and truncated: closed at the handshake timeout, not long after.
      for (const r of [silent, cut]) {
        expect(r.closedAfterMs).toBeGreaterThanOrEqual(HANDSHAKE_TIMEOUT_MS - 100);
        expect(r.closedAfterMs).toBeLessThan(HANDSHAKE_TIMEOUT_MS + 2000);
      }
      // Malformed: an ERR packet (0xff) with 1043 Bad handshake, then closed at once.
      expect(malformed.closedAfterMs).toBeLessThan(HANDSHAKE_TIMEOUT_MS);
      const errAt = malformed.received.indexOf(0xff, 4 + malformed.received.readUIntLE(0, 3));
      expect(errAt).toBeGreaterThan(0);
      expect(malformed.received.readUInt16LE(errAt + 1)).toBe(1043);
      expect(await busy).toBe(40);
    } finally {
      await good.end();
    }
  });
});

describe("b) config changes reach the data plane without a restart", () => {
  test("re-pointing the listener: new connections land on the new backend within 1 s, an open one keeps working; a new listener opens", async () => {
    const replica = cluster.replicas[0];
    const open = await viaGateway();
    const [[first]] = (await open.query("SELECT @@server_id AS sid")) as unknown as [[{ sid: number }]];
    expect(Number(first.sid)).toBe(1);
    const port2 = await freePort();
    writePolicy(policyDir, {
      backends: [replica.address],
      listeners: [
        { name: "orders-rw", port: port1 },
        { name: "orders-2", port: port2 },
      ],
    });
    // diff and apply --dry-run show the change and write nothing.
    const before = await currentInEtcd();
    const diff = await runCli(cp.url, ["diff", "-f", policyDir]);
    expect(diff.code).toBe(0);
    expect(diff.stdout).toContain("~ Cluster orders");
    expect(diff.stdout).toContain(`${cluster.primary.address} → ${replica.address}`);
    expect(diff.stdout).toContain("+ Listener orders-2");
    const dry = await runCli(cp.url, ["apply", "--dry-run", "-f", policyDir]);
    expect(dry.code).toBe(0);
    expect(dry.stdout).toContain("+ Listener orders-2");
    expect(await currentInEtcd()).toBe(before);

    const v = await apply(policyDir);
    const appliedAt = Date.now();
    const landed = await waitFor(
      async () => {
        const c = await viaGateway();
        try {
          const [[r]] = (await c.query("SELECT @@server_id AS sid")) as unknown as [[{ sid: number }]];
          return Number(r.sid) === 2 ? Date.now() : null;
        } finally {
          await c.end();
        }
      },
      { timeoutMs: 5000, intervalMs: 20, what: "a new connection on the replica" },
    );
    expect(landed - appliedAt).toBeLessThan(1000);
    await dp.waitForConfig(v, 5000);

    // The connection opened before the change still works, on its old backend.
    const [[old]] = (await open.query("SELECT @@server_id AS sid, 1 + 1 AS two")) as unknown as [[{ sid: number; two: number }]];
    expect(Number(old.sid)).toBe(1);
    expect(Number(old.two)).toBe(2);
    await open.end();

    // The new listener accepts connections.
    const c2 = await viaGateway(port2);
    const [[r2]] = (await c2.query("SELECT @@server_id AS sid")) as unknown as [[{ sid: number }]];
    expect(Number(r2.sid)).toBe(2);
    await c2.end();

    // `get` prints the live policy as YAML that apply takes.
    const got = await runCli(cp.url, ["get", "listeners"]);
    expect(got.code).toBe(0);
    expect(got.stdout).toMatch(/kind: Listener\nname: orders-2\nbindAddress: 127\.0\.0\.1\nport: \d+\ncluster: orders/);

    // The data plane reports the version it serves, and the CLI shows it.
    const status = await runCli(cp.url, ["status"]);
    expect(status.code).toBe(0);
    expect(status.stdout).toContain(`current config version ${v}`);
    // the data plane's row: id, pid, workers, the version it serves / the current one, its listeners, the source
    expect(status.stdout).toMatch(new RegExp(`^\\S+\\s+${dp.pid}\\s+1\\s+${v}/${v}\\s+(orders-2,orders-rw|orders-rw,orders-2)\\s+etcd\\s`, "m"));
    const listed = (await (await fetch(`${cp.url}/v1/dataplanes`)).json()) as { dataPlanes: { configVersion: string; listeners: string[] }[]; currentVersion: string };
    expect(listed.currentVersion).toBe(String(v));
    expect(listed.dataPlanes).toHaveLength(1);
    expect(listed.dataPlanes[0].configVersion).toBe(String(v));
    expect([...listed.dataPlanes[0].listeners].sort()).toEqual(["orders-2", "orders-rw"]);

    // Back to the primary for the tests that follow; applying the same policy twice is a no-op.
    writePolicy(policyDir, { backends: [cluster.primary.address], listeners: [{ name: "orders-rw", port: port1 }] });
    const v3 = await apply(policyDir);
    expect(v3).toBe(v + 1n);
    const again = await runCli(cp.url, ["apply", "-f", policyDir]);
    expect(again.code).toBe(0);
    expect(again.stdout).toMatch(/no changes/);
    await dp.waitForConfig(v3, 5000);
    // The removed listener stops accepting.
    await waitFor(() => new Promise<boolean>((res) => {
      const s = net.connect(port2, "127.0.0.1");
      s.on("error", () => res(true));
      s.on("connect", () => {
        s.destroy();
        res(false);
      });
    }), { timeoutMs: 5000, what: "orders-2 to stop accepting" });
  });
});

describe("e) invalid policy", () => {
  test("is rejected with file, document and field named, and etcd is unchanged", async () => {
    const before = await currentInEtcd();
    const bad = tempDir("bad-policy");
    fs.writeFileSync(
      path.join(bad, "policy.yaml"),
      ["kind: Cluster", "name: orders", "backends:", '  - { name: db1, address: "127.0.0.1:3306" }', "---", "kind: Listener", "name: orders-rw", "port: 70000", "cluster: orders"].join("\n") + "\n",
    );
    const r = await runCli(cp.url, ["apply", "-f", bad]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/policy\.yaml/);
    expect(r.stderr).toMatch(/document 2/);
    expect(r.stderr).toMatch(/port/);
    expect(r.stderr).toMatch(/65535/);
    expect(await currentInEtcd()).toBe(before);

    // The same through REST: 400 with the violation's field.
    const res = await fetch(`${cp.url}/v1/policy:apply`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ policy: { clusters: [{ name: "orders", backends: [] }] } }),
    });
    expect(res.status).toBe(400);
    expect(await res.text()).toMatch(/backends/);
    expect(await currentInEtcd()).toBe(before);
  });
});

describe("f) etcd unreachable", () => {
  test("a restarted data plane serves its last good config from disk", async () => {
    const served = dp.servedVersion;
    expect(served).not.toBeNull();
    await dp.stop("SIGTERM");
    await etcd.stop();
    const again = await startDataPlane({
      etcd,
      workers: 1,
      stateDir: dp.stateDir,
      env: { ORDERS_BACKEND_PASSWORD: cluster.app.password },
      args: ["--etcd-timeout", "1000"],
    });
    const rec = await again.waitForConfig(served!, 15_000);
    expect(rec.source).toBe("disk");
    const c = await viaGateway();
    const [[r]] = (await c.query("SELECT COUNT(*) AS n FROM items")) as unknown as [[{ n: number }]];
    expect(Number(r.n)).toBe(3);
    await c.end();
    await again.stop("SIGTERM");
    await etcd.restart();
  });
});

// Issue 4, points 1, 2, 6 and 7: listeners with roles over a real primary and two
// GTID replicas — READ_WRITE and READ_ONLY pass-through, SPLIT listeners that route
// each statement (multiplexed over pooled connections, and with multiplexing off),
// session state carried or pinned, prepared statements re-prepared per connection.
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
  type ControlPlane,
  type DataPlane,
  type EtcdServer,
  type ReplicatedCluster,
} from "../helpers";

let etcd: EtcdServer;
let cluster: ReplicatedCluster;
let cp: ControlPlane;
let dp: DataPlane;
const ports = { rw: 0, ro: 0, split: 0, splitDedicated: 0, ryw: 0 };
const USER = "shopapp";
const PASSWORD = "routing-pw-4";
const POOL_MAX = 4;
const open: mysql.Connection[] = [];

beforeAll(async () => {
  [etcd, cluster] = await Promise.all([startEtcd(), startReplicatedCluster({ replicas: 2 })]);
  await cluster.primary.query("CREATE DATABASE shop; CREATE TABLE shop.items (id INT AUTO_INCREMENT PRIMARY KEY, name VARCHAR(40), qty INT)");
  await cluster.primary.query("INSERT INTO shop.items (name, qty) VALUES ('apple', 3), ('pear', 5)");
  await cluster.waitForReplicas();
  cp = await startControlPlane({ etcd });
  for (const k of Object.keys(ports) as (keyof typeof ports)[]) ports[k] = await freePort();
  const { version } = await applyPolicy(cp, {
    clusters: [
      {
        name: "shop",
        backends: [
          { name: "db1", address: cluster.primary.address, expectedRole: "ROLE_PRIMARY" },
          { name: "db2", address: cluster.replicas[0].address, expectedRole: "ROLE_REPLICA", weight: 1 },
          { name: "db3", address: cluster.replicas[1].address, expectedRole: "ROLE_REPLICA", weight: 3 },
        ],
        pool: { maxConnections: POOL_MAX, acquireTimeout: "10s" },
      },
      // a one-server "cluster" on the second replica, for a rule that routes elsewhere
      { name: "archive", backends: [{ name: "arc1", address: cluster.replicas[1].address }] },
    ],
    rules: [
      { name: "no-truncate", match: { kinds: ["TRUNCATE"] }, deny: { message: "TRUNCATE is not allowed through mysqlgw; ask the DBA team" } },
      { name: "reports-on-primary", match: { pattern: "^/\\* report \\*/ select", listeners: ["shop-split"] }, route: { target: "TARGET_PRIMARY" } },
      { name: "legacy-name", match: { pattern: "legacy_items" }, rewrite: { pattern: "legacy_items", replacement: "items" } },
      { name: "to-archive", match: { pattern: "archive_probe" }, route: { cluster: "archive" } },
      { name: "cache-probe", match: { pattern: "cached_probe", kinds: ["SELECT"] }, cache: { ttl: "1.5s" } },
      { name: "mirror-probe", match: { pattern: "mirror_probe" }, mirror: { cluster: "archive" } },
    ],
    listeners: [
      { name: "shop-rw", bindAddress: "127.0.0.1", port: ports.rw, cluster: "shop" },
      { name: "shop-ro", bindAddress: "127.0.0.1", port: ports.ro, cluster: "shop", role: "LISTENER_ROLE_READ_ONLY" },
      { name: "shop-split", bindAddress: "127.0.0.1", port: ports.split, cluster: "shop", role: "LISTENER_ROLE_SPLIT" },
      { name: "shop-split-dedicated", bindAddress: "127.0.0.1", port: ports.splitDedicated, cluster: "shop", role: "LISTENER_ROLE_SPLIT", multiplexing: false },
      {
        name: "shop-ryw", bindAddress: "127.0.0.1", port: ports.ryw, cluster: "shop", role: "LISTENER_ROLE_SPLIT",
        readYourWrites: "READ_YOUR_WRITES_SESSION", causalReadTimeout: "0.3s",
      },
    ],
    users: [{ name: USER, passwordHash: nativePasswordHash(PASSWORD), backendCredentials: { user: cluster.app.user, secretRef: "env:APP_PW" } }],
  });
  dp = await startDataPlane({ etcd, workers: 1, env: { APP_PW: cluster.app.password } });
  await dp.waitForConfig(version);
}, 180_000);

afterEach(async () => {
  await Promise.allSettled(open.splice(0).map((c) => c.end()));
});

afterAll(async () => {
  await dp?.stop();
  await cp?.stop();
  await cluster?.stop();
  await etcd?.stop();
});

async function client(port: number, extra: Partial<Parameters<typeof connect>[0]> = {}): Promise<mysql.Connection> {
  const c = await connect({ port, user: USER, password: PASSWORD, database: "shop", ...extra });
  open.push(c);
  return c;
}

async function serverId(c: mysql.Connection, sql = "SELECT @@server_id AS id"): Promise<number> {
  const [rows] = await c.query<mysql.RowDataPacket[]>(sql);
  return Number(rows[0].id);
}

/** Server ids seen over `n` runs of `sql` (each a fresh statement). */
async function idsOver(c: mysql.Connection, n: number, sql?: string): Promise<Set<number>> {
  const seen = new Set<number>();
  for (let i = 0; i < n; i++) seen.add(await serverId(c, sql));
  return seen;
}

describe("pass-through listeners with roles", () => {
  test("READ_WRITE goes to the primary only; READ_ONLY to the replicas", async () => {
    for (let i = 0; i < 4; i++) {
      const rw = await client(ports.rw);
      expect(await serverId(rw)).toBe(1);
      await rw.end();
    }
    const seen = new Set<number>();
    for (let i = 0; i < 6; i++) {
      const ro = await client(ports.ro);
      seen.add(await serverId(ro));
      await ro.end();
    }
    expect([...seen].sort()).toEqual([2, 3]);
  });
});

/** Replicas a session's reads reach: both when multiplexed; one, its own, with multiplexing off. */
function expectReplicas(ids: Set<number>, multiplexed: boolean): void {
  if (multiplexed) expect([...ids].sort()).toEqual([2, 3]);
  else {
    expect(ids.size).toBe(1);
    expect([2, 3]).toContain([...ids][0]);
  }
}

describe.each([
  ["multiplexed", () => ports.split, true],
  ["multiplexing off", () => ports.splitDedicated, false],
])("SPLIT listener (%s)", (_label, port, multiplexed) => {
  test("reads go to the replicas, writes to the primary, and the data is the same", async () => {
    const c = await client(port());
    expectReplicas(await idsOver(c, 8), multiplexed);
    const [res] = await c.query<mysql.ResultSetHeader>("INSERT INTO items (name, qty) VALUES ('plum', 7)");
    expect(res.affectedRows).toBe(1);
    const [direct] = await cluster.primary.query<{ qty: number }>(`SELECT qty FROM shop.items WHERE id = ${res.insertId}`);
    expect(Number(direct.qty)).toBe(7);
    // LAST_INSERT_ID() right after the insert reads the insert's connection
    const [lid] = await c.query<mysql.RowDataPacket[]>("SELECT LAST_INSERT_ID() AS id");
    expect(Number(lid[0].id)).toBe(res.insertId);
    await c.query("DELETE FROM items WHERE id = ?", [res.insertId]);
  });

  test("a transaction runs on the primary, reads included; after COMMIT reads go back to replicas", async () => {
    const c = await client(port());
    await c.query("BEGIN");
    expect(await idsOver(c, 3)).toEqual(new Set([1]));
    await c.query("INSERT INTO items (name, qty) VALUES ('txn', 1)");
    const [inTx] = await c.query<mysql.RowDataPacket[]>("SELECT COUNT(*) AS n FROM items WHERE name = 'txn'");
    expect(Number(inTx[0].n)).toBe(1);
    await c.query("ROLLBACK");
    const [gone] = await cluster.primary.query<{ n: number }>("SELECT COUNT(*) AS n FROM shop.items WHERE name = 'txn'");
    expect(Number(gone.n)).toBe(0);
    expect((await idsOver(c, 4)).has(1)).toBe(false);
  });

  test("autocommit=0 keeps everything on the primary until autocommit=1", async () => {
    const c = await client(port());
    await c.query("SET autocommit = 0");
    expect(await idsOver(c, 3)).toEqual(new Set([1]));
    await c.query("INSERT INTO items (name, qty) VALUES ('ac0', 1)");
    await c.query("ROLLBACK");
    await c.query("SET autocommit = 1");
    const [n] = await cluster.primary.query<{ n: number }>("SELECT COUNT(*) AS n FROM shop.items WHERE name = 'ac0'");
    expect(Number(n.n)).toBe(0);
    expect((await idsOver(c, 4)).has(1)).toBe(false);
  });

  test("FOR UPDATE, LOCK IN SHARE MODE, GET_LOCK and hints go to the primary; a replica hint to a replica", async () => {
    const c = await client(port());
    expect(await serverId(c, "SELECT @@server_id AS id FROM items LIMIT 1 FOR UPDATE")).toBe(1);
    expect(await serverId(c, "SELECT @@server_id AS id FROM items LIMIT 1 LOCK IN SHARE MODE")).toBe(1);
    expect(await serverId(c, "/* mysqlgw:primary */ SELECT @@server_id AS id")).toBe(1);
    expect([2, 3]).toContain(await serverId(c, "/* mysqlgw:replica */ SELECT @@server_id AS id"));
  });

  test("user variables set then read, and temporary tables, pin the session to the primary", async () => {
    const c = await client(port());
    await c.query("SET @basket = 42");
    const [v] = await c.query<mysql.RowDataPacket[]>("SELECT @basket AS b, @@server_id AS id");
    expect({ b: Number(v[0].b), id: Number(v[0].id) }).toEqual({ b: 42, id: 1 });
    const t = await client(port());
    await t.query("CREATE TEMPORARY TABLE scratch (x INT)");
    await t.query("INSERT INTO scratch VALUES (1), (2)");
    const [rows] = await t.query<mysql.RowDataPacket[]>("SELECT SUM(x) AS s FROM scratch");
    expect(Number(rows[0].s)).toBe(3);
  });

  test("tracked settings follow the session to whichever replica runs the read", async () => {
    const c = await client(port());
    await c.query("SET SESSION sql_mode = 'ANSI_QUOTES', time_zone = '+03:00'");
    for (let i = 0; i < 6; i++) {
      const [r] = await c.query<mysql.RowDataPacket[]>("SELECT @@sql_mode AS m, @@time_zone AS tz, @@server_id AS id");
      expect({ m: r[0].m, tz: r[0].tz }).toEqual({ m: "ANSI_QUOTES", tz: "+03:00" });
      expect([2, 3]).toContain(Number(r[0].id));
    }
    // another session on the same pool does not inherit them
    const d = await client(port());
    for (let i = 0; i < 6; i++) {
      const [r] = await d.query<mysql.RowDataPacket[]>("SELECT @@time_zone AS tz");
      expect(r[0].tz).toBe("SYSTEM");
    }
  });

  test("USE changes the schema for every later statement, on whichever connection runs it", async () => {
    const c = await client(port());
    await c.query("USE mysql");
    for (let i = 0; i < 4; i++) {
      const [r] = await c.query<mysql.RowDataPacket[]>("SELECT DATABASE() AS db, COUNT(*) AS n FROM db");
      expect(r[0].db).toBe("mysql");
    }
    await c.query("USE `shop`");
    for (let i = 0; i < 4; i++) {
      const [r] = await c.query<mysql.RowDataPacket[]>("SELECT DATABASE() AS db, COUNT(*) AS n FROM items");
      expect(r[0].db).toBe("shop");
    }
  });

  test("errors pass through with code and SQLSTATE, and the session goes on", async () => {
    const c = await client(port());
    await expect(c.query("SELECT * FROM no_such_table")).rejects.toMatchObject({ errno: 1146, sqlState: "42S02" });
    await expect(c.query("INSERT INTO items (id, name) VALUES (1, 'dup')")).rejects.toMatchObject({ errno: 1062, sqlState: "23000" });
    expect([1, 2, 3]).toContain(await serverId(c));
  });

  test("prepared statements: reads on replicas, writes on the primary, re-prepared on each backend connection", async () => {
    const c = await client(port());
    const ids = new Set<number>();
    for (let i = 0; i < 8; i++) {
      const [r] = await c.execute<mysql.RowDataPacket[]>("SELECT @@server_id AS id, name FROM items WHERE qty = ?", [5]);
      expect(r[0].name).toBe("pear");
      ids.add(Number(r[0].id));
    }
    expectReplicas(ids, multiplexed);
    const [ins] = await c.execute<mysql.ResultSetHeader>("INSERT INTO items (name, qty) VALUES (?, ?)", ["kiwi", 9]);
    const [direct] = await cluster.primary.query<{ name: string }>(`SELECT name FROM shop.items WHERE id = ${ins.insertId}`);
    expect(direct.name).toBe("kiwi");
    await expect(c.execute("SELECT * FROM items WHERE nope = ?", [1])).rejects.toMatchObject({ errno: 1054 });
    await c.execute("DELETE FROM items WHERE id = ?", [ins.insertId]);
  });
});

test("multiplexing: 40 clients share at most the pool's connections per backend, with correct results", async () => {
  const clients = await Promise.all(Array.from({ length: 40 }, () => client(ports.split)));
  const backendThreads = async (): Promise<number[]> =>
    Promise.all(
      cluster.servers.map(async (s) => {
        const [r] = await s.query<{ n: number }>(`SELECT COUNT(*) AS n FROM information_schema.PROCESSLIST WHERE USER = '${cluster.app.user}'`);
        return Number(r.n);
      }),
    );
  let peak = [0, 0, 0];
  const rounds = 15;
  await Promise.all(
    clients.map(async (c, i) => {
      for (let k = 0; k < rounds; k++) {
        if (k % 5 === 0) {
          const [res] = await c.query<mysql.ResultSetHeader>("UPDATE items SET qty = qty WHERE id = 1");
          expect(res.affectedRows).toBe(1); // mysql2 sets CLIENT_FOUND_ROWS: rows matched
        }
        const [r] = await c.query<mysql.RowDataPacket[]>(`SELECT ${i} AS me, name FROM items WHERE id = 2`);
        expect({ me: Number(r[0].me), name: r[0].name }).toEqual({ me: i, name: "pear" });
      }
      const now = await backendThreads();
      peak = peak.map((p, j) => Math.max(p, now[j]));
    }),
  );
  process.stdout.write(`multiplexing: 40 clients, peak backend connections per server ${JSON.stringify(peak)} (pool max ${POOL_MAX})\n`);
  for (const p of peak) expect(p).toBeLessThanOrEqual(POOL_MAX);
}, 60_000);

describe("query rules on a SPLIT listener", () => {
  test("deny gives the rule's error (1142/42000 by default) and the session goes on", async () => {
    const c = await client(ports.split);
    await expect(c.query("TRUNCATE TABLE items")).rejects.toMatchObject({ errno: 1142, sqlState: "42000", sqlMessage: "TRUNCATE is not allowed through mysqlgw; ask the DBA team" });
    const [n] = await cluster.primary.query<{ n: number }>("SELECT COUNT(*) AS n FROM shop.items");
    expect(Number(n.n)).toBeGreaterThanOrEqual(2);
    expect([2, 3]).toContain(await serverId(c));
  });

  test("route sends matching reads to the primary; rewrite changes the text; a rule may route to another cluster", async () => {
    const c = await client(ports.split);
    expect(await idsOver(c, 4, "/* report */ SELECT @@server_id AS id")).toEqual(new Set([1]));
    const [r] = await c.query<mysql.RowDataPacket[]>("SELECT name FROM legacy_items WHERE id = 2");
    expect(r[0].name).toBe("pear");
    expect(await idsOver(c, 4, "SELECT @@server_id AS id, 'archive_probe' AS p")).toEqual(new Set([3]));
    // cache: the second identical read within the TTL is answered from the cache (same NOW(6)); after it, afresh
    const cachedSql = "SELECT NOW(6) AS t, 'cached_probe' AS p";
    const [first] = await c.query<mysql.RowDataPacket[]>(cachedSql);
    const [second] = await c.query<mysql.RowDataPacket[]>(cachedSql);
    expect(second[0].t).toBe(first[0].t);
    await new Promise((r) => setTimeout(r, 1600));
    const [third] = await c.query<mysql.RowDataPacket[]>(cachedSql);
    expect(third[0].t).not.toBe(first[0].t);
    // mirror: each matching statement runs on the archive server too (its result discarded)
    const comSelect = async (): Promise<number> => {
      const [row] = await cluster.replicas[1].query<{ Value: string }>("SHOW GLOBAL STATUS LIKE 'Com_select'");
      return Number(row.Value);
    };
    const before = await comSelect();
    for (let i = 0; i < 5; i++) {
      const [m] = await c.query<mysql.RowDataPacket[]>(`/* mysqlgw:primary */ SELECT ${i} AS i, @@server_id AS id /* mirror_probe */`);
      expect({ i: Number(m[0].i), id: Number(m[0].id) }).toEqual({ i, id: 1 });
    }
    let mirrored = 0;
    for (let t = 0; t < 50 && mirrored < 5; t++) {
      await new Promise((r) => setTimeout(r, 50));
      mirrored = (await comSelect()) - before;
    }
    expect(mirrored).toBeGreaterThanOrEqual(5);
    // rules apply on every listener: the READ_WRITE listener's sessions are read statement by statement too
    const rw = await client(ports.rw);
    const [viaRw] = await rw.query<mysql.RowDataPacket[]>("SELECT name, @@server_id AS id FROM legacy_items WHERE id = 2");
    expect({ name: viaRw[0].name, id: Number(viaRw[0].id) }).toEqual({ name: "pear", id: 1 });
  });
});

describe("read-your-writes", () => {
  async function setReplicasApplying(on: boolean): Promise<void> {
    for (const r of cluster.replicas) await r.query(on ? "START SLAVE SQL_THREAD" : "STOP SLAVE SQL_THREAD");
  }

  test("with replicas not applying: a SESSION listener's read after a write sees it (from the primary); a NONE listener's does not", async () => {
    await setReplicasApplying(false);
    try {
      const ryw = await client(ports.ryw);
      const none = await client(ports.split);
      for (let i = 0; i < 5; i++) {
        const [a] = await ryw.query<mysql.ResultSetHeader>(`INSERT INTO items (name, qty) VALUES ('ryw-${i}', ${i})`);
        const [seen] = await ryw.query<mysql.RowDataPacket[]>(`SELECT COUNT(*) AS n, @@server_id AS id FROM items WHERE id = ${a.insertId}`);
        expect({ n: Number(seen[0].n), id: Number(seen[0].id) }).toEqual({ n: 1, id: 1 });
        const [b] = await none.query<mysql.ResultSetHeader>(`INSERT INTO items (name, qty) VALUES ('stale-${i}', ${i})`);
        const [stale] = await none.query<mysql.RowDataPacket[]>(`SELECT COUNT(*) AS n, @@server_id AS id FROM items WHERE id = ${b.insertId}`);
        expect(Number(stale[0].n)).toBe(0);
        expect([2, 3]).toContain(Number(stale[0].id));
      }
      // reads that do not follow a write of this session still go to replicas (the bound is per session)
      const fresh = await client(ports.ryw);
      expect([2, 3]).toContain(await serverId(fresh));
    } finally {
      await setReplicasApplying(true);
      await cluster.waitForReplicas();
    }
  });

  test("with replicas applying: reads after writes are served by a replica once it has caught up (MASTER_GTID_WAIT)", async () => {
    const ryw = await client(ports.ryw);
    const ids = new Set<number>();
    for (let i = 0; i < 6; i++) {
      const [a] = await ryw.query<mysql.ResultSetHeader>(`INSERT INTO items (name, qty) VALUES ('caught-${i}', ${i})`);
      const [seen] = await ryw.query<mysql.RowDataPacket[]>(`SELECT COUNT(*) AS n, @@server_id AS id FROM items WHERE id = ${a.insertId}`);
      expect(Number(seen[0].n)).toBe(1);
      ids.add(Number(seen[0].id));
    }
    expect([...ids].some((id) => id === 2 || id === 3)).toBe(true);
    await ryw.query("DELETE FROM items WHERE name LIKE 'caught-%' OR name LIKE 'ryw-%' OR name LIKE 'stale-%'");
  });
});

test("weighted round robin: replicas of weight 1 and 3 get a quarter and three quarters of the reads", async () => {
  const c = await client(ports.split);
  const n = 200;
  let db3 = 0;
  for (let i = 0; i < n; i++) if ((await serverId(c)) === 3) db3++;
  process.stdout.write(`weighted reads: ${db3} of ${n} to the weight-3 replica\n`);
  expect(db3 / n).toBeGreaterThan(0.65);
  expect(db3 / n).toBeLessThan(0.85);
});

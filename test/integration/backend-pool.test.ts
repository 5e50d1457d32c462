// Issue 4, point 6: the backend connection pool (data-plane/src/pool), driven
// directly against a real MariaDB: reuse, the bound on connections and on the
// wait (ERR 1040), the check on borrow after idleness, COM_RESET_CONNECTION of
// a dirty connection, max lifetime, idle timeout down to min idle, warm-up,
// close, and a rotated password.
import { Buffer } from "node:buffer";
import pino from "pino";
import { runProcess, sleep, startMariaDB, tempDir, waitFor, type MariaDBServer } from "../helpers";
import { toSqlError } from "../../data-plane/src/errors";
import { Capability, ResponseHeader } from "../../data-plane/src/protocol/constants";
import { PacketFramer } from "../../data-plane/src/protocol/framer";
import { PacketReader, framePayload } from "../../data-plane/src/protocol/codec";
import { parseErr } from "../../data-plane/src/protocol/packets/err";
import { buildInitDb, buildQuery } from "../../data-plane/src/protocol/packets/commands";
import { runBackendCommand } from "../../data-plane/src/pool/backend-command";
import { BackendPool, type PoolLogin, type PooledConnection } from "../../data-plane/src/pool/backend-pool";
import { DEFAULT_POOL_SETTINGS, type PoolSettings } from "../../data-plane/src/pool/pool-settings";

const USER = "pool_app";
const PASSWORD = "pool-app-pw-1";
const logger = pino({ level: "silent" });
let db: MariaDBServer;
const pools: BackendPool[] = [];

beforeAll(async () => {
  db = await startMariaDB({ accounts: [{ user: USER, password: PASSWORD }], name: "pool-db" });
  await db.query("CREATE DATABASE pooltest");
}, 60_000);

afterEach(() => {
  for (const p of pools.splice(0)) p.close();
});

/** Capabilities a connector typically asks for (without DEPRECATE_EOF, so that text result sets end with EOF packets). */
const CAPS = (Capability.LongPassword |
  Capability.LongFlag |
  Capability.Protocol41 |
  Capability.Transactions |
  Capability.SecureConnection |
  Capability.MultiStatements |
  Capability.MultiResults |
  Capability.PsMultiResults |
  Capability.PluginAuth |
  Capability.SessionTrack) >>> 0;

function login(over: Partial<PoolLogin> = {}): PoolLogin {
  return {
    clusterName: "main",
    target: { name: "db1", host: db.host, port: db.port, weight: 1 },
    tls: null,
    user: USER,
    password: PASSWORD,
    capabilities: CAPS,
    mariadbCapabilities: 0,
    characterSet: 45, // utf8mb4_general_ci
    maxPacketSize: 1 << 24,
    connectTimeoutMs: 2000,
    maxHandshakePacketSize: 1 << 16,
    ...over,
  };
}

function newPool(s: Partial<PoolSettings>, l: Partial<PoolLogin> = {}): BackendPool {
  const p = new BackendPool(login(l), { ...DEFAULT_POOL_SETTINGS, ...s }, logger);
  pools.push(p);
  return p;
}

/**
 * Runs a query whose answer is one text row, on a pooled connection (as the
 * session engine would, between acquire and release): the first row's
 * values, null for SQL NULL. Throws the ERR as { errno, message }.
 */
function queryRow(c: PooledConnection, sql: string): Promise<(string | null)[]> {
  const s = c.link.socket;
  return new Promise((resolve, reject) => {
    let columns = -1;
    let defsLeft = 0;
    let eofs = 0;
    let row: (string | null)[] | null = null;
    const done = (err: unknown): void => {
      clearTimeout(timer);
      s.removeListener("data", onData);
      s.pause();
      if (err !== null) reject(err);
      else resolve(row ?? []);
    };
    const f = new PacketFramer({ maxPacketSize: 1 << 24 }, (_seq, p) => {
      if (columns < 0) {
        if (p[0] === ResponseHeader.Err) return done(parseErr(p));
        columns = p[0];
        defsLeft = columns;
        return;
      }
      if (defsLeft > 0) return void defsLeft--;
      if (p[0] === ResponseHeader.Eof && p.length < 9) {
        if (++eofs === 2) done(null);
        return;
      }
      if (p[0] === ResponseHeader.Err) return done(parseErr(p));
      if (row === null) {
        const r = new PacketReader(p);
        row = [];
        for (let i = 0; i < columns; i++) {
          if (r.buf[r.pos] === 0xfb) {
            r.skip(1);
            row.push(null);
          } else {
            row.push(r.lenEncString());
          }
        }
      }
    });
    const onData = (d: Buffer): void => f.push(d);
    const timer = setTimeout(() => done(new Error(`no answer to ${sql} within 5 s`)), 5000);
    s.on("data", onData);
    s.write(framePayload(buildQuery(sql), 0));
    s.resume();
  });
}

/** Runs an OK-only command (SET …, CREATE TEMPORARY TABLE, …) and expects success. */
async function exec(c: PooledConnection, sql: string): Promise<void> {
  const o = await runBackendCommand(c.link.socket, buildQuery(sql), 2000);
  if (!o.ok) throw new Error(`${sql}: ${o.errno} ${o.message}`);
}

/** Server thread ids of USER's connections. */
async function serverThreads(): Promise<number[]> {
  const rows = await db.query<{ ID: number }>(`SELECT ID FROM information_schema.PROCESSLIST WHERE USER = ? ORDER BY ID`, [USER]);
  return rows.map((r) => Number(r.ID));
}

describe("backend pool against MariaDB", () => {
  it("reuses a released connection (same server thread), logged in without a database", async () => {
    const p = newPool({});
    const a = await p.acquire();
    expect(a.threadId).toBeGreaterThan(0);
    expect(await serverThreads()).toContain(a.threadId);
    expect(await queryRow(a, "SELECT CONNECTION_ID(), DATABASE(), CURRENT_USER()")).toEqual([String(a.threadId), null, `${USER}@%`]);
    p.release(a);
    const b = await p.acquire();
    expect(b.threadId).toBe(a.threadId);
    expect(await queryRow(b, "SELECT 1 + 1")).toEqual(["2"]);
    p.release(b);
    expect(p.stats()).toMatchObject({ total: 1, idle: 1, inUse: 0, created: 1 });
  });

  it("opens at most maxConnections; a waiter gets a released one; the wait is bounded by acquireTimeout (ERR 1040)", async () => {
    const p = newPool({ maxConnections: 2, acquireTimeoutMs: 300 });
    const [a, b] = await Promise.all([p.acquire(), p.acquire()]);
    expect(a.threadId).not.toBe(b.threadId);
    const waiter = p.acquire(5000);
    await sleep(50);
    expect(p.stats()).toMatchObject({ total: 2, waiting: 1 });
    p.release(a);
    expect((await waiter).threadId).toBe(a.threadId);

    const t0 = Date.now();
    const err = await p.acquire().catch((e: unknown) => e);
    const took = Date.now() - t0;
    expect(err).toMatchObject({ code: "MGW_ERR_POOL_TIMEOUT", name: "PoolTimeoutError" });
    expect(toSqlError(err)).toMatchObject({ errno: 1040, sqlState: "08004" });
    expect((err as Error).message).toContain(`backend 'db1' (127.0.0.1:${db.port}) as backend user '${USER}'`);
    expect((err as Error).message).toMatch(/within 300 ms: all 2 connections of its pool are in use; raise the cluster's pool\.maxConnections/);
    expect(took).toBeGreaterThanOrEqual(290);
    expect(took).toBeLessThan(800);
    expect(p.stats()).toMatchObject({ total: 2, timeouts: 1, waiting: 0 });
    expect((await serverThreads()).filter((t) => t === a.threadId || t === b.threadId)).toHaveLength(2);
  });

  it("checks a connection idle longer than checkAfterIdle: one the server killed is discarded and a working one lent", async () => {
    const p = newPool({ checkAfterIdleMs: 200 });
    const a = await p.acquire();
    const killed = a.threadId;
    p.release(a);
    await db.query(`KILL ${killed}`);
    await waitFor(async () => !(await serverThreads()).includes(killed), { timeoutMs: 5000, what: "the killed thread to go" });
    await sleep(250);
    const b = await p.acquire();
    expect(b.threadId).not.toBe(killed);
    expect(await queryRow(b, "SELECT CONNECTION_ID()")).toEqual([String(b.threadId)]);
    expect(p.stats()).toMatchObject({ checkFailures: 1, created: 2, closed: 1, total: 1 });
  });

  it("resets a dirty connection on release: user variables, temporary tables, session variables, locks, prepared statements and the transaction are gone on the next borrow; the database stays", async () => {
    const p = newPool({});
    const a = await p.acquire();
    const init = await runBackendCommand(a.link.socket, buildInitDb("pooltest"), 2000);
    expect(init.ok).toBe(true);
    a.schema = "pooltest";
    await exec(a, "SET @x = 42; SET SESSION sql_mode = 'ANSI_QUOTES'; SET NAMES latin1; CREATE TEMPORARY TABLE tmp_pool (a INT); INSERT INTO tmp_pool VALUES (1)");
    expect(await queryRow(a, "SELECT GET_LOCK('pool_lock', 0)")).toEqual(["1"]);
    await exec(a, "PREPARE pool_stmt FROM 'SELECT 1'; BEGIN");
    expect(await queryRow(a, "SELECT @x, @@session.sql_mode, @@character_set_client, (SELECT COUNT(*) FROM tmp_pool), @@in_transaction")).toEqual(["42", "ANSI_QUOTES", "latin1", "1", "1"]);
    a.settings.set("sql_mode", "'ANSI_QUOTES'");
    a.dirty = true;
    p.release(a);

    const b = await p.acquire();
    expect(b.threadId).toBe(a.threadId);
    expect(b.dirty).toBe(false);
    expect(b.settings.size).toBe(0);
    expect(p.stats().resets).toBe(1);
    const [globalMode] = await db.query<{ m: string }>("SELECT @@global.sql_mode AS m");
    expect(await queryRow(b, "SELECT @x IS NULL, @@session.sql_mode, @@character_set_client, DATABASE()")).toEqual([
      "1",
      globalMode.m,
      // the login's collation (utf8mb4), not the server default: MariaDB keeps the handshake's character set
      "utf8mb4",
      // MariaDB 10.11 keeps the current database across COM_RESET_CONNECTION
      "pooltest",
    ]);
    expect(b.schema).toBe("pooltest");
    await expect(queryRow(b, "SELECT COUNT(*) FROM tmp_pool")).rejects.toMatchObject({ errno: 1146 });
    // the transaction was rolled back, the named lock released, the prepared statement dropped
    expect(await queryRow(b, "SELECT @@in_transaction, IS_USED_LOCK('pool_lock') IS NULL")).toEqual(["0", "1"]);
    await expect(exec(b, "EXECUTE pool_stmt")).rejects.toThrow(/^EXECUTE pool_stmt: 1243 /);
    p.release(b);
  });

  it("closes a connection past its max lifetime when released; the next borrow logs in anew", async () => {
    const p = newPool({ maxLifetimeMs: 300 });
    const a = await p.acquire();
    await sleep(320);
    p.release(a);
    expect(p.stats()).toMatchObject({ total: 0, closed: 1 });
    await waitFor(async () => !(await serverThreads()).includes(a.threadId), { timeoutMs: 5000, what: "the expired connection to close on the server" });
    const b = await p.acquire();
    expect(b.threadId).not.toBe(a.threadId);
    p.release(b);
  });

  it("sweep closes idle connections unused for idleTimeout down to minIdle, keeping the most recently used", async () => {
    const p = newPool({ idleTimeoutMs: 200, minIdle: 1 });
    const cs = await Promise.all([p.acquire(), p.acquire(), p.acquire()]);
    for (const c of cs) p.release(c);
    p.sweep(Date.now());
    expect(p.stats().idle).toBe(3);
    await sleep(220);
    p.sweep(Date.now());
    expect(p.stats()).toMatchObject({ idle: 1, total: 1, closed: 2 });
    const gone = [cs[0].threadId, cs[1].threadId];
    await waitFor(async () => (await serverThreads()).every((t) => !gone.includes(t)), { timeoutMs: 5000, what: "the idle connections to close on the server" });
    expect(await serverThreads()).toContain(cs[2].threadId);
    expect((await p.acquire()).threadId).toBe(cs[2].threadId);
  });

  it("sweep warms up to minIdle connections, then close closes them all on the server", async () => {
    const before = await serverThreads();
    const p = newPool({ minIdle: 2 });
    p.sweep(Date.now());
    await waitFor(() => p.stats().idle === 2, { timeoutMs: 5000, what: "2 idle connections" });
    const mine = (await serverThreads()).filter((t) => !before.includes(t));
    expect(mine).toHaveLength(2);
    p.sweep(Date.now());
    expect(p.stats()).toMatchObject({ idle: 2, total: 2, created: 2 });
    p.close();
    await waitFor(async () => (await serverThreads()).every((t) => !mine.includes(t)), { timeoutMs: 5000, what: "the pool's connections to close on the server" });
    await expect(p.acquire()).rejects.toMatchObject({ code: "MGW_ERR_SERVER_SHUTDOWN" });
  });

  it("runBackendCommand on a pooled connection: ERR answers leave it usable, a result set is refused and the connection must be discarded", async () => {
    const p = newPool({});
    const a = await p.acquire();
    const unknownDb = await runBackendCommand(a.link.socket, buildInitDb("no_such_db"), 2000);
    expect(unknownDb).toMatchObject({ ok: false, errno: 1049, sqlState: "42000", leftover: null });
    expect(unknownDb.message).toMatch(/Unknown database 'no_such_db'/);
    // a multi-statement stops at its first error; what ran before it stays
    const multi = await runBackendCommand(a.link.socket, buildQuery("SET @m1 = 1; SET @@session.no_such_variable = 2; SET @m3 = 3"), 2000);
    expect(multi).toMatchObject({ ok: false, errno: 1193 });
    expect(await queryRow(a, "SELECT @m1, @m3")).toEqual(["1", null]);
    const set = await runBackendCommand(a.link.socket, buildQuery("SET autocommit = 0; SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED"), 2000);
    expect(set.ok).toBe(true);
    expect(set.statusFlags & 0x0002).toBe(0); // SERVER_STATUS_AUTOCOMMIT off
    await expect(runBackendCommand(a.link.socket, buildQuery("SELECT 1"), 2000)).rejects.toMatchObject({ code: "MGW_ERR_BACKEND_PROTOCOL" });
    expect(a.link.socket.destroyed).toBe(true);
    p.discard(a);
    expect(p.stats()).toMatchObject({ total: 0, closed: 1 });
    const b = await p.acquire();
    expect(await queryRow(b, "SELECT @@autocommit")).toEqual(["1"]);
    p.release(b);
  });

  it("a rotated password is used for new logins; open connections stay; a wrong one rejects with the server's 1045", async () => {
    const p = newPool({ maxConnections: 2 });
    const a = await p.acquire();
    await db.query(`ALTER USER '${USER}'@'%' IDENTIFIED BY 'pool-app-pw-2'`);
    try {
      await expect(p.acquire()).rejects.toMatchObject({ code: "MGW_ERR_BACKEND_REJECTED", errno: 1045 });
      p.updateLogin(login({ password: "pool-app-pw-2" }));
      const b = await p.acquire();
      expect(await queryRow(b, "SELECT 1")).toEqual(["1"]);
      expect(await queryRow(a, "SELECT 2")).toEqual(["2"]);
    } finally {
      await db.query(`ALTER USER '${USER}'@'%' IDENTIFIED BY '${PASSWORD}'`);
    }
  });
});

describe("backend pool over TLS", () => {
  let tlsDb: MariaDBServer;
  beforeAll(async () => {
    const dir = tempDir("pool-tls");
    const r = await runProcess(
      "openssl",
      ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", `${dir}/key.pem`, "-out", `${dir}/cert.pem`, "-days", "2", "-subj", "/CN=localhost"],
      { timeoutMs: 30_000 },
    );
    if (r.code !== 0) throw new Error(`openssl: ${r.stderr}`);
    tlsDb = await startMariaDB({
      accounts: [{ user: USER, password: PASSWORD }],
      name: "pool-tls-db",
      extraArgs: [`--ssl-cert=${dir}/cert.pem`, `--ssl-key=${dir}/key.pem`],
    });
  }, 60_000);

  it("checks, resets and reuses TLS connections (tls.mode REQUIRED)", async () => {
    const p = new BackendPool(
      login({ target: { name: "tls1", host: tlsDb.host, port: tlsDb.port, weight: 1 }, tls: { mode: "required", ca: null, serverName: "", error: null } }),
      { ...DEFAULT_POOL_SETTINGS, checkAfterIdleMs: 50 },
      logger,
    );
    pools.push(p);
    const a = await p.acquire();
    const [version] = await queryRow(a, "SELECT VARIABLE_VALUE FROM information_schema.SESSION_STATUS WHERE VARIABLE_NAME = 'Ssl_version'");
    expect(version).toMatch(/^TLSv1\.[23]$/);
    await exec(a, "SET @x = 1");
    a.dirty = true;
    p.release(a);
    await sleep(80); // idle past checkAfterIdle: a COM_PING over TLS on the next borrow
    const b = await p.acquire();
    expect(b.threadId).toBe(a.threadId);
    expect(await queryRow(b, "SELECT @x IS NULL")).toEqual(["1"]);
    expect(p.stats()).toMatchObject({ resets: 1, checkFailures: 0, created: 1 });
    p.release(b);
  });
});

describe("backend pool toward a server expecting PROXY headers", () => {
  it("logs in without a header from a proxy-protocol network: the server sees the gateway's address (pooled connections serve many clients)", async () => {
    const proxied = await startMariaDB({ accounts: [{ user: USER, password: PASSWORD }], name: "pool-proxy-db", extraArgs: ["--proxy-protocol-networks=127.0.0.0/8"] });
    const p = new BackendPool(login({ target: { name: "px1", host: proxied.host, port: proxied.port, weight: 1 } }), DEFAULT_POOL_SETTINGS, logger);
    pools.push(p);
    const c = await p.acquire();
    const [row] = await proxied.query<{ HOST: string }>("SELECT HOST FROM information_schema.PROCESSLIST WHERE ID = ?", [c.threadId]);
    expect(row.HOST).toMatch(/^127\.0\.0\.1:\d+$/);
    p.release(c);
  });
});

describe("backend pool across a server restart", () => {
  it("after a restart, the check on borrow discards every stale idle connection and a new login serves; while the server is down, acquire fails with the login's error", async () => {
    const p = newPool({ checkAfterIdleMs: 100 });
    const cs = await Promise.all([p.acquire(), p.acquire(), p.acquire()]);
    for (const c of cs) p.release(c);
    await db.stop();
    await sleep(120);
    await expect(p.acquire()).rejects.toMatchObject({ code: "MGW_ERR_BACKEND_CONNECT" });
    expect(p.stats()).toMatchObject({ total: 0, checkFailures: 3 });
    await db.restart();
    const c = await p.acquire();
    expect(await queryRow(c, "SELECT 1")).toEqual(["1"]);
    expect(p.stats()).toMatchObject({ total: 1, created: 4, closed: 3 });
    p.release(c);
  });
});

// Issue 4, point 5: the query rules' mirror action (data-plane/src/session/mirror.ts),
// driven directly with a real PoolManager against two real MariaDB servers with
// the same account: "main" plays the client's backend, "shadow" the mirror
// cluster. Mirrored INSERTs arrive on the shadow (in its schema); a slow
// mirror never delays the caller (send() returns in well under 1 ms) and what
// is over maxInFlight is dropped and counted; a mirror past its timeout is
// discarded and counted; a shadow that is down only counts failures.
import { Buffer } from "node:buffer";
import pino from "pino";
import { sleep, startMariaDB, waitFor, type MariaDBServer } from "../helpers";
import { framePayload } from "../../data-plane/src/protocol/codec";
import { Capability } from "../../data-plane/src/protocol/constants";
import { buildQuery } from "../../data-plane/src/protocol/packets/commands";
import { PoolManager, type PoolLogin } from "../../data-plane/src/pool/backend-pool";
import { DEFAULT_POOL_SETTINGS, type PoolSettings } from "../../data-plane/src/pool/pool-settings";
import { Mirror, mirrorLogin } from "../../data-plane/src/session/mirror";
import { createClusterRuntime, type ClusterSnapshot } from "../../data-plane/src/session/config-snapshot";

const USER = "mirror_app";
const PASSWORD = "mirror-app-pw-1";
const logger = pino({ level: "silent" });
let main: MariaDBServer;
let shadow: MariaDBServer;
let pools: PoolManager;
const mirrors: Mirror[] = [];

/** A typical connector's capabilities, with CLIENT_DEPRECATE_EOF (so result sets end with an OK). */
const CAPS = (Capability.LongPassword |
  Capability.LongFlag |
  Capability.Protocol41 |
  Capability.Transactions |
  Capability.SecureConnection |
  Capability.MultiStatements |
  Capability.MultiResults |
  Capability.PsMultiResults |
  Capability.PluginAuth |
  Capability.SessionTrack |
  Capability.DeprecateEof) >>>
  0;

const SETTINGS: PoolSettings = { ...DEFAULT_POOL_SETTINGS, maxConnections: 8 };

beforeAll(async () => {
  [main, shadow] = await Promise.all([
    startMariaDB({ accounts: [{ user: USER, password: PASSWORD }], name: "mirror-main" }),
    startMariaDB({ accounts: [{ user: USER, password: PASSWORD }], name: "mirror-shadow", serverId: 2 }),
  ]);
  for (const db of [main, shadow]) {
    await db.query("CREATE DATABASE shop");
    await db.query("CREATE TABLE shop.orders (id INT PRIMARY KEY, note VARCHAR(64))");
  }
  pools = new PoolManager(logger);
}, 90_000);

afterAll(() => {
  for (const m of mirrors) m.close();
  pools?.close();
});

/** The shadow cluster as a session would see it (one backend). */
function shadowCluster(server: { host: string; port: number }): ClusterSnapshot {
  const backend = { name: "shadow1", host: server.host, port: server.port, weight: 1 };
  return { name: "shadow", backends: [backend], ring: [0], runtime: createClusterRuntime("shadow"), tls: null, sendProxyProtocol: false, pool: SETTINGS };
}

/** The session's own pool login (to main), from which the mirror's is derived. */
function sessionLogin(): PoolLogin {
  return {
    clusterName: "main",
    target: { name: "main1", host: main.host, port: main.port, weight: 1 },
    tls: null,
    user: USER,
    password: PASSWORD,
    capabilities: CAPS,
    mariadbCapabilities: 0,
    characterSet: 45,
    maxPacketSize: 1 << 24,
    connectTimeoutMs: 2000,
    maxHandshakePacketSize: 1 << 16,
  };
}

function shadowLogin(server: { host: string; port: number } = shadow): PoolLogin {
  const c = shadowCluster(server);
  return mirrorLogin(sessionLogin(), c, c.backends[0]);
}

/** A COM_QUERY packet as a client sends it (sequence id 0). */
const packet = (sql: string): Buffer => framePayload(buildQuery(sql), 0);

function newMirror(options: ConstructorParameters<typeof Mirror>[2]): Mirror {
  const m = new Mirror(pools, logger, options);
  mirrors.push(m);
  return m;
}

/** Waits until nothing is in flight. */
async function settled(m: Mirror, timeoutMs = 10_000): Promise<void> {
  await waitFor(() => m.stats().inFlight === 0, { timeoutMs, what: "mirrored statements to finish" });
}

describe("query mirror against two MariaDB servers", () => {
  it("mirrored INSERTs arrive on the shadow, in the session's schema; responses (a large SELECT too) are read whole and the connection reused", async () => {
    const m = newMirror({ maxInFlight: 64, timeoutMs: 5000 });
    const login = shadowLogin();
    for (let i = 1; i <= 20; i++) {
      const sql = `INSERT INTO orders VALUES (${i}, 'note ${i}')`;
      await main.query(`INSERT INTO shop.orders VALUES (${i}, 'note ${i}')`); // what the client ran
      m.send(login, SETTINGS, packet(sql), "shop", true);
      if (i % 5 === 0) await settled(m); // a few at a time: also exercises reuse of an idle connection
    }
    // a large result (several chunks, rows over 16 MiB in total would be the same code path) read and discarded
    m.send(login, SETTINGS, packet("SELECT REPEAT('x', 60000) FROM seq_1_to_300"), "shop", true);
    // an error from the mirror is counted as an answer, not a failure
    m.send(login, SETTINGS, packet("INSERT INTO orders VALUES (1, 'duplicate')"), "shop", true);
    await settled(m);

    const rows = await shadow.query<{ id: number; note: string }>("SELECT id, note FROM shop.orders ORDER BY id");
    expect(rows).toHaveLength(20);
    expect(rows[0]).toEqual({ id: 1, note: "note 1" });
    expect(rows[19]).toEqual({ id: 20, note: "note 20" });
    expect(m.stats()).toEqual({ sent: 22, dropped: 0, failed: 0, inFlight: 0, completed: 22, errors: 1 });
    const st = pools.pool(login, SETTINGS).stats();
    expect(st.inUse).toBe(0);
    expect(st.created).toBeLessThanOrEqual(5); // at most 5 at once, then reused
    expect(st).toMatchObject({ resets: 0 }); // plain INSERT/SELECT leave no session state: no reset needed
  });

  it("a mirrored statement that may leave session state makes its connection reset before reuse", async () => {
    const m = newMirror({ maxInFlight: 64, timeoutMs: 5000 });
    const login = shadowLogin();
    const pool = pools.pool(login, SETTINGS);
    const before = pool.stats().resets;
    m.send(login, SETTINGS, packet("SET @mirrored = 1"), "shop", true);
    await settled(m);
    await waitFor(() => pool.stats().resets === before + 1, { timeoutMs: 5000, what: "the reset of the mirror connection" });
    expect(m.stats()).toMatchObject({ sent: 1, completed: 1, failed: 0 });
  });

  it("a slow mirror never delays the caller: send() returns at once, what is over maxInFlight is dropped and counted", async () => {
    const m = newMirror({ maxInFlight: 3, timeoutMs: 10_000 });
    const login = shadowLogin();
    const took: number[] = [];
    for (let i = 0; i < 10; i++) {
      const p = packet(`SELECT SLEEP(2), ${i}`);
      const t0 = process.hrtime.bigint();
      m.send(login, SETTINGS, p, "shop", true);
      took.push(Number(process.hrtime.bigint() - t0) / 1e6);
    }
    // the caller's own statement meanwhile (on main) is not slowed by the mirror
    const t0 = Date.now();
    expect(await main.query("SELECT COUNT(*) AS n FROM shop.orders")).toEqual([{ n: "20" }]);
    const callerMs = Date.now() - t0;
    expect(m.stats()).toMatchObject({ inFlight: 3, dropped: 7 });
    await sleep(300);
    expect(await shadow.query("SELECT COUNT(*) AS n FROM information_schema.PROCESSLIST WHERE INFO LIKE 'SELECT SLEEP(2)%'")).toEqual([{ n: "3" }]);
    await settled(m);
    expect(m.stats()).toEqual({ sent: 3, dropped: 7, failed: 0, inFlight: 0, completed: 3, errors: 0 });
    took.sort((a, b) => a - b);
    process.stdout.write(`mirror send(): median ${took[5].toFixed(3)} ms, max ${took[9].toFixed(3)} ms; caller's query ${callerMs} ms\n`);
    expect(took[9]).toBeLessThan(1);
    expect(callerMs).toBeLessThan(1000);
  });

  it("a mirrored statement past its timeout is counted as failed and its connection discarded", async () => {
    const m = newMirror({ maxInFlight: 8, timeoutMs: 400 });
    const login = shadowLogin();
    const pool = pools.pool(login, SETTINGS);
    const closed = pool.stats().closed;
    m.send(login, SETTINGS, packet("SELECT SLEEP(3)"), "shop", true);
    await settled(m, 3000);
    expect(m.stats()).toMatchObject({ sent: 1, failed: 1, completed: 0, inFlight: 0 });
    expect(pool.stats()).toMatchObject({ closed: closed + 1, inUse: 0 });
  });

  it("a full pool drops instead of queueing", async () => {
    const small: PoolSettings = { ...SETTINGS, maxConnections: 1 };
    const m = newMirror({ maxInFlight: 8, timeoutMs: 5000 });
    const login = { ...shadowLogin(), clusterName: "shadow-small" };
    m.send(login, small, packet("SELECT SLEEP(0.5)"), "shop", true);
    await waitFor(() => pools.pool(login, small).stats().inUse === 1, { timeoutMs: 3000, what: "the one connection to be lent" });
    m.send(login, small, packet("SELECT 1"), "shop", true);
    expect(m.stats()).toMatchObject({ dropped: 1, inFlight: 1 });
    await settled(m);
    expect(m.stats()).toMatchObject({ sent: 1, completed: 1, dropped: 1, failed: 0 });
  });

  it("a shadow that is down: failures counted, nothing thrown, the caller unaffected", async () => {
    const m = newMirror({ maxInFlight: 64, timeoutMs: 3000 });
    const down = { host: shadow.host, port: shadow.port };
    const login = { ...shadowLogin(down), clusterName: "shadow-down" };
    await shadow.stop();
    const unhandled: unknown[] = [];
    const onUnhandled = (r: unknown): void => void unhandled.push(r);
    process.on("unhandledRejection", onUnhandled);
    try {
      for (let i = 0; i < 5; i++) expect(() => m.send(login, SETTINGS, packet(`INSERT INTO orders VALUES (${100 + i}, 'lost')`), "shop", true)).not.toThrow();
      await settled(m);
      expect(m.stats()).toEqual({ sent: 0, dropped: 0, failed: 5, inFlight: 0, completed: 0, errors: 0 });
      expect(await main.query("SELECT 1 AS one")).toEqual([{ one: 1 }]);
      await sleep(50);
      expect(unhandled).toEqual([]);
    } finally {
      process.off("unhandledRejection", onUnhandled);
    }
  });
});

import { Buffer } from "node:buffer";
import * as net from "node:net";
import fc from "fast-check";
import pino from "pino";
import { toSqlError } from "../errors";
import { PacketFramer } from "../protocol/framer";
import { Capability, Command, ServerStatus } from "../protocol/constants";
import { buildHandshakeV10 } from "../protocol/packets/handshake-v10";
import { buildErr } from "../protocol/packets/err";
import { buildOk } from "../protocol/packets/ok";
import { BackendPool, PoolManager, poolKey, type PoolLogin, type PooledConnection } from "./backend-pool";
import { DEFAULT_POOL_SETTINGS, type PoolSettings } from "./pool-settings";

const silent = pino({ level: "silent" });

/**
 * A fake backend that logs anyone in (no password check) and answers
 * COM_PING / COM_RESET_CONNECTION with OK, COM_QUIT by closing. Knobs make it
 * refuse logins or stop answering.
 */
async function fakeBackend() {
  const sockets = new Set<net.Socket>();
  const state = { logins: 0, pings: 0, resets: 0, quits: 0, refuse: false, silent: false, nextId: 100 };
  const server = net.createServer((s) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
    s.on("error", () => {});
    let loggedIn = false;
    const f = new PacketFramer({ maxPacketSize: 1 << 20 }, (seq, p) => {
      if (!loggedIn) {
        if (state.refuse) {
          s.end(buildErr({ errno: 1045, sqlState: "28000", message: "Access denied for user 'app'@'localhost'" }, seq + 1));
          return;
        }
        loggedIn = true;
        state.logins++;
        s.write(buildOk({ statusFlags: ServerStatus.Autocommit }, 0, seq + 1));
        return;
      }
      if (state.silent) return;
      if (p[0] === Command.Ping) state.pings++;
      if (p[0] === Command.ResetConnection) state.resets++;
      if (p[0] === Command.Quit) {
        state.quits++;
        s.end();
        return;
      }
      s.write(buildOk({ statusFlags: ServerStatus.Autocommit }, 0, seq + 1));
    });
    s.on("data", (d) => f.push(d));
    s.write(
      buildHandshakeV10({
        protocolVersion: 10,
        serverVersion: "5.5.5-10.11.6-MariaDB",
        connectionId: state.nextId++,
        authPluginData: Buffer.from("abcdefghij0123456789"),
        capabilities: 0xf7fffffe & ~Capability.Ssl,
        mariadbCapabilities: 0,
        characterSet: 45,
        statusFlags: 2,
        authPluginName: "mysql_native_password",
      }),
    );
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as net.AddressInfo).port;
  return {
    port,
    state,
    sockets,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

function login(port: number, over: Partial<PoolLogin> = {}): PoolLogin {
  return {
    clusterName: "orders",
    target: { name: "db1", host: "127.0.0.1", port, weight: 1 },
    tls: null,
    user: "app",
    password: "pw",
    capabilities: (Capability.Protocol41 | Capability.Transactions | Capability.MultiResults | Capability.DeprecateEof) >>> 0,
    mariadbCapabilities: 0,
    characterSet: 45,
    maxPacketSize: 1 << 24,
    connectTimeoutMs: 1000,
    maxHandshakePacketSize: 1 << 16,
    ...over,
  };
}

const settings = (over: Partial<PoolSettings> = {}): PoolSettings => ({ ...DEFAULT_POOL_SETTINGS, ...over });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe("BackendPool (fake backend)", () => {
  let be: Awaited<ReturnType<typeof fakeBackend>>;
  let pool: BackendPool | null = null;
  beforeEach(async () => {
    be = await fakeBackend();
  });
  afterEach(async () => {
    pool?.close();
    pool = null;
    await be.close();
  });

  it("reuses the most recently released connection and counts", async () => {
    pool = new BackendPool(login(be.port), settings(), silent);
    const a = await pool.acquire();
    const b = await pool.acquire();
    expect(a.threadId).not.toBe(b.threadId);
    expect(pool.stats()).toMatchObject({ total: 2, idle: 0, inUse: 2, created: 2 });
    pool.release(a);
    pool.release(b);
    expect((await pool.acquire()).id).toBe(b.id); // LIFO
    expect(pool.stats()).toMatchObject({ total: 2, idle: 1, inUse: 1, created: 2, closed: 0 });
    expect(be.state.logins).toBe(2);
    expect(be.state.pings).toBe(0); // not idle long enough to be checked
  });

  it("waits first come first served, hands a released connection to the longest waiter, and times out with 1040", async () => {
    pool = new BackendPool(login(be.port), settings({ maxConnections: 1, acquireTimeoutMs: 200 }), silent);
    const a = await pool.acquire();
    const order: number[] = [];
    const w1 = pool.acquire().then((c) => (order.push(1), c));
    const w2 = pool.acquire(5000).then((c) => (order.push(2), c));
    expect(pool.stats().waiting).toBe(2);
    pool.release(a);
    const got1 = await w1;
    expect(got1.id).toBe(a.id);
    pool.release(got1);
    expect((await w2).id).toBe(a.id);
    expect(order).toEqual([1, 2]);

    const t0 = Date.now();
    const err = await pool.acquire().catch((e: unknown) => e);
    const took = Date.now() - t0;
    expect(took).toBeGreaterThanOrEqual(190);
    expect(took).toBeLessThan(1000);
    expect(err).toMatchObject({ code: "MGW_ERR_POOL_TIMEOUT" });
    expect(toSqlError(err)).toMatchObject({ errno: 1040, sqlState: "08004" });
    expect((err as Error).message).toMatch(/backend 'db1' \(127\.0\.0\.1:\d+\) as backend user 'app' .*within 200 ms: all 1 connections .*raise the cluster's pool\.maxConnections/);
    expect(pool.stats()).toMatchObject({ timeouts: 1, waiting: 0 });
  });

  it("a discard frees the slot: a waiter gets a new login", async () => {
    pool = new BackendPool(login(be.port), settings({ maxConnections: 1 }), silent);
    const a = await pool.acquire();
    const w = pool.acquire();
    pool.discard(a);
    const b = await w;
    expect(b.id).not.toBe(a.id);
    expect(a.link.socket.destroyed).toBe(true);
    expect(pool.stats()).toMatchObject({ total: 1, created: 2, closed: 1 });
    pool.discard(a); // twice: ignored
    expect(pool.stats().closed).toBe(1);
  });

  it("resets a dirty connection before lending it again, clearing what the session recorded", async () => {
    pool = new BackendPool(login(be.port), settings(), silent);
    const a = await pool.acquire();
    a.settings.set("sql_mode", "''");
    a.statements.set("SELECT ?", { id: 1 });
    a.schema = "shop";
    a.dirty = true;
    pool.release(a);
    expect(pool.stats()).toMatchObject({ idle: 0, inUse: 1 });
    const b = await pool.acquire(); // waits for the reset rather than logging in a second connection
    expect(b.id).toBe(a.id);
    expect(be.state.resets).toBe(1);
    expect(pool.stats()).toMatchObject({ resets: 1, created: 1 });
    expect(b.dirty).toBe(false);
    expect(b.settings.size).toBe(0);
    expect(b.statements.size).toBe(0);
    expect(b.schema).toBe("shop"); // MariaDB keeps the current database across COM_RESET_CONNECTION
  });

  it("checks a connection idle longer than checkAfterIdle; a failed check discards it and the next is tried", async () => {
    pool = new BackendPool(login(be.port, { connectTimeoutMs: 200 }), settings({ checkAfterIdleMs: 30 }), silent);
    const a = await pool.acquire();
    pool.release(a);
    await sleep(60);
    const b = await pool.acquire();
    expect(b.id).toBe(a.id);
    expect(be.state.pings).toBe(1);
    pool.release(b);
    await sleep(60);
    be.state.silent = true; // the check times out
    const c = await pool.acquire();
    expect(c.id).not.toBe(a.id);
    expect(pool.stats()).toMatchObject({ checkFailures: 1, total: 1, created: 2 });
  });

  it("closes a connection past its max lifetime on release", async () => {
    let now = 1_000_000;
    pool = new BackendPool(login(be.port), settings({ maxLifetimeMs: 1000 }), silent, { now: () => now });
    const a = await pool.acquire();
    now += 1000;
    pool.release(a);
    expect(pool.stats()).toMatchObject({ total: 0, closed: 1 });
    for (let i = 0; i < 100 && be.state.quits === 0; i++) await sleep(10);
    expect(be.state.quits).toBe(1); // closed politely with COM_QUIT
  });

  it("sweep closes idle connections unused for idleTimeout down to minIdle, then warms up to minIdle", async () => {
    let now = 1_000_000;
    pool = new BackendPool(login(be.port), settings({ idleTimeoutMs: 1000, minIdle: 1 }), silent, { now: () => now });
    const cs = await Promise.all([pool.acquire(), pool.acquire(), pool.acquire()]);
    for (const c of cs) pool.release(c);
    now += 999;
    pool.sweep(now);
    expect(pool.stats().idle).toBe(3);
    now += 1;
    pool.sweep(now);
    expect(pool.stats()).toMatchObject({ idle: 1, total: 1, closed: 2 });
    // the most recently released one is kept
    expect((await pool.acquire()).id).toBe(cs[2].id);
    pool.sweep(now); // 0 idle, 1 lent: opens one idle
    for (let i = 0; i < 100 && pool.stats().idle < 1; i++) await sleep(10);
    expect(pool.stats()).toMatchObject({ idle: 1, total: 2, created: 4 });
  });

  it("closes a connection released with a data listener or unread bytes (unknown state)", async () => {
    pool = new BackendPool(login(be.port), settings(), silent);
    const a = await pool.acquire();
    const onData = (): void => {};
    a.link.socket.on("data", onData);
    pool.release(a);
    expect(a.link.socket.destroyed).toBe(true);
    expect(pool.stats()).toMatchObject({ total: 0, closed: 1 });
  });

  it("a lowered maxConnections closes connections beyond it on release and sweep", async () => {
    pool = new BackendPool(login(be.port), settings({ maxConnections: 3 }), silent);
    const cs = await Promise.all([pool.acquire(), pool.acquire(), pool.acquire()]);
    pool.release(cs[0]);
    pool.updateSettings(settings({ maxConnections: 1 }));
    pool.sweep();
    expect(pool.stats()).toMatchObject({ total: 2, idle: 0 });
    pool.release(cs[1]);
    expect(pool.stats()).toMatchObject({ total: 1, idle: 0 });
    pool.release(cs[2]);
    expect(pool.stats()).toMatchObject({ total: 1, idle: 1, closed: 2 });
  });

  it("a failed login rejects acquire with the handshake's error, and rejects a waiter served by a new login", async () => {
    pool = new BackendPool(login(be.port), settings({ maxConnections: 1 }), silent);
    const a = await pool.acquire();
    const w = pool.acquire(5000).catch((e: unknown) => e);
    be.state.refuse = true;
    pool.discard(a);
    expect(await w).toMatchObject({ code: "MGW_ERR_BACKEND_REJECTED", errno: 1045 });
    await expect(pool.acquire()).rejects.toMatchObject({ code: "MGW_ERR_BACKEND_REJECTED" });
    expect(pool.stats().total).toBe(0);
  });

  it("close rejects waiters, closes idle ones at once and lent ones on release", async () => {
    pool = new BackendPool(login(be.port), settings({ maxConnections: 2 }), silent);
    const [a, b] = await Promise.all([pool.acquire(), pool.acquire()]);
    pool.release(a);
    const w = pool.acquire(5000).catch((e: unknown) => e);
    const w2 = pool.acquire(5000).catch((e: unknown) => e);
    expect((await w as { id: number }).id).toBe(a.id);
    pool.close();
    expect(await w2).toMatchObject({ code: "MGW_ERR_SERVER_SHUTDOWN" });
    await expect(pool.acquire()).rejects.toMatchObject({ code: "MGW_ERR_SERVER_SHUTDOWN" });
    pool.release(b);
    pool.release(a);
    expect(pool.stats()).toMatchObject({ total: 0, idle: 0 });
  });
});

describe("BackendPool invariants (random operation sequences, fake backend)", () => {
  type Op =
    | { t: "acquire"; n: number }
    | { t: "release"; i: number; dirty: boolean }
    | { t: "discard"; i: number }
    | { t: "sweep"; advanceMs: number };
  const op: fc.Arbitrary<Op> = fc.oneof(
    fc.record({ t: fc.constant("acquire" as const), n: fc.integer({ min: 1, max: 4 }) }),
    fc.record({ t: fc.constant("release" as const), i: fc.nat(), dirty: fc.boolean() }),
    fc.record({ t: fc.constant("discard" as const), i: fc.nat() }),
    fc.record({ t: fc.constant("sweep" as const), advanceMs: fc.integer({ min: 0, max: 3000 }) }),
  );

  it("never lends a connection twice or more than maxConnections, serves or times out every acquire, and leaks no server connection", async () => {
    const be = await fakeBackend();
    try {
      await fc.assert(
        fc.asyncProperty(fc.array(op, { minLength: 1, maxLength: 25 }), fc.integer({ min: 1, max: 3 }), fc.integer({ min: 0, max: 2 }), async (ops, max, minIdle) => {
          let now = 1_000_000;
          const s = settings({ maxConnections: max, minIdle: Math.min(minIdle, max), acquireTimeoutMs: 40, idleTimeoutMs: 1000, maxLifetimeMs: 5000, checkAfterIdleMs: 500 });
          const pool = new BackendPool(login(be.port), s, silent, { now: () => now });
          const held: PooledConnection[] = [];
          try {
            for (const o of ops) {
              if (o.t === "acquire") {
                const results = await Promise.allSettled(Array.from({ length: o.n }, () => pool.acquire()));
                for (const r of results) {
                  if (r.status === "fulfilled") {
                    expect(held.some((h) => h.id === r.value.id)).toBe(false);
                    expect(r.value.link.socket.destroyed).toBe(false);
                    held.push(r.value);
                  } else {
                    expect(r.reason).toMatchObject({ code: "MGW_ERR_POOL_TIMEOUT" });
                  }
                }
              } else if (o.t === "release" && held.length > 0) {
                const [c] = held.splice(o.i % held.length, 1);
                c.dirty = o.dirty;
                pool.release(c);
              } else if (o.t === "discard" && held.length > 0) {
                const [c] = held.splice(o.i % held.length, 1);
                pool.discard(c);
              } else if (o.t === "sweep") {
                now += o.advanceMs;
                pool.sweep(now);
              }
              await sleep(2); // let resets and warm-up logins finish
              const st = pool.stats();
              expect(held.length).toBeLessThanOrEqual(max);
              expect(st.total).toBeLessThanOrEqual(max);
              expect(st.inUse).toBeGreaterThanOrEqual(held.length);
              expect(st.waiting).toBe(0);
            }
          } finally {
            for (const c of held) pool.release(c);
            pool.close();
          }
          // every connection the pool opened is closed on the server too
          for (let i = 0; i < 200 && be.sockets.size > 0; i++) await sleep(5);
          expect(be.sockets.size).toBe(0);
        }),
        { numRuns: 40 },
      );
    } finally {
      await be.close();
    }
  }, 60_000);
});

describe("PoolManager", () => {
  it("keys pools by cluster, backend, address, user, capabilities, collation and TLS mode, and updates settings in place", () => {
    const m = new PoolManager(silent);
    const l = login(3306);
    const p = m.pool(l, settings());
    expect(m.pool({ ...l, password: "rotated" }, settings({ maxConnections: 5 }))).toBe(p);
    expect(p.currentSettings().maxConnections).toBe(5);
    expect(m.pool({ ...l, user: "other" }, settings())).not.toBe(p);
    expect(m.pool({ ...l, characterSet: 224 }, settings())).not.toBe(p);
    expect(m.pool({ ...l, tls: { mode: "required", ca: null, serverName: "", error: null } }, settings())).not.toBe(p);
    const keys: string[] = [];
    m.forEach((k) => keys.push(k));
    expect(keys).toHaveLength(4);
    expect(keys[0]).toBe(poolKey(l));
    expect(keys[0]).toMatch(/^orders\/db1\/127\.0\.0\.1:3306\/app\/[0-9a-f]+\/0\/45\/plain$/);
    m.close();
    expect(p.closed).toBe(true);
  });

  it("startSweeping sweeps every pool on a timer (warm-up to minIdle), closePool forgets one", async () => {
    const be = await fakeBackend();
    const m = new PoolManager(silent);
    try {
      const p = m.pool(login(be.port), settings({ minIdle: 2 }));
      m.startSweeping(20);
      for (let i = 0; i < 100 && p.stats().idle < 2; i++) await sleep(10);
      expect(p.stats()).toMatchObject({ idle: 2, total: 2 });
      m.closePool(p.key);
      expect(p.closed).toBe(true);
      expect(m.pool(login(be.port), settings())).not.toBe(p);
    } finally {
      m.close();
      await be.close();
    }
  });
});

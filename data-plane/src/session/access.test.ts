import * as net from "node:net";
import { create } from "@bufbuild/protobuf";
import { ConfigVersionSchema } from "@mysqlgw/proto";
import pino from "pino";
// eslint-disable-next-line @typescript-eslint/no-require-imports
const mysql = require("mysql2/promise");
import { CidrAccess, ConnectionLimits, IdleWatch, SessionSlots, durationMs, perWorker } from "./access";
import { createListenerManager } from "../listener-manager";
import { nativePasswordHash } from "../protocol/auth/mysql-native-password";

describe("CidrAccess", () => {
  test("deny wins over allow; an empty allow list allows all; IPv4-mapped addresses match IPv4 ranges", () => {
    const a = new CidrAccess(["10.0.0.0/8", "fd00::/64"], ["10.1.0.0/16"]);
    expect(a.permits("10.2.3.4")).toBe(true);
    expect(a.permits("::ffff:10.2.3.4")).toBe(true);
    expect(a.permits("10.1.2.3")).toBe(false);
    expect(a.permits("::ffff:10.1.2.3")).toBe(false);
    expect(a.permits("fd00::7")).toBe(true);
    expect(a.permits("fd01::7")).toBe(false);
    expect(a.permits("192.168.0.1")).toBe(false);
    const denyOnly = new CidrAccess([], ["127.0.0.1"]);
    expect(denyOnly.permits("127.0.0.1")).toBe(false);
    expect(denyOnly.permits("::1")).toBe(true);
    expect(new CidrAccess(["nonsense"], []).invalid).toEqual(["nonsense"]);
  });
});

test("perWorker rounds up; 0 is no limit; durationMs", () => {
  expect(perWorker(10, 4)).toBe(3);
  expect(perWorker(3, 2)).toBe(2);
  expect(perWorker(1, 8)).toBe(1);
  expect(perWorker(0, 4)).toBe(0);
  expect(durationMs({ seconds: 1n, nanos: 500_000_000 } as never)).toBe(1500);
  expect(durationMs(undefined)).toBe(0);
});

describe("SessionSlots", () => {
  test("limits per worker, each slot given back exactly once", () => {
    const limits = new ConnectionLimits(2);
    // gateway 4 over 2 workers: 2 here
    const a = SessionSlots.admit(limits, 4, "l1", 0) as SessionSlots;
    const b = SessionSlots.admit(limits, 4, "l2", 0) as SessionSlots;
    expect(SessionSlots.admit(limits, 4, "l1", 0)).toBe("gateway");
    expect(a.takeUser("u", 1)).toBe(true);
    expect(b.takeUser("u", 1)).toBe(false);
    expect(a.takeBackend("c/db1", 2)).toBe(true);
    a.release();
    a.release();
    b.release();
    expect(limits.inUse()).toEqual({ total: 0, listeners: {}, users: {}, backends: {} });
    expect(limits.counters).toMatchObject({ gatewayFull: 1, userFull: 1 });
    const c = SessionSlots.admit(limits, 0, "l1", 1) as SessionSlots;
    expect(SessionSlots.admit(limits, 0, "l1", 1)).toBe("listener");
    c.release();
    expect(limits.total).toBe(0);
  });
});

test("IdleWatch fires once the probe is unchanged and not busy for the period, never while busy", async () => {
  let v = 1;
  let busy = false;
  let fired = 0;
  const w = new IdleWatch(200, () => (busy ? -1 : v), () => fired++);
  busy = true;
  await new Promise((r) => setTimeout(r, 400));
  expect(fired).toBe(0);
  busy = false;
  v = 2;
  await new Promise((r) => setTimeout(r, 450));
  expect(fired).toBe(1);
  w.stop();
});

async function freePort(): Promise<number> {
  const probe = net.createServer();
  await new Promise<void>((r) => probe.listen(0, "127.0.0.1", r));
  const port = (probe.address() as net.AddressInfo).port;
  await new Promise<void>((r) => probe.close(() => r()));
  return port;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe("ListenerManager: every session gives its slots back, whatever the path", () => {
  const logger = pino({ level: "silent" });
  test("silent client, early close, wrong password, user denied, user limit, listener full, backend hanging, backend refusing", async () => {
    // a backend that accepts and never speaks, and a port nobody listens on
    const hung = new Set<net.Socket>();
    const hang = net.createServer((s) => {
      hung.add(s);
      s.on("error", () => undefined);
    });
    await new Promise<void>((r) => hang.listen(0, "127.0.0.1", r));
    const hangPort = (hang.address() as net.AddressInfo).port;
    const [closedPort, port, gonePort] = [await freePort(), await freePort(), await freePort()];
    const lm = createListenerManager({ handshakeTimeoutMs: 400, backendConnectTimeoutMs: 300, maxPacketSize: 1 << 20, workerIndex: 0, logger });
    const passwordHash = nativePasswordHash("pw");
    await lm.apply(
      create(ConfigVersionSchema, {
        version: 1n,
        policy: {
          clusters: [
            { name: "hang", backends: [{ name: "h", address: `127.0.0.1:${hangPort}`, maxConnections: 5 }] },
            { name: "gone", backends: [{ name: "g", address: `127.0.0.1:${closedPort}` }] },
          ],
          listeners: [
            { name: "a", bindAddress: "127.0.0.1", port, cluster: "hang", maxConnections: 4 },
            { name: "b", bindAddress: "127.0.0.1", port: gonePort, cluster: "gone" },
          ],
          users: [
            { name: "u1", passwordHash, maxConnections: 1 },
            { name: "u2", passwordHash },
            { name: "denied", passwordHash, denyCidrs: ["127.0.0.0/8"] },
          ],
        },
      }),
    );
    const mgr = lm as unknown as { slotsInUse(): unknown; accessCounters(): Record<string, number> };
    const login = (user: string, password = "pw", p = port): Promise<number> =>
      mysql.createConnection({ host: "127.0.0.1", port: p, user, password, connectTimeout: 3000 }).then(
        (c: { destroy(): void }) => {
          c.destroy();
          return 0;
        },
        (e: { errno?: number }) => e.errno ?? -1,
      );
    const raw = (): net.Socket => {
      const s = net.connect(port, "127.0.0.1");
      s.on("error", () => undefined);
      return s;
    };
    const silent = raw();
    const early = raw();
    early.on("data", () => early.destroy());
    expect(await Promise.all([login("u1", "bad"), login("denied")])).toEqual([1045, 1045]);
    const first = login("u1"); // waits on the hanging backend, then 1105
    await sleep(100);
    expect(await login("u1")).toBe(1203);
    const fill = [raw(), raw()]; // with `silent` and `first`: 4
    await sleep(50);
    expect(await login("u2")).toBe(1040);
    for (const s of fill) s.destroy();
    expect(await first).toBe(1105);
    expect(await login("u2", "pw", gonePort)).toBe(1105);
    await sleep(600); // the silent client's handshake timeout
    silent.destroy();
    await sleep(100);
    expect(mgr.slotsInUse()).toEqual({ total: 0, listeners: {}, users: {}, backends: {} });
    expect(mgr.accessCounters()).toMatchObject({ userHostDenied: 1, userFull: 1, listenerFull: 1 });
    await lm.drain(100);
    for (const s of hung) s.destroy();
    await new Promise<void>((r) => hang.close(() => r()));
  }, 15_000);
});

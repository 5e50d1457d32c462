import { Buffer } from "node:buffer";
import * as net from "node:net";
import { create } from "@bufbuild/protobuf";
import { ConfigVersionSchema, type ConfigVersion } from "@mysqlgw/proto";
import pino from "pino";
// eslint-disable-next-line @typescript-eslint/no-require-imports
const mysql = require("mysql2/promise");
import { createListenerManager } from "./listener-manager";
import type { ListenerManager } from "./types";
import { PacketFramer } from "./protocol/framer";
import { buildHandshakeV10 } from "./protocol/packets/handshake-v10";
import { parseHandshakeResponse41, type HandshakeResponse41 } from "./protocol/packets/handshake-response41";
import { buildOk } from "./protocol/packets/ok";
import { buildErr } from "./protocol/packets/err";
import { nativePasswordHash, verifyNativePassword } from "./protocol/auth/mysql-native-password";
import { Capability } from "./protocol/constants";

const SECRET_HASH = "*14E65567ABDB5135D0CFD9A70B3032C179A49EE7"; // "secret"
// MariaDB 10.11's capabilities without SSL/COMPRESS
const BACKEND_CAPS = (0x81fff7fe & ~Capability.Ssl & ~Capability.Compress) >>> 0;

/** A scripted MySQL server: native auth for app/apppw, answers COM_QUERY with OK(info = "<name>:<sql>"). */
class FakeBackend {
  readonly server: net.Server;
  readonly logins: HandshakeResponse41[] = [];
  readonly sockets = new Set<net.Socket>();
  quits = 0;
  constructor(readonly name: string) {
    this.server = net.createServer((s) => this.accept(s));
  }
  async start(): Promise<number> {
    await new Promise<void>((r) => this.server.listen(0, "127.0.0.1", r));
    return (this.server.address() as net.AddressInfo).port;
  }
  stop(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    return new Promise((r) => this.server.close(() => r()));
  }
  private accept(s: net.Socket): void {
    this.sockets.add(s);
    s.on("close", () => this.sockets.delete(s));
    s.on("error", () => {});
    const nonce = Buffer.from("abcdefghij0123456789");
    let authed = false;
    let caps = 0;
    const framer = new PacketFramer({ maxPacketSize: 1 << 24 }, (seq, p) => {
      if (!authed) {
        const r = parseHandshakeResponse41(Buffer.from(p), BACKEND_CAPS);
        this.logins.push(r);
        caps = r.capabilities;
        if (r.username !== "app" || !verifyNativePassword(r.authResponse, nonce, nativePasswordHash("apppw"))) {
          s.end(buildErr({ errno: 1045, sqlState: "28000", message: `Access denied for user '${r.username}'` }, seq + 1));
          return;
        }
        if (r.database === "nosuchdb") {
          s.end(buildErr({ errno: 1049, sqlState: "42000", message: "Unknown database 'nosuchdb'" }, seq + 1));
          return;
        }
        authed = true;
        s.write(buildOk({}, caps, seq + 1));
        return;
      }
      if (p[0] === 0x01) {
        this.quits++;
        s.end();
        return;
      }
      if (p[0] === 0x03) s.write(buildOk({ info: `${this.name}:${p.subarray(1).toString()}` }, caps, 1));
      else s.write(buildOk({}, caps, 1));
    });
    s.on("data", (d) => framer.push(d));
    s.write(
      buildHandshakeV10({
        protocolVersion: 10,
        serverVersion: `5.5.5-10.11.99-MariaDB-${this.name}`,
        connectionId: 1,
        authPluginData: nonce,
        capabilities: BACKEND_CAPS,
        mariadbCapabilities: 0,
        characterSet: 45,
        statusFlags: 2,
        authPluginName: "mysql_native_password",
      }),
    );
  }
}

async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise((r) => s.close(r));
  return port;
}

function config(version: number, listeners: Array<{ name: string; port: number; cluster: string }>, clusters: Record<string, number[]>): ConfigVersion {
  process.env.MGW_TEST_APP_PW = "apppw";
  return create(ConfigVersionSchema, {
    version: BigInt(version),
    policy: {
      clusters: Object.entries(clusters).map(([name, ports]) => ({
        name,
        backends: ports.map((p, i) => ({ name: `b${i}`, address: `127.0.0.1:${p}` })),
      })),
      listeners: listeners.map((l) => ({ ...l, bindAddress: "127.0.0.1" })),
      users: [
        { name: "shop", passwordHash: SECRET_HASH, backendCredentials: { user: "app", secretRef: "env:MGW_TEST_APP_PW" } },
        { name: "nopw", passwordHash: "", backendCredentials: { user: "app", secretRef: "env:MGW_TEST_APP_PW" } },
      ],
    },
  });
}

function connect(port: number, user = "shop", password = "secret", database?: string) {
  return mysql.createConnection({ host: "127.0.0.1", port, user, password, database });
}

async function info(conn: { query(sql: string): Promise<[{ info: string }]> }, sql: string): Promise<string> {
  const [r] = await conn.query(sql);
  return r.info;
}

/** Raw client: resolves with everything received until the gateway closed. */
function rawExchange(port: number, send: Buffer | null, timeoutMs = 5000): Promise<{ data: Buffer; ms: number }> {
  return new Promise((resolve, reject) => {
    const t0 = Date.now();
    const chunks: Buffer[] = [];
    const s = net.connect(port, "127.0.0.1");
    const timer = setTimeout(() => {
      s.destroy();
      reject(new Error("not closed in time"));
    }, timeoutMs);
    s.on("data", (d) => {
      chunks.push(d);
      if (send !== null && chunks.length === 1) s.write(send);
    });
    s.on("error", () => {});
    s.on("close", () => {
      clearTimeout(timer);
      resolve({ data: Buffer.concat(chunks), ms: Date.now() - t0 });
    });
  });
}

describe("ListenerManager against fake backends", () => {
  const logger = pino({ level: "silent" });
  let a: FakeBackend;
  let b: FakeBackend;
  let pa: number;
  let pb: number;
  let m: ListenerManager;

  beforeEach(async () => {
    a = new FakeBackend("A");
    b = new FakeBackend("B");
    pa = await a.start();
    pb = await b.start();
    m = createListenerManager({ handshakeTimeoutMs: 500, backendConnectTimeoutMs: 1000, maxPacketSize: 1 << 20, workerIndex: 3, logger });
  });

  afterEach(async () => {
    await m.drain(0);
    await a.stop();
    await b.stop();
  });

  it("authenticates, logs in to the backend with the client's parameters, and forwards", async () => {
    const port = await freePort();
    const res = await m.apply(config(1, [{ name: "l1", port, cluster: "c" }], { c: [pa] }));
    expect(res).toEqual({ version: 1n, listening: ["l1"] });
    const c = await connect(port, "shop", "secret", "orders");
    expect(c.connection.threadId >>> 24).toBe(3); // worker index in the top bits
    expect(await info(c, "select 1")).toBe("A:select 1");
    expect(m.connectionCount()).toBe(1);
    const login = a.logins[0];
    expect(login.username).toBe("app");
    expect(login.database).toBe("orders");
    expect(login.connectAttributes.get("_mysqlgw_client_addr")).toMatch(/^127\.0\.0\.1:\d+$/);
    expect(login.connectAttributes.get("_client_name")).toBe("Node-MySQL-2");
    await c.end(); // COM_QUIT
    await waitFor(() => a.quits === 1 && m.connectionCount() === 0);
    // the cluster's backend version is advertised to later clients
    const c2 = await connect(port);
    expect(c2.connection._handshakePacket.serverVersion).toBe("5.5.5-10.11.99-MariaDB-A");
    await c2.end();
  });

  it("rejects a wrong password and an unknown user with 1045/28000", async () => {
    const port = await freePort();
    await m.apply(config(1, [{ name: "l1", port, cluster: "c" }], { c: [pa] }));
    await expect(connect(port, "shop", "nope")).rejects.toMatchObject({
      errno: 1045,
      sqlState: "28000",
      message: "Access denied for user 'shop'@'127.0.0.1' (using password: YES)",
    });
    await expect(connect(port, "ghost", "")).rejects.toMatchObject({
      errno: 1045,
      message: "Access denied for user 'ghost'@'127.0.0.1' (using password: NO)",
    });
    const ok = await connect(port, "nopw", "");
    await ok.end();
    expect(a.logins.length).toBe(1);
  });

  it("forwards the backend's error for an unknown database", async () => {
    const port = await freePort();
    await m.apply(config(1, [{ name: "l1", port, cluster: "c" }], { c: [pa] }));
    await expect(connect(port, "shop", "secret", "nosuchdb")).rejects.toMatchObject({ errno: 1049, sqlState: "42000" });
  });

  it("round-robins over backends and skips one that refuses", async () => {
    const port = await freePort();
    const dead = await freePort();
    await m.apply(config(1, [{ name: "l1", port, cluster: "c" }], { c: [pa, dead, pb] }));
    const seen: string[] = [];
    for (let i = 0; i < 6; i++) {
      const c = await connect(port);
      seen.push((await info(c, "x")).split(":")[0]);
      await c.end();
    }
    // the dead backend's turn goes to the next one in order
    expect(seen.filter((s) => s === "A").length).toBe(2);
    expect(seen.filter((s) => s === "B").length).toBe(4);
  });

  it("names the cluster when no backend accepts", async () => {
    const port = await freePort();
    const dead = await freePort();
    await m.apply(config(1, [{ name: "l1", port, cluster: "orders" }], { orders: [dead] }));
    await expect(connect(port)).rejects.toMatchObject({ errno: 1105, sqlState: "HY000", message: expect.stringContaining("cluster 'orders'") });
  });

  it("re-targets new connections on apply while open ones keep their backend; removed listeners stop accepting", async () => {
    const port = await freePort();
    const port2 = await freePort();
    await m.apply(config(1, [{ name: "l1", port, cluster: "c" }], { c: [pa] }));
    const old = await connect(port);
    expect(await info(old, "q")).toBe("A:q");
    const r2 = await m.apply(config(2, [{ name: "l1", port, cluster: "c" }, { name: "l2", port: port2, cluster: "c" }], { c: [pb] }));
    expect(r2.listening.sort()).toEqual(["l1", "l2"]);
    const fresh = await connect(port);
    expect(await info(fresh, "q")).toBe("B:q");
    expect(await info(old, "q")).toBe("A:q");
    const viaL2 = await connect(port2);
    expect(await info(viaL2, "q")).toBe("B:q");
    const r3 = await m.apply(config(3, [{ name: "l2", port: port2, cluster: "c" }], { c: [pb] }));
    expect(r3.listening).toEqual(["l2"]);
    await expect(connect(port)).rejects.toMatchObject({ code: "ECONNREFUSED" });
    expect(await info(old, "still")).toBe("A:still");
    expect(await info(fresh, "still")).toBe("B:still");
    // a changed port replaces the listener
    const port3 = await freePort();
    await m.apply(config(4, [{ name: "l2", port: port3, cluster: "c" }], { c: [pb] }));
    await expect(connect(port2)).rejects.toMatchObject({ code: "ECONNREFUSED" });
    const moved = await connect(port3);
    expect(await info(viaL2, "q")).toBe("B:q");
    for (const c of [old, fresh, viaL2, moved]) await c.end();
  });

  it("rejects apply when a port is taken and keeps serving", async () => {
    const port = await freePort();
    await m.apply(config(1, [{ name: "l1", port, cluster: "c" }], { c: [pa] }));
    const blocker = net.createServer();
    await new Promise<void>((r) => blocker.listen(0, "127.0.0.1", r));
    const taken = (blocker.address() as net.AddressInfo).port;
    await expect(m.apply(config(2, [{ name: "l1", port, cluster: "c" }, { name: "l2", port: taken, cluster: "c" }], { c: [pa] }))).rejects.toMatchObject({
      code: "MGW_ERR_LISTENER_BIND",
    });
    const c = await connect(port);
    expect(await info(c, "q")).toBe("A:q");
    await c.end();
    await new Promise((r) => blocker.close(r));
  });

  it("closes a silent client after the handshake timeout and answers a malformed first packet with 1043", async () => {
    const port = await freePort();
    await m.apply(config(1, [{ name: "l1", port, cluster: "c" }], { c: [pa] }));
    const other = await connect(port);
    const silent = await rawExchange(port, null);
    expect(silent.ms).toBeGreaterThanOrEqual(450);
    expect(silent.ms).toBeLessThan(2000);
    const bad = await rawExchange(port, Buffer.from([0x05, 0, 0, 1, 0x0f, 0xa2, 0, 0, 0]));
    const greetingLen = bad.data.readUIntLE(0, 3) + 4;
    const err = bad.data.subarray(greetingLen);
    expect(err[3]).toBe(2); // sequence id
    expect(err.readUInt16LE(5)).toBe(1043);
    expect(err.subarray(8, 13).toString()).toBe("08S01");
    expect(err.subarray(13).toString()).toBe("Bad handshake");
    expect(await info(other, "q")).toBe("A:q"); // nobody else affected
    await other.end();
  });

  it("answers a command packet above maxPacketSize with 1153 and closes only that client", async () => {
    const port = await freePort();
    await m.apply(config(1, [{ name: "l1", port, cluster: "c" }], { c: [pa] }));
    const other = await connect(port);
    const c = await connect(port);
    c.on("error", () => {});
    await expect(c.query("select '" + "x".repeat(2 << 20) + "'")).rejects.toMatchObject({ errno: 1153, sqlState: "08S01" });
    expect(await info(other, "q")).toBe("A:q");
    await other.end();
  });

  it("drain() waits for sessions, then closes the rest", async () => {
    const port = await freePort();
    await m.apply(config(1, [{ name: "l1", port, cluster: "c" }], { c: [pa] }));
    const c = await connect(port);
    c.on("error", () => {});
    const t0 = Date.now();
    await m.drain(300);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(250);
    await waitFor(() => m.connectionCount() === 0);
    await expect(connect(port)).rejects.toMatchObject({ code: "ECONNREFUSED" });
  });
});

async function waitFor(cond: () => boolean, ms = 3000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error("condition not met in time");
    await new Promise((r) => setTimeout(r, 10));
  }
}

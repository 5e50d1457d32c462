// Hostile input (issue 3, point 8), live part: a ListenerManager in this
// process with a fake backend, fed garbled handshake responses and random
// command bytes by raw clients. Every connection ends with an ERR packet or a
// close (within the handshake timeout while unauthenticated), nothing throws,
// and a well-formed client connecting after each batch still works.
// MYSQLGW_FUZZ_RUNS scales the number of batches.
import { Buffer } from "node:buffer";
import * as net from "node:net";
import { create } from "@bufbuild/protobuf";
import { ConfigVersionSchema } from "@mysqlgw/proto";
import fc from "fast-check";
import pino from "pino";
import * as mysql from "mysql2/promise";
import { createListenerManager } from "./listener-manager";
import type { ListenerManager } from "./types";
import { PacketFramer } from "./protocol/framer";
import { buildHandshakeV10 } from "./protocol/packets/handshake-v10";
import { buildHandshakeResponse41 } from "./protocol/packets/handshake-response41";
import { buildOk } from "./protocol/packets/ok";
import { Capability } from "./protocol/constants";

const BATCHES = Math.max(2, Math.ceil(Number(process.env.MYSQLGW_FUZZ_RUNS ?? 300) / 60));
const PER_BATCH = 12;
const HANDSHAKE_TIMEOUT_MS = 300;
const MAX_PACKET = 4096;
const BACKEND_CAPS = (0x81fff7fe & ~Capability.Ssl & ~Capability.Compress) >>> 0;
const CLIENT_CAPS = (Capability.Protocol41 | Capability.SecureConnection | Capability.PluginAuth | Capability.PluginAuthLenencClientData | Capability.Transactions) >>> 0;

/** A backend that accepts any login and answers every packet with OK; garbage from the gateway closes it. */
function fakeBackend(): net.Server {
  return net.createServer((s) => {
    s.on("error", () => undefined);
    let authed = false;
    const framer = new PacketFramer({ maxPacketSize: 1 << 24 }, (seq, p) => {
      if (!authed) authed = true;
      else if (p[0] === 0x01) return void s.end();
      s.write(buildOk({}, CLIENT_CAPS, seq + 1));
    });
    s.on("data", (d) => {
      try {
        framer.push(d);
      } catch {
        s.destroy();
      }
    });
    s.write(
      buildHandshakeV10({
        protocolVersion: 10,
        serverVersion: "5.5.5-10.11.99-MariaDB",
        connectionId: 1,
        authPluginData: Buffer.from("abcdefghij0123456789"),
        capabilities: BACKEND_CAPS,
        mariadbCapabilities: 0,
        characterSet: 45,
        statusFlags: 2,
        authPluginName: "mysql_native_password",
      }),
    );
  });
}

interface Outcome {
  /** Bytes after the greeting. */
  reply: Buffer;
  closed: boolean;
  ms: number;
}

/**
 * Connects, waits for the greeting, sends `first` (the handshake response) and
 * then, once the reply to it arrives, `then` (command bytes). Resolves when the
 * gateway closes, or `lingerMs` after the last write if it keeps the connection.
 */
function rawSession(port: number, first: Buffer, then: Buffer | null, lingerMs: number): Promise<Outcome> {
  return new Promise((resolve) => {
    const t0 = Date.now();
    const s = net.connect(port, "127.0.0.1");
    let greeting = -1;
    let buf = Buffer.alloc(0);
    let sentThen = false;
    let done = false;
    const finish = (closed: boolean) => {
      if (done) return;
      done = true;
      clearTimeout(linger);
      s.destroy();
      resolve({ reply: greeting < 0 ? Buffer.alloc(0) : buf.subarray(greeting), closed, ms: Date.now() - t0 });
    };
    let linger = setTimeout(() => finish(false), HANDSHAKE_TIMEOUT_MS + lingerMs);
    s.on("error", () => undefined);
    s.on("close", () => finish(true));
    s.on("data", (d) => {
      buf = Buffer.concat([buf, d]);
      if (greeting < 0 && buf.length >= 4 && buf.length >= 4 + buf.readUIntLE(0, 3)) {
        greeting = 4 + buf.readUIntLE(0, 3);
        s.write(first);
      } else if (greeting >= 0 && then !== null && !sentThen && buf.length > greeting) {
        sentThen = true;
        s.write(then);
        clearTimeout(linger);
        linger = setTimeout(() => finish(false), lingerMs);
      }
    });
  });
}

function loginPacket(username: string, seq = 1): Buffer {
  return buildHandshakeResponse41(
    {
      capabilities: CLIENT_CAPS,
      mariadbCapabilities: 0,
      maxPacketSize: 1 << 24,
      characterSet: 45,
      username,
      authResponse: Buffer.alloc(0),
      database: null,
      authPluginName: "mysql_native_password",
      connectAttributes: new Map(),
    },
    seq,
  );
}

/** Garbled handshake responses: random bytes, random framed payloads, and mutations of a valid one. */
const garbledResponse = fc.oneof(
  fc.uint8Array({ maxLength: 200 }).map((b) => Buffer.from(b)),
  fc.uint8Array({ maxLength: 200 }).map((b) => {
    const h = Buffer.alloc(4);
    h.writeUIntLE(b.length, 0, 3);
    h[3] = 1;
    return Buffer.concat([h, b]);
  }),
  fc.tuple(fc.array(fc.tuple(fc.nat(), fc.nat({ max: 255 })), { minLength: 1, maxLength: 6 }), fc.nat()).map(([flips, cut]) => {
    const b = Buffer.from(loginPacket("nobody"));
    for (const [at, v] of flips) b[at % b.length] = v;
    return b.subarray(0, 4 + (cut % (b.length - 3)));
  }),
  // a header claiming more than maxPacketSize
  fc.integer({ min: MAX_PACKET + 1, max: 0xffffff }).map((n) => Buffer.from([n & 0xff, (n >> 8) & 0xff, n >> 16, 1, 0x85, 0xa6])),
);

/** Random command-phase bytes: raw, framed commands, or an oversize header. */
const commandBytes = fc.oneof(
  fc.uint8Array({ minLength: 1, maxLength: 300 }).map((b) => Buffer.from(b)),
  fc.array(fc.uint8Array({ minLength: 1, maxLength: 100 }), { minLength: 1, maxLength: 5 }).map((ps) =>
    Buffer.concat(ps.map((p) => Buffer.concat([Buffer.from([p.length, 0, 0, 0]), p]))),
  ),
  fc.integer({ min: MAX_PACKET + 1, max: 0xffffff }).map((n) => Buffer.from([n & 0xff, (n >> 8) & 0xff, n >> 16, 0, 0x03, 0x53])),
);

describe("ListenerManager under hostile clients", () => {
  let backend: net.Server;
  let m: ListenerManager;
  let port: number;

  beforeAll(async () => {
    backend = fakeBackend();
    await new Promise<void>((r) => backend.listen(0, "127.0.0.1", r));
    const probe = net.createServer();
    await new Promise<void>((r) => probe.listen(0, "127.0.0.1", r));
    port = (probe.address() as net.AddressInfo).port;
    await new Promise((r) => probe.close(r));
    process.env.MGW_FUZZ_PW = "x";
    m = createListenerManager({ handshakeTimeoutMs: HANDSHAKE_TIMEOUT_MS, backendConnectTimeoutMs: 1000, maxPacketSize: MAX_PACKET, workerIndex: 0, logger: pino({ level: "silent" }) });
    await m.apply(
      create(ConfigVersionSchema, {
        version: 1n,
        policy: {
          clusters: [{ name: "c", backends: [{ name: "b", address: `127.0.0.1:${(backend.address() as net.AddressInfo).port}` }] }],
          listeners: [{ name: "l", bindAddress: "127.0.0.1", port, cluster: "c" }],
          users: [{ name: "u", passwordHash: "", backendCredentials: { user: "app", secretRef: "env:MGW_FUZZ_PW" } }],
        },
      }),
    );
  });

  afterAll(async () => {
    await m.drain(0);
    await new Promise((r) => backend.close(r));
  });

  async function wellFormedClientWorks(): Promise<void> {
    const c = await mysql.createConnection({ host: "127.0.0.1", port, user: "u", password: "" });
    const [r] = (await c.query("DO 1")) as unknown as [{ affectedRows: number }];
    expect(r.affectedRows).toBe(0);
    await c.end();
  }

  it("garbled handshake responses: an ERR packet or a close within the handshake timeout, for each", async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(garbledResponse, { minLength: PER_BATCH, maxLength: PER_BATCH }), async (batch) => {
        const outcomes = await Promise.all(batch.map((b) => rawSession(port, b, null, 1500)));
        for (const o of outcomes) {
          // authenticated by chance (a mutation that kept a valid login) would answer OK: not possible for user "nobody"
          expect(o.closed).toBe(true);
          expect(o.ms).toBeLessThan(HANDSHAKE_TIMEOUT_MS + 1000);
          // whatever came back is an ERR packet (0xff) or an auth switch (0xfe) that then timed out, or nothing
          if (o.reply.length > 0) expect([0xff, 0xfe]).toContain(o.reply[4]);
        }
        await wellFormedClientWorks();
      }),
      { numRuns: BATCHES },
    );
  });

  it("random command bytes after a good login: the session forwards, errs or closes; others are unaffected", async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(commandBytes, { minLength: PER_BATCH, maxLength: PER_BATCH }), async (batch) => {
        const outcomes = await Promise.all(batch.map((b) => rawSession(port, loginPacket("u"), b, 150)));
        for (const [i, o] of outcomes.entries()) {
          expect(o.reply[4]).toBe(0x00); // the login's OK
          const sent = batch[i];
          if (sent.length === 6 && sent.readUIntLE(0, 3) > MAX_PACKET) {
            // an oversize packet: ERR 1153 and closed
            const err = o.reply.indexOf(0xff, 4 + o.reply.readUIntLE(0, 3));
            expect(err).toBeGreaterThan(0);
            expect(o.reply.readUInt16LE(err + 1)).toBe(1153);
            expect(o.closed).toBe(true);
          }
        }
        await wellFormedClientWorks();
        // every session of the batch is gone once its client is
        const end = Date.now() + 2000;
        while (m.connectionCount() > 0 && Date.now() < end) await new Promise((r) => setTimeout(r, 10));
        expect(m.connectionCount()).toBe(0);
      }),
      { numRuns: BATCHES },
    );
  });
});

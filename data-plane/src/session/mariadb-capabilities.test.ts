// MariaDB extended capabilities (extended column metadata) pass through the
// gateway as they would direct: found by the conformance suite, where mysql2
// and the mariadb connector parsed JSON columns as objects direct but as
// strings through the gateway.
import { Buffer } from "node:buffer";
import * as net from "node:net";
import { create } from "@bufbuild/protobuf";
import { ConfigVersionSchema } from "@mysqlgw/proto";
import pino from "pino";
import * as mysql from "mysql2/promise";
import { createListenerManager } from "../listener-manager";
import type { ListenerManager } from "../types";
import { PacketFramer } from "../protocol/framer";
import { buildHandshakeV10 } from "../protocol/packets/handshake-v10";
import { parseHandshakeResponse41, type HandshakeResponse41 } from "../protocol/packets/handshake-response41";
import { buildOk } from "../protocol/packets/ok";
import { Capability, MariaDbCapability } from "../protocol/constants";
import { PASSTHROUGH_MARIADB_CAPABILITIES } from "./frontend-session";

// MariaDB 10.11's capabilities without SSL/COMPRESS; CLIENT_MYSQL clear, as MariaDB sends them
const BACKEND_CAPS = (0x81fff7fe & ~Capability.Ssl & ~Capability.Compress) >>> 0;
const BACKEND_MARIADB_CAPS = (MariaDbCapability.Progress | MariaDbCapability.StmtBulkOperations | MariaDbCapability.ExtendedTypeInfo | MariaDbCapability.CacheMetadata) >>> 0;

/** A MariaDB-like backend that accepts any login and answers every command with OK. */
function fakeMariaDB(logins: HandshakeResponse41[]): net.Server {
  return net.createServer((s) => {
    s.on("error", () => undefined);
    let authed = false;
    let caps = 0;
    const framer = new PacketFramer({ maxPacketSize: 1 << 24 }, (seq, p) => {
      if (!authed) {
        const r = parseHandshakeResponse41(Buffer.from(p), BACKEND_CAPS);
        logins.push(r);
        caps = r.capabilities;
        authed = true;
        s.write(buildOk({}, caps, seq + 1));
        return;
      }
      if (p[0] === 0x01) s.end();
      else s.write(buildOk({}, caps, 1));
    });
    s.on("data", (d) => framer.push(d));
    s.write(
      buildHandshakeV10({
        protocolVersion: 10,
        serverVersion: "5.5.5-10.11.99-MariaDB",
        connectionId: 1,
        authPluginData: Buffer.from("abcdefghij0123456789"),
        capabilities: BACKEND_CAPS,
        mariadbCapabilities: BACKEND_MARIADB_CAPS,
        characterSet: 45,
        statusFlags: 2,
        authPluginName: "mysql_native_password",
      }),
    );
  });
}

describe("MariaDB extended capabilities", () => {
  const logins: HandshakeResponse41[] = [];
  let backend: net.Server;
  let m: ListenerManager;
  let port: number;

  beforeAll(async () => {
    backend = fakeMariaDB(logins);
    await new Promise<void>((r) => backend.listen(0, "127.0.0.1", r));
    const probe = net.createServer();
    await new Promise<void>((r) => probe.listen(0, "127.0.0.1", r));
    port = (probe.address() as net.AddressInfo).port;
    await new Promise((r) => probe.close(r));
    process.env.MGW_TEST_MDB_PW = "pw";
    m = createListenerManager({ handshakeTimeoutMs: 1000, backendConnectTimeoutMs: 1000, maxPacketSize: 1 << 20, workerIndex: 0, logger: pino({ level: "silent" }) });
    await m.apply(
      create(ConfigVersionSchema, {
        version: 1n,
        policy: {
          clusters: [{ name: "c", backends: [{ name: "b", address: `127.0.0.1:${(backend.address() as net.AddressInfo).port}` }] }],
          listeners: [{ name: "l", bindAddress: "127.0.0.1", port, cluster: "c" }],
          users: [{ name: "u", passwordHash: "", backendCredentials: { user: "app", secretRef: "env:MGW_TEST_MDB_PW" } }],
        },
      }),
    );
  });

  afterAll(async () => {
    await m.drain(0);
    await new Promise((r) => backend.close(r));
  });

  async function greetingAndLogin(): Promise<{ caps: number; mariadbCaps: number; login: HandshakeResponse41 }> {
    const c = await mysql.createConnection({ host: "127.0.0.1", port, user: "u", password: "" });
    const hs = (c.connection as unknown as { _handshakePacket: { capabilityFlags: number; mariadbExtendedCapabilityFlags?: number } })._handshakePacket;
    await c.query("DO 1");
    await c.end();
    return { caps: hs.capabilityFlags >>> 0, mariadbCaps: hs.mariadbExtendedCapabilityFlags ?? 0, login: logins[logins.length - 1] };
  }

  it("are learned from the backend's greeting before the listener opens, only the pass-through ones are offered, and reach the backend as the client asked", async () => {
    // The very first connection already gets them: apply() read a backend greeting first.
    const first = await greetingAndLogin();
    expect(first.mariadbCaps).toBe(BACKEND_MARIADB_CAPS & PASSTHROUGH_MARIADB_CAPABILITIES);
    // CLIENT_MYSQL clear and the pass-through set offered: extended metadata, never progress reports or metadata caching.
    const later = await greetingAndLogin();
    expect(later.caps & Capability.LongPassword).toBe(0);
    expect(later.mariadbCaps).toBe(first.mariadbCaps);
    expect(later.mariadbCaps & MariaDbCapability.ExtendedTypeInfo).toBe(MariaDbCapability.ExtendedTypeInfo);
    expect(later.mariadbCaps & (MariaDbCapability.Progress | MariaDbCapability.CacheMetadata)).toBe(0);
    // mysql2 asks for extended metadata when offered (clearing CLIENT_MYSQL); the backend gets the request.
    expect(later.login.capabilities & Capability.LongPassword).toBe(0);
    expect(later.login.mariadbCapabilities).toBe(MariaDbCapability.ExtendedTypeInfo);
  });
});

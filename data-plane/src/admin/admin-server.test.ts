import { Buffer } from "node:buffer";
import * as net from "node:net";
import * as mysql from "mysql2/promise";
import pino from "pino";
import { nativePasswordHash, scrambleNativePassword } from "../protocol/auth/mysql-native-password";
import { PacketFramer } from "../protocol/framer";
import { parseHandshakeV10 } from "../protocol/packets/handshake-v10";
import { buildHandshakeResponse41 } from "../protocol/packets/handshake-response41";
import { parseAuthSwitchRequest } from "../protocol/packets/auth-switch-request";
import { Capability } from "../protocol/constants";
import { startAdminServer, type AdminServer } from "./admin-server";
import type { VirtualTable } from "./admin-sql";

const PW = "admin-unit-pw";
let server: AdminServer;
let rowsAsked = 0;

const tables = new Map<string, VirtualTable>([
  [
    "digests",
    {
      columns: ["digest", "count", "total_ms", "last_seen"],
      rows: () => {
        rowsAsked++;
        return [
          { digest: "a", count: 3, total_ms: 1.5, last_seen: null },
          { digest: "b", count: 10, total_ms: 0.25, last_seen: "2026-11-22T13:00:00.000Z" },
        ];
      },
    },
  ],
]);

beforeAll(async () => {
  server = await startAdminServer({ host: "127.0.0.1", port: 0, user: "admin", passwordHash: nativePasswordHash(PW), tables: () => tables, logger: pino({ level: "silent" }), maxConnections: 3 });
});
afterAll(() => server.close());

const connect = (password = PW, user = "admin"): Promise<mysql.Connection> => mysql.createConnection({ host: "127.0.0.1", port: server.address.port, user, password, connectTimeout: 3000 });

describe("admin server", () => {
  test("mysql2 logs in and reads a virtual table; values come back as text, NULL as null", async () => {
    const c = await connect();
    try {
      const [rows] = await c.query<mysql.RowDataPacket[]>("SELECT * FROM digests ORDER BY count DESC");
      expect(rows).toEqual([
        { digest: "b", count: "10", total_ms: "0.25", last_seen: "2026-11-22T13:00:00.000Z" },
        { digest: "a", count: "3", total_ms: "1.5", last_seen: null },
      ]);
      const [v] = await c.query<mysql.RowDataPacket[]>("SELECT @@version_comment LIMIT 1");
      expect(v).toEqual([{ "@@version_comment": "mysqlgw admin port (read-only)" }]);
      await c.ping();
      await c.query("SET NAMES utf8mb4");
      const e = await c.query("DROP TABLE digests").catch((err: { errno: number }) => err);
      expect(e).toMatchObject({ errno: 1227 });
      // the session goes on after an error
      const [again] = await c.query<mysql.RowDataPacket[]>("SELECT digest FROM digests WHERE count = 3");
      expect(again).toEqual([{ digest: "a" }]);
      const p = await c.execute("SELECT 1").catch((err: { errno: number }) => err);
      expect(p).toMatchObject({ errno: 1047 });
    } finally {
      await c.end();
    }
  });

  test("wrong password, wrong user, no password → 1045 (28000)", async () => {
    for (const [pw, user] of [
      ["nope", "admin"],
      [PW, "root"],
      ["", "admin"],
    ]) {
      const e = await connect(pw, user).then(
        (c) => c.end().then(() => ({ errno: 0 })),
        (err: { errno: number; sqlState: string }) => err,
      );
      expect(e).toMatchObject({ errno: 1045, sqlState: "28000" });
    }
  });

  test("a client answering with another plugin is switched to mysql_native_password", async () => {
    const sock = net.connect(server.address.port, "127.0.0.1");
    const packets: { seq: number; payload: Buffer }[] = [];
    const framer = new PacketFramer({ maxPacketSize: 1 << 20 }, (seq, payload) => packets.push({ seq, payload: Buffer.from(payload) }));
    sock.on("data", (d: Buffer) => framer.push(d));
    const next = async (n: number): Promise<{ seq: number; payload: Buffer }> => {
      for (let i = 0; i < 200 && packets.length < n; i++) await new Promise((r) => setTimeout(r, 10));
      return packets[n - 1];
    };
    try {
      const greeting = parseHandshakeV10((await next(1)).payload);
      expect(greeting.authPluginName).toBe("mysql_native_password");
      const caps = Capability.Protocol41 | Capability.SecureConnection | Capability.PluginAuth | Capability.LongPassword;
      sock.write(
        buildHandshakeResponse41(
          { capabilities: caps, mariadbCapabilities: 0, maxPacketSize: 1 << 24, characterSet: 45, username: "admin", authResponse: Buffer.alloc(32, 1), database: null, authPluginName: "caching_sha2_password", connectAttributes: new Map() },
          1,
        ),
      );
      const sw = await next(2);
      expect(sw.seq).toBe(2);
      const req = parseAuthSwitchRequest(sw.payload);
      expect(req.pluginName).toBe("mysql_native_password");
      const token = scrambleNativePassword(PW, req.pluginData);
      const hdr = Buffer.from([token.length, 0, 0, 3]);
      sock.write(Buffer.concat([hdr, token]));
      const ok = await next(3);
      expect([ok.seq, ok.payload[0]]).toEqual([4, 0x00]);
    } finally {
      sock.destroy();
    }
  });

  test("connections beyond the bound get 1040", async () => {
    const held = [await connect(), await connect(), await connect()];
    try {
      const e = await connect().then(
        (c) => c.end().then(() => ({ errno: 0 })),
        (err: { errno: number }) => err,
      );
      expect(e).toMatchObject({ errno: 1040 });
    } finally {
      await Promise.all(held.map((c) => c.end()));
    }
    expect(rowsAsked).toBeGreaterThan(0);
  });
});

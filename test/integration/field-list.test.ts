// COM_FIELD_LIST through the gateway. No installed client sends it outside the
// interactive mariadb CLI's table-name completion, so this test speaks the
// protocol itself (a minimal mysql_native_password client written here, not
// the gateway's code) and compares the packets direct vs through mysqlgw.
import * as crypto from "node:crypto";
import * as net from "node:net";
import { startGatewayFixture, type Endpoint, type GatewayFixture } from "../helpers/gateway-fixture";
import "../helpers";

let fx: GatewayFixture;

beforeAll(async () => {
  fx = await startGatewayFixture({ databases: ["fl"] });
  await fx.db.query("CREATE TABLE fl.t (id INT PRIMARY KEY AUTO_INCREMENT, name VARCHAR(40) NOT NULL DEFAULT 'x', price DECIMAL(10,2), at DATETIME(6))");
}, 90_000);

/** Reads MySQL packets (payloads with their sequence ids) from a socket, bounded in time. */
class PacketReader {
  private buf = Buffer.alloc(0);
  private waiter: (() => void) | null = null;
  constructor(private readonly s: net.Socket) {
    s.on("data", (d: Buffer) => {
      this.buf = Buffer.concat([this.buf, d]);
      this.waiter?.();
    });
  }
  async next(timeoutMs = 5000): Promise<{ seq: number; payload: Buffer }> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (this.buf.length >= 4) {
        const len = this.buf.readUIntLE(0, 3);
        if (this.buf.length >= 4 + len) {
          const p = { seq: this.buf[3], payload: Buffer.from(this.buf.subarray(4, 4 + len)) };
          this.buf = this.buf.subarray(4 + len);
          return p;
        }
      }
      const left = deadline - Date.now();
      if (left <= 0) throw new Error("no packet within the timeout");
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiter = () => {
          clearTimeout(t);
          resolve();
        };
      });
      this.waiter = null;
    }
  }
}

function packet(seq: number, payload: Buffer): Buffer {
  const h = Buffer.alloc(4);
  h.writeUIntLE(payload.length, 0, 3);
  h[3] = seq;
  return Buffer.concat([h, payload]);
}

function nativeScramble(password: string, nonce: Buffer): Buffer {
  const sha1 = (...b: Buffer[]): Buffer => crypto.createHash("sha1").update(Buffer.concat(b)).digest();
  const s1 = sha1(Buffer.from(password));
  const s3 = sha1(nonce, sha1(s1));
  return Buffer.from(s1.map((x, i) => x ^ s3[i]));
}

/** Logs in with mysql_native_password (CLIENT_PROTOCOL_41, no DEPRECATE_EOF) and returns the open socket. */
async function login(ep: Endpoint, db: string): Promise<{ s: net.Socket; r: PacketReader }> {
  const s = net.connect(ep.port, "127.0.0.1");
  const r = new PacketReader(s);
  const greeting = (await r.next()).payload;
  let at = greeting.indexOf(0, 1) + 1 + 4; // protocol version, server version, connection id
  const part1 = greeting.subarray(at, at + 8);
  at += 8 + 1 + 2 + 1 + 2 + 2; // filler, caps low, charset, status, caps high
  const authLen = greeting[at];
  at += 1 + 10;
  const part2 = greeting.subarray(at, at + Math.max(13, authLen - 8) - 1);
  const caps = 0x1 | 0x4 | 0x8 | 0x200 | 0x2000 | 0x8000 | 0x80000; // LONG_PASSWORD LONG_FLAG CONNECT_WITH_DB PROTOCOL_41 TRANSACTIONS SECURE_CONNECTION PLUGIN_AUTH
  const token = nativeScramble(ep.password, Buffer.concat([part1, part2]));
  const head = Buffer.alloc(32);
  head.writeUInt32LE(caps, 0);
  head.writeUInt32LE(16 * 1024 * 1024, 4);
  head[8] = 45; // utf8mb4_general_ci
  s.write(packet(1, Buffer.concat([head, Buffer.from(ep.user + "\0"), Buffer.from([token.length]), token, Buffer.from(db + "\0mysql_native_password\0")])));
  let reply = await r.next();
  if (reply.payload[0] === 0xfe) {
    // AuthSwitchRequest: plugin name, then the new nonce (NUL-terminated)
    const nameEnd = reply.payload.indexOf(0, 1);
    const nonce = reply.payload.subarray(nameEnd + 1, reply.payload.length - 1);
    s.write(packet(reply.seq + 1, nativeScramble(ep.password, Buffer.from(nonce))));
    reply = await r.next();
  }
  expect(reply.payload[0]).toBe(0x00);
  return { s, r };
}

/** Sends COM_FIELD_LIST and returns every packet of the answer up to its EOF or ERR, as hex. */
async function fieldList(ep: Endpoint, table: string): Promise<string[]> {
  const { s, r } = await login(ep, "fl");
  try {
    s.write(packet(0, Buffer.concat([Buffer.from([0x04]), Buffer.from(table + "\0")])));
    const out: string[] = [];
    for (let i = 0; i < 100; i++) {
      const p = await r.next();
      out.push(`${p.seq}:${p.payload.toString("hex")}`);
      if (p.payload[0] === 0xff || (p.payload[0] === 0xfe && p.payload.length < 9)) return out;
    }
    throw new Error("more than 100 packets in a COM_FIELD_LIST answer");
  } finally {
    s.destroy();
  }
}

test("COM_FIELD_LIST returns the same column definitions and EOF through the gateway as direct", async () => {
  const direct = await fieldList(fx.direct, "t");
  const through = await fieldList(fx.gateway, "t");
  expect(direct).toHaveLength(5); // four column definitions, then EOF
  expect(through).toEqual(direct);
  expect(Buffer.from(direct[1].split(":")[1], "hex").includes(Buffer.from("name"))).toBe(true);
});

test("COM_FIELD_LIST on an unknown table gets the server's 1146 through the gateway as direct", async () => {
  const direct = await fieldList(fx.direct, "nope");
  const through = await fieldList(fx.gateway, "nope");
  expect(direct).toHaveLength(1);
  const err = Buffer.from(direct[0].split(":")[1], "hex");
  expect(err.readUInt16LE(1)).toBe(1146);
  expect(through).toEqual(direct);
});

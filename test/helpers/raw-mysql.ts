/**
 * A minimal MySQL protocol client written for tests (not the gateway's code),
 * for commands no installed connector sends on demand (COM_FIELD_LIST,
 * COM_SET_OPTION, COM_STMT_RESET/FETCH/BULK_EXECUTE, …): packets are read and
 * written as they are, so that a test can compare them byte for byte direct vs
 * through mysqlgw. mysql_native_password only; no TLS, no compression.
 */
import * as crypto from "node:crypto";
import * as net from "node:net";

/** Reads MySQL packets (payloads with their sequence ids) from a socket, bounded in time. */
export class PacketReader {
  private buf = Buffer.alloc(0);
  private waiter: (() => void) | null = null;
  private ended = false;
  constructor(private readonly s: net.Socket) {
    s.on("data", (d: Buffer) => {
      this.buf = Buffer.concat([this.buf, d]);
      this.waiter?.();
    });
    s.on("close", () => {
      this.ended = true;
      this.waiter?.();
    });
    s.on("error", () => undefined);
  }

  /** True once the peer closed the socket. */
  get closed(): boolean {
    return this.ended;
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
      if (this.ended) throw new Error("connection closed by the server");
      const left = deadline - Date.now();
      if (left <= 0) throw new Error("no packet within the timeout");
      await this.wait(left);
    }
  }

  /** Resolves with true when the server closes the socket within `timeoutMs`, with false (and what it sent) otherwise. */
  async waitClosed(timeoutMs = 5000): Promise<{ closed: boolean; pending: number }> {
    const deadline = Date.now() + timeoutMs;
    while (!this.ended && Date.now() < deadline) await this.wait(deadline - Date.now());
    return { closed: this.ended, pending: this.buf.length };
  }

  private wait(ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const t = setTimeout(resolve, ms);
      this.waiter = () => {
        clearTimeout(t);
        this.waiter = null;
        resolve();
      };
    });
  }
}

/** One wire packet: 3-byte length, sequence id, payload. */
export function packet(seq: number, payload: Buffer): Buffer {
  const h = Buffer.alloc(4);
  h.writeUIntLE(payload.length, 0, 3);
  h[3] = seq;
  return Buffer.concat([h, payload]);
}

export function nativeScramble(password: string, nonce: Buffer): Buffer {
  const sha1 = (...b: Buffer[]): Buffer => crypto.createHash("sha1").update(Buffer.concat(b)).digest();
  const s1 = sha1(Buffer.from(password));
  const s3 = sha1(nonce, sha1(s1));
  return Buffer.from(s1.map((x, i) => x ^ s3[i]));
}

/** Client capability flags this client can ask for. */
export const enum RawCapability {
  LongPassword = 0x1,
  LongFlag = 0x4,
  ConnectWithDb = 0x8,
  Protocol41 = 0x200,
  Transactions = 0x2000,
  SecureConnection = 0x8000,
  MultiStatements = 0x10000,
  MultiResults = 0x20000,
  PsMultiResults = 0x40000,
  PluginAuth = 0x80000,
}

const BASE_CAPABILITIES =
  RawCapability.LongPassword | RawCapability.LongFlag | RawCapability.ConnectWithDb | RawCapability.Protocol41 |
  RawCapability.Transactions | RawCapability.SecureConnection | RawCapability.PluginAuth;

/** MariaDB's extended capability MARIADB_CLIENT_STMT_BULK_OPERATIONS (bit 34: bit 2 of the extended word). */
export const MARIADB_STMT_BULK_OPERATIONS = 0x4;

export interface RawLogin {
  host?: string;
  port: number;
  user: string;
  password: string;
  database: string;
  /** More client capabilities (RawCapability), on top of protocol 4.1 with plugin auth and no DEPRECATE_EOF. */
  capabilities?: number;
  /** MariaDB extended capabilities (the handshake response's last 4 filler bytes); only sent if the server offers them. */
  mariadbCapabilities?: number;
}

export interface RawSession {
  readonly s: net.Socket;
  readonly r: PacketReader;
  /** The connection id of the greeting. */
  readonly connectionId: number;
  /** The server's extended MariaDB capabilities from the greeting (0 if it announced CLIENT_MYSQL). */
  readonly serverMariadbCapabilities: number;
}

/** Logs in with mysql_native_password (answering an auth switch to it) and returns the open session. */
export async function rawLogin(o: RawLogin): Promise<RawSession> {
  const s = net.connect(o.port, o.host ?? "127.0.0.1");
  const r = new PacketReader(s);
  const greeting = (await r.next()).payload;
  let at = greeting.indexOf(0, 1) + 1;
  const connectionId = greeting.readUInt32LE(at);
  at += 4;
  const part1 = greeting.subarray(at, at + 8);
  at += 8 + 1; // filler
  const capsLow = greeting.readUInt16LE(at);
  at += 2 + 1 + 2; // caps low, charset, status
  at += 2; // caps high
  const authLen = greeting[at];
  at += 1 + 6; // auth data length, 6 reserved bytes
  const serverExt = (capsLow & 0x1) === 0 ? greeting.readUInt32LE(at) : 0;
  at += 4;
  const part2 = greeting.subarray(at, at + Math.max(13, authLen - 8) - 1);
  const ext = (o.mariadbCapabilities ?? 0) & serverExt;
  // bit 0 is CLIENT_MYSQL to MariaDB: a client that leaves it off sends extended capabilities in the filler's last 4 bytes
  const caps = (BASE_CAPABILITIES | (o.capabilities ?? 0)) & ~(ext !== 0 ? RawCapability.LongPassword : 0);
  const token = nativeScramble(o.password, Buffer.concat([part1, part2]));
  const head = Buffer.alloc(32);
  head.writeUInt32LE(caps, 0);
  head.writeUInt32LE(16 * 1024 * 1024, 4);
  head[8] = 45; // utf8mb4_general_ci
  if (ext !== 0) head.writeUInt32LE(ext, 28);
  s.write(packet(1, Buffer.concat([head, Buffer.from(o.user + "\0"), Buffer.from([token.length]), token, Buffer.from(o.database + "\0mysql_native_password\0")])));
  let reply = await r.next();
  if (reply.payload[0] === 0xfe) {
    // AuthSwitchRequest: plugin name, then the new nonce (NUL-terminated)
    const nameEnd = reply.payload.indexOf(0, 1);
    const nonce = reply.payload.subarray(nameEnd + 1, reply.payload.length - 1);
    s.write(packet(reply.seq + 1, nativeScramble(o.password, Buffer.from(nonce))));
    reply = await r.next();
  }
  if (reply.payload[0] !== 0x00) {
    s.destroy();
    throw new Error(`login refused: ${reply.payload.subarray(9).toString()}`);
  }
  return { s, r, connectionId, serverMariadbCapabilities: serverExt };
}

/** True for an EOF packet (0xfe, under 9 bytes), as opposed to a row starting with 0xfe. */
export function isEof(payload: Buffer): boolean {
  return payload[0] === 0xfe && payload.length < 9;
}

export function isErr(payload: Buffer): boolean {
  return payload[0] === 0xff;
}

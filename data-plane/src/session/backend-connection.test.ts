import { Buffer } from "node:buffer";
import * as net from "node:net";
import { constants, createHash, generateKeyPairSync, privateDecrypt } from "node:crypto";
import { PacketFramer } from "../protocol/framer";
import { buildHandshakeV10 } from "../protocol/packets/handshake-v10";
import { parseHandshakeResponse41 } from "../protocol/packets/handshake-response41";
import { buildAuthSwitchRequest } from "../protocol/packets/auth-switch-request";
import { buildOk } from "../protocol/packets/ok";
import { buildErr } from "../protocol/packets/err";
import { framePayload } from "../protocol/codec";
import { Capability } from "../protocol/constants";
import { nativePasswordHash, verifyNativePassword } from "../protocol/auth/mysql-native-password";
import { BackendHandshake, backendCapabilities, type BackendLoginParams } from "./backend-connection";

const MYSQL8_CAPS = 0xdfffffff >>> 0; // MySQL 8.0 greeting
const NONCE = Buffer.from("abcdefghij0123456789");
const NONCE2 = Buffer.from("ZYXWVUTSRQPONMLKJIHG");

type Step = (seq: number, payload: Buffer, s: net.Socket) => void;

/** A backend that runs `steps` in order, one per packet received. */
async function scripted(plugin: string, steps: Step[]): Promise<{ port: number; close(): Promise<void> }> {
  const server = net.createServer((s) => {
    s.on("error", () => {});
    let i = 0;
    const f = new PacketFramer({ maxPacketSize: 1 << 20 }, (seq, p) => steps[i++]?.(seq, Buffer.from(p), s));
    s.on("data", (d) => f.push(d));
    s.write(
      buildHandshakeV10({
        protocolVersion: 10,
        serverVersion: "8.0.36",
        connectionId: 9,
        authPluginData: NONCE,
        capabilities: MYSQL8_CAPS & ~Capability.Ssl,
        mariadbCapabilities: 0,
        characterSet: 255,
        statusFlags: 2,
        authPluginName: plugin,
      }),
    );
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as net.AddressInfo).port;
  return { port, close: () => new Promise((r) => server.close(() => r())) };
}

function params(over: Partial<BackendLoginParams> = {}): BackendLoginParams {
  return {
    user: "app",
    password: "apppw",
    clientCapabilities: (Capability.Protocol41 | Capability.DeprecateEof | Capability.MultiResults | Capability.Compress) >>> 0,
    maxPacketSize: 1 << 24,
    characterSet: 45,
    database: null,
    connectAttributes: new Map([["_client_name", "test"]]),
    clientAddress: "192.0.2.7:4242",
    timeoutMs: 1000,
    maxPacketSize4Handshake: 1 << 16,
    ...over,
  };
}

const sha256 = (...b: Buffer[]): Buffer => b.reduce((h, x) => h.update(x), createHash("sha256")).digest();

function checkSha2Token(token: Buffer, password: string, nonce: Buffer): boolean {
  const s1 = sha256(Buffer.from(password));
  const mix = sha256(sha256(s1), nonce);
  for (let i = 0; i < 32; i++) mix[i] ^= token[i];
  return mix.equals(s1);
}

describe("BackendHandshake", () => {
  it("logs in with caching_sha2_password (fast path) and mirrors the client's capabilities", async () => {
    let sent: ReturnType<typeof parseHandshakeResponse41> | null = null;
    const srv = await scripted("caching_sha2_password", [
      (seq, p, s) => {
        sent = parseHandshakeResponse41(p);
        expect(checkSha2Token(sent.authResponse, "apppw", NONCE)).toBe(true);
        s.write(framePayload(Buffer.from([0x01, 0x03]), seq + 1));
        s.write(buildOk({}, 0, seq + 2));
      },
    ]);
    const hs = new BackendHandshake({ name: "m8", host: "127.0.0.1", port: srv.port, weight: 1 }, params());
    const link = await hs.result;
    expect(link.greeting.serverVersion).toBe("8.0.36");
    expect(sent!.authPluginName).toBe("caching_sha2_password");
    expect(sent!.connectAttributes.get("_mysqlgw_client_addr")).toBe("192.0.2.7:4242");
    expect(sent!.capabilities & Capability.DeprecateEof).toBeTruthy();
    expect(sent!.capabilities & Capability.Compress).toBe(0);
    expect(sent!.capabilities & Capability.ConnectWithDb).toBe(0);
    link.socket.destroy();
    await srv.close();
  });

  it("completes caching_sha2_password full authentication with the server's RSA key", async () => {
    const { publicKey, privateKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
    const srv = await scripted("caching_sha2_password", [
      (seq, _p, s) => s.write(framePayload(Buffer.from([0x01, 0x04]), seq + 1)),
      (seq, p, s) => {
        expect(p.toString("hex")).toBe("02");
        const pem = publicKey.export({ type: "spki", format: "pem" });
        s.write(framePayload(Buffer.concat([Buffer.from([0x01]), Buffer.from(pem)]), seq + 1));
      },
      (seq, p, s) => {
        const plain = privateDecrypt({ key: privateKey, padding: constants.RSA_PKCS1_OAEP_PADDING }, p);
        for (let i = 0; i < plain.length; i++) plain[i] ^= NONCE[i % 20];
        expect(plain.toString()).toBe("apppw\0");
        s.write(buildOk({}, 0, seq + 1));
      },
    ]);
    const link = await new BackendHandshake({ name: "m8", host: "127.0.0.1", port: srv.port, weight: 1 }, params()).result;
    link.socket.destroy();
    await srv.close();
  });

  it("follows an AuthSwitchRequest to mysql_native_password", async () => {
    const srv = await scripted("caching_sha2_password", [
      (seq, _p, s) => s.write(buildAuthSwitchRequest("mysql_native_password", NONCE2, seq + 1)),
      (seq, p, s) => {
        expect(verifyNativePassword(p, NONCE2, nativePasswordHash("apppw"))).toBe(true);
        s.write(buildOk({}, 0, seq + 1));
      },
    ]);
    const link = await new BackendHandshake({ name: "m", host: "127.0.0.1", port: srv.port, weight: 1 }, params()).result;
    link.socket.destroy();
    await srv.close();
  });

  it("reports the backend's ERR, a refused connection and a timeout as typed errors", async () => {
    const srv = await scripted("mysql_native_password", [(seq, _p, s) => s.end(buildErr({ errno: 1045, sqlState: "28000", message: "Access denied for user 'app'" }, seq + 1))]);
    await expect(new BackendHandshake({ name: "m", host: "127.0.0.1", port: srv.port, weight: 1 }, params()).result).rejects.toMatchObject({
      code: "MGW_ERR_BACKEND_REJECTED",
      errno: 1045,
      sqlState: "28000",
    });
    await srv.close();
    await expect(new BackendHandshake({ name: "m", host: "127.0.0.1", port: srv.port, weight: 1 }, params()).result).rejects.toMatchObject({
      code: "MGW_ERR_BACKEND_CONNECT",
    });
    const silent = net.createServer((s) => s.on("error", () => {}));
    await new Promise<void>((r) => silent.listen(0, "127.0.0.1", r));
    const port = (silent.address() as net.AddressInfo).port;
    await expect(new BackendHandshake({ name: "m", host: "127.0.0.1", port, weight: 1 }, params({ timeoutMs: 100 })).result).rejects.toMatchObject({
      code: "MGW_ERR_BACKEND_TIMEOUT",
    });
    await new Promise((r) => silent.close(r));
  });

  it("backendCapabilities keeps command-phase flags common to both and handshake flags of the server", () => {
    const client = (Capability.Protocol41 | Capability.DeprecateEof | Capability.SessionTrack | Capability.Ssl | Capability.FoundRows) >>> 0;
    const server = (Capability.Protocol41 | Capability.DeprecateEof | Capability.Ssl | Capability.PluginAuth | Capability.ConnectAttrs | Capability.ConnectWithDb) >>> 0;
    const caps = backendCapabilities(client, server, false);
    expect(caps).toBe((Capability.Protocol41 | Capability.DeprecateEof | Capability.PluginAuth | Capability.ConnectAttrs) >>> 0);
    expect(backendCapabilities(client, server, true) & Capability.ConnectWithDb).toBeTruthy();
  });
});

import { Buffer } from "node:buffer";
import { generateKeyPairSync } from "node:crypto";
import { Capability } from "../protocol/constants";
import { scrambleNativePassword, parseNativePasswordHash, nativePasswordHash } from "../protocol/auth/mysql-native-password";
import { encryptPasswordWithPublicKey, scrambleCachingSha2Password } from "../protocol/auth/caching-sha2-password";
import { cachingSha2PasswordHash, parseCachingSha2Verifier, type CachingSha2Verifier } from "../protocol/auth/sha256-crypt";
import type { HandshakeResponse41 } from "../protocol/packets/handshake-response41";
import { AuthStepKind, CachingSha2Cache, ClientAuthentication, type AuthStep, type ClientAuthRuntime } from "./client-auth";
import type { UserSnapshot } from "./config-snapshot";

const PW = "pw-1";
const nonce = Buffer.from("0123456789abcdefghij");
const keys = generateKeyPairSync("rsa", { modulusLength: 2048 });
const rsa = { publicKeyPem: Buffer.from(keys.publicKey.export({ type: "spki", format: "pem" })), privateKey: keys.privateKey, modulusBytes: 256 };

function user(name: string, o: { native?: boolean; sha2?: string; requireTls?: boolean } = {}): UserSnapshot {
  const sha2Hash = o.sha2 ?? "";
  return {
    name,
    stage2: o.native ? parseNativePasswordHash(nativePasswordHash(PW)) : null,
    sha2Hash,
    sha2: sha2Hash === "" ? null : (parseCachingSha2Verifier(sha2Hash) as CachingSha2Verifier),
    hashValid: true,
    requireTls: o.requireTls ?? false,
    backendUser: name,
    secretRef: "",
  } as UserSnapshot;
}

const SHA2 = cachingSha2PasswordHash(PW);
const users = new Map<string, UserSnapshot>([
  ["native", user("native", { native: true })],
  ["sha2", user("sha2", { sha2: SHA2 })],
  ["both", user("both", { native: true, sha2: SHA2 })],
  ["tls", user("tls", { native: true, requireTls: true })],
  ["open", user("open")],
]);

function response(username: string, plugin: string, token: Buffer): HandshakeResponse41 {
  return {
    capabilities: (Capability.Protocol41 | Capability.PluginAuth | Capability.SecureConnection) >>> 0,
    mariadbCapabilities: 0,
    maxPacketSize: 1 << 24,
    characterSet: 45,
    username,
    authResponse: token,
    database: null,
    authPluginName: plugin,
    connectAttributes: new Map(),
  };
}

function runtime(): ClientAuthRuntime {
  return { rsa, cache: new CachingSha2Cache(10) };
}

const sha2Token = (pw = PW) => scrambleCachingSha2Password(pw, nonce);
const sent = (s: AuthStep): string => (s.kind === AuthStepKind.Send ? s.payload.toString("latin1") : `kind ${s.kind}`);

describe("ClientAuthentication", () => {
  it("keeps the client's plugin when the user has its verifier, switches otherwise", () => {
    const rt = runtime();
    expect(new ClientAuthentication(users, response("native", "mysql_native_password", scrambleNativePassword(PW, nonce)), nonce, false, rt).begin().kind).toBe(AuthStepKind.Done);
    const a = new ClientAuthentication(users, response("sha2", "mysql_native_password", scrambleNativePassword(PW, nonce)), nonce, false, rt);
    expect(sent(a.begin())).toBe("\xfecaching_sha2_password\0" + nonce.toString("latin1") + "\0");
    const b = new ClientAuthentication(users, response("native", "caching_sha2_password", sha2Token()), nonce, false, rt);
    expect(sent(b.begin())).toContain("mysql_native_password");
    expect(b.next(scrambleNativePassword(PW, nonce)).kind).toBe(AuthStepKind.Done);
  });

  it("full path via RSA fills the cache; the next login takes the fast path; a new verifier empties it", () => {
    const rt = runtime();
    const a = new ClientAuthentication(users, response("sha2", "caching_sha2_password", sha2Token()), nonce, false, rt);
    expect(sent(a.begin())).toBe("\x01\x04");
    expect(sent(a.next(Buffer.from([2])))).toBe("\x01" + rsa.publicKeyPem.toString("latin1"));
    const done = a.next(encryptPasswordWithPublicKey(PW, nonce, rsa.publicKeyPem));
    expect(done).toMatchObject({ kind: AuthStepKind.Done, payload: null });
    const b = new ClientAuthentication(users, response("sha2", "caching_sha2_password", sha2Token()), nonce, false, rt);
    const fast = b.begin();
    expect(fast.kind).toBe(AuthStepKind.Done);
    expect(fast.kind === AuthStepKind.Done && fast.payload?.toString("latin1")).toBe("\x01\x03");
    // wrong password with a warm cache: full path, then denied
    const c = new ClientAuthentication(users, response("sha2", "caching_sha2_password", sha2Token("bad")), nonce, true, rt);
    expect(sent(c.begin())).toBe("\x01\x04");
    expect(c.next(Buffer.from("bad\0"))).toMatchObject({ kind: AuthStepKind.Denied, usedPassword: true });
    // the policy got a new verifier for the same password: the cached entry no longer applies
    const changed = new Map(users).set("sha2", user("sha2", { sha2: cachingSha2PasswordHash(PW) }));
    expect(sent(new ClientAuthentication(changed, response("sha2", "caching_sha2_password", sha2Token()), nonce, false, rt).begin())).toBe("\x01\x04");
  });

  it("over TLS takes the clear password; without TLS a clear password is refused", () => {
    const a = new ClientAuthentication(users, response("both", "caching_sha2_password", sha2Token()), nonce, true, runtime());
    expect(sent(a.begin())).toBe("\x01\x04");
    expect(a.next(Buffer.from(PW + "\0")).kind).toBe(AuthStepKind.Done);
    const b = new ClientAuthentication(users, response("both", "caching_sha2_password", sha2Token()), nonce, false, runtime());
    b.begin();
    expect(b.next(Buffer.from(PW + "\0")).kind).toBe(AuthStepKind.Denied);
  });

  it("restarts a caching_sha2 client that sent an empty token (libmariadb) with an AuthSwitchRequest", () => {
    const a = new ClientAuthentication(users, response("sha2", "caching_sha2_password", Buffer.alloc(0)), nonce, false, runtime());
    expect(sent(a.begin())).toContain("\xfecaching_sha2_password\0");
    expect(sent(a.next(sha2Token()))).toBe("\x01\x04");
  });

  it("unknown users take the full path and are denied; users without a password need an empty token", () => {
    const a = new ClientAuthentication(users, response("nobody", "caching_sha2_password", sha2Token()), nonce, true, runtime());
    expect(sent(a.begin())).toBe("\x01\x04");
    expect(a.next(Buffer.from(PW + "\0"))).toMatchObject({ kind: AuthStepKind.Denied });
    expect(new ClientAuthentication(users, response("nobody", "mysql_native_password", scrambleNativePassword(PW, nonce)), nonce, false, runtime()).begin().kind).toBe(
      AuthStepKind.Denied,
    );
    expect(new ClientAuthentication(users, response("open", "mysql_native_password", Buffer.alloc(0)), nonce, false, runtime()).begin().kind).toBe(AuthStepKind.Done);
    expect(new ClientAuthentication(users, response("open", "mysql_native_password", scrambleNativePassword("x", nonce)), nonce, false, runtime()).begin().kind).toBe(
      AuthStepKind.Denied,
    );
  });

  it("requireTls refuses a correct password on a plain connection", () => {
    const tok = scrambleNativePassword(PW, nonce);
    expect(new ClientAuthentication(users, response("tls", "mysql_native_password", tok), nonce, false, runtime()).begin()).toMatchObject({
      kind: AuthStepKind.Denied,
      reason: "user requires TLS",
    });
    expect(new ClientAuthentication(users, response("tls", "mysql_native_password", tok), nonce, true, runtime()).begin().kind).toBe(AuthStepKind.Done);
  });

  it("bounds the cache, evicting the oldest entry", () => {
    const c = new CachingSha2Cache(2);
    c.set("a", "v", Buffer.alloc(32));
    c.set("b", "v", Buffer.alloc(32));
    c.set("c", "v", Buffer.alloc(32));
    expect(c.size).toBe(2);
    expect(c.get("a", "v")).toBeNull();
    expect(c.get("c", "v")).not.toBeNull();
    expect(c.get("c", "other")).toBeNull();
  });
});

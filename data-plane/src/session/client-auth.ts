import { Buffer } from "node:buffer";
import type { KeyObject } from "node:crypto";
import { CACHING_SHA2_PASSWORD_PLUGIN, CachingSha2Status, Capability, NATIVE_PASSWORD_PLUGIN, ResponseHeader } from "../protocol/constants";
import { PacketWriter } from "../protocol/codec";
import { verifyNativePassword } from "../protocol/auth/mysql-native-password";
import { cachingSha2PasswordHash, parseCachingSha2Verifier, verifyCachingSha2Password, type CachingSha2Verifier } from "../protocol/auth/sha256-crypt";
import { cachingSha2Stage2, clearPasswordFromPacket, decryptRsaPassword, verifyCachingSha2Scramble } from "../protocol/auth/caching-sha2-server";
import type { HandshakeResponse41 } from "../protocol/packets/handshake-response41";
import type { UserSnapshot } from "./config-snapshot";

/**
 * Server-side authentication of one client against mysqlgw's users, as MySQL 8
 * does it: mysql_native_password from the stored SHA1(SHA1(pw)), and
 * caching_sha2_password from the stored SHA-256-crypt verifier with a fast
 * path from an in-memory cache of SHA256(SHA256(pw)) that only a successful
 * full authentication on this process fills.
 */

/** RSA key pair for caching_sha2_password's full path without TLS. */
export interface RsaKeyPair {
  /** SPKI PEM, sent to clients that ask for it. */
  readonly publicKeyPem: Buffer;
  readonly privateKey: KeyObject;
  /** Modulus size in bytes: the length of an encrypted reply. */
  readonly modulusBytes: number;
}

/**
 * Fast-path cache of one worker: user name → SHA256(SHA256(pw)), valid only
 * while the user's stored verifier is the one it was learnt under (a new
 * password in policy makes the entry useless). Bounded: the oldest entry goes.
 * Not shared: each data-plane process learns its own, as each MySQL server does.
 */
export class CachingSha2Cache {
  private readonly entries = new Map<string, { verifier: string; stage2: Buffer }>();
  constructor(readonly maxEntries: number) {}

  get(user: string, verifier: string): Buffer | null {
    const e = this.entries.get(user);
    return e !== undefined && e.verifier === verifier ? e.stage2 : null;
  }

  set(user: string, verifier: string, stage2: Buffer): void {
    this.entries.delete(user);
    this.entries.set(user, { verifier, stage2 });
    if (this.entries.size > this.maxEntries) {
      const oldest = this.entries.keys().next();
      if (oldest.done !== true) this.entries.delete(oldest.value);
    }
  }

  get size(): number {
    return this.entries.size;
  }
}

/** What the authentication needs from the process; one per worker. */
export interface ClientAuthRuntime {
  /** null when no key pair is available (then the RSA path is refused). */
  readonly rsa: RsaKeyPair | null;
  readonly cache: CachingSha2Cache;
}

export const enum AuthStepKind {
  /** Write `payload` as the next packet and feed the client's answer to next(). */
  Send,
  /** Authenticated: write `payload` (if any) first, then OK after the backend login. */
  Done,
  /** Access denied (1045/28000). */
  Denied,
}

export type AuthStep =
  | { kind: AuthStepKind.Send; payload: Buffer }
  | { kind: AuthStepKind.Done; user: UserSnapshot; payload: Buffer | null }
  | { kind: AuthStepKind.Denied; usedPassword: boolean; reason: string };

const enum Phase {
  Token,
  FullAuth,
  RsaReply,
  Finished,
}

/** Verified against for unknown users, so that they take as long as known ones. */
const DUMMY_STAGE2 = Buffer.alloc(20, 0x5a);
let dummySha2: CachingSha2Verifier | null = null;
function dummySha2Verifier(): CachingSha2Verifier {
  if (dummySha2 === null) dummySha2 = parseCachingSha2Verifier(cachingSha2PasswordHash(Buffer.from("mysqlgw-no-such-user"))) as CachingSha2Verifier;
  return dummySha2;
}

function moreData(status: number): Buffer {
  return Buffer.from([ResponseHeader.AuthMoreData, status]);
}

/**
 * One client's authentication. Call begin() once after the HandshakeResponse,
 * then next() with each packet the client sends while the last step was Send.
 * `secure` is true when the connection is TLS (the clear password may travel).
 */
export class ClientAuthentication {
  private readonly user: UserSnapshot | null;
  private readonly clientPlugin: string;
  private plugin: string;
  private phase: Phase;
  private usedPassword: boolean;

  constructor(
    users: ReadonlyMap<string, UserSnapshot>,
    private readonly response: HandshakeResponse41,
    private readonly nonce: Buffer,
    private readonly secure: boolean,
    private readonly runtime: ClientAuthRuntime,
  ) {
    const u = users.get(response.username);
    this.user = u !== undefined && u.hashValid ? u : null;
    const pluginAuth = (response.capabilities & Capability.PluginAuth) !== 0;
    this.clientPlugin = pluginAuth && response.authPluginName ? response.authPluginName : NATIVE_PASSWORD_PLUGIN;
    this.plugin = NATIVE_PASSWORD_PLUGIN;
    this.phase = Phase.Token;
    this.usedPassword = response.authResponse.length > 0;
  }

  /** The plugin chosen for this user (valid after begin()). */
  get pluginName(): string {
    return this.plugin;
  }

  begin(): AuthStep {
    this.plugin = this.choosePlugin();
    const u = this.user;
    // A client whose default plugin is not the greeting's (mysql_native_password)
    // may answer with an empty token made without our nonce (libmariadb does):
    // restart its plugin with an AuthSwitchRequest, as MySQL does.
    const restart =
      this.plugin !== NATIVE_PASSWORD_PLUGIN && this.response.authResponse.length === 0 && !(u !== null && u.stage2 === null && u.sha2 === null);
    if (this.plugin !== this.clientPlugin || restart) {
      if ((this.response.capabilities & Capability.PluginAuth) === 0) {
        return this.deny(`client cannot switch to ${this.plugin}`);
      }
      const w = new PacketWriter(64);
      w.u8(ResponseHeader.Eof).nulString(this.plugin).bytes(this.nonce).u8(0);
      return { kind: AuthStepKind.Send, payload: w.finish(0).subarray(4) };
    }
    return this.onToken(this.response.authResponse);
  }

  next(payload: Buffer): AuthStep {
    switch (this.phase) {
      case Phase.Token:
        this.usedPassword = payload.length > 0;
        return this.onToken(payload);
      case Phase.FullAuth:
        return this.onFullAuth(payload);
      case Phase.RsaReply:
        return this.onRsaReply(payload);
      default:
        return this.deny("unexpected packet");
    }
  }

  /** Prefer the plugin the client started with when the user has its verifier. */
  private choosePlugin(): string {
    const u = this.user;
    const known = this.clientPlugin === NATIVE_PASSWORD_PLUGIN || this.clientPlugin === CACHING_SHA2_PASSWORD_PLUGIN;
    if (u === null || (u.stage2 === null && u.sha2 === null)) return known ? this.clientPlugin : NATIVE_PASSWORD_PLUGIN;
    if (this.clientPlugin === CACHING_SHA2_PASSWORD_PLUGIN && u.sha2 !== null) return CACHING_SHA2_PASSWORD_PLUGIN;
    if (this.clientPlugin === NATIVE_PASSWORD_PLUGIN && u.stage2 !== null) return NATIVE_PASSWORD_PLUGIN;
    return u.sha2 !== null ? CACHING_SHA2_PASSWORD_PLUGIN : NATIVE_PASSWORD_PLUGIN;
  }

  private onToken(token: Buffer): AuthStep {
    const u = this.user;
    const noPassword = u !== null && u.stage2 === null && u.sha2 === null;
    if (noPassword) return token.length === 0 ? this.accept(null) : this.deny("user has no password");
    if (this.plugin === NATIVE_PASSWORD_PLUGIN) {
      const ok = verifyNativePassword(token, this.nonce, u?.stage2 ?? DUMMY_STAGE2);
      return ok && u !== null ? this.accept(null) : this.deny("wrong password");
    }
    // caching_sha2_password: an empty token means an empty password
    if (token.length === 0) return this.deny("empty password");
    if (u !== null && u.sha2 !== null) {
      const stage2 = this.runtime.cache.get(u.name, u.sha2Hash);
      if (stage2 !== null && verifyCachingSha2Scramble(token, this.nonce, stage2)) {
        return this.accept(moreData(CachingSha2Status.FastAuthSuccess));
      }
    }
    // unknown users take the same road as a cache miss
    this.phase = Phase.FullAuth;
    return { kind: AuthStepKind.Send, payload: moreData(CachingSha2Status.PerformFullAuthentication) };
  }

  private onFullAuth(payload: Buffer): AuthStep {
    if (this.secure) return this.verifyClear(clearPasswordFromPacket(payload));
    const rsa = this.runtime.rsa;
    if (payload.length === 1 && payload[0] === CachingSha2Status.RequestPublicKey) {
      if (rsa === null) return this.deny("no RSA key pair to send");
      this.phase = Phase.RsaReply;
      const out = Buffer.allocUnsafe(rsa.publicKeyPem.length + 1);
      out[0] = ResponseHeader.AuthMoreData;
      rsa.publicKeyPem.copy(out, 1);
      return { kind: AuthStepKind.Send, payload: out };
    }
    // a client that already holds our public key sends the encrypted password at once
    return this.onRsaReply(payload);
  }

  private onRsaReply(payload: Buffer): AuthStep {
    const rsa = this.runtime.rsa;
    if (rsa === null || payload.length !== rsa.modulusBytes) return this.deny("clear password refused without TLS");
    const pw = decryptRsaPassword(payload, this.nonce, rsa.privateKey);
    if (pw === null) return this.deny("RSA reply does not decrypt");
    return this.verifyClear(pw);
  }

  private verifyClear(password: Buffer): AuthStep {
    const u = this.user;
    const v = u?.sha2 ?? dummySha2Verifier();
    const ok = password.length > 0 && verifyCachingSha2Password(password, v);
    if (ok && u !== null && u.sha2 !== null) this.runtime.cache.set(u.name, u.sha2Hash, cachingSha2Stage2(password));
    password.fill(0);
    return ok && u !== null && u.sha2 !== null ? this.accept(null) : this.deny("wrong password");
  }

  private accept(payload: Buffer | null): AuthStep {
    this.phase = Phase.Finished;
    const u = this.user as UserSnapshot;
    // As MySQL's REQUIRE SSL: the password is checked first, the transport after.
    if (u.requireTls && !this.secure) return this.deny("user requires TLS");
    return { kind: AuthStepKind.Done, user: u, payload };
  }

  private deny(reason: string): AuthStep {
    this.phase = Phase.Finished;
    return { kind: AuthStepKind.Denied, usedPassword: this.usedPassword, reason };
  }
}

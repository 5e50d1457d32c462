import { Buffer } from "node:buffer";
import * as net from "node:net";
import * as tls from "node:tls";
import {
  BackendConnectError,
  BackendProtocolError,
  BackendRejectedError,
  BackendTimeoutError,
  BackendTlsError,
  MgwError,
  UnsupportedAuthPluginError,
} from "../errors";
import {
  CACHING_SHA2_PASSWORD_PLUGIN,
  Capability,
  CachingSha2Status,
  NATIVE_PASSWORD_PLUGIN,
  ResponseHeader,
} from "../protocol/constants";
import { PacketWriter } from "../protocol/codec";
import { PacketFramer } from "../protocol/framer";
import { parseHandshakeV10, type HandshakeV10 } from "../protocol/packets/handshake-v10";
import { buildHandshakeResponse41 } from "../protocol/packets/handshake-response41";
import { parseAuthSwitchRequest } from "../protocol/packets/auth-switch-request";
import { parseErr } from "../protocol/packets/err";
import { buildSslRequest } from "../protocol/packets/ssl-request";
import { backendTlsOptions, type BackendTlsSettings } from "./tls";
import { scrambleNativePassword } from "../protocol/auth/mysql-native-password";
import { encryptPasswordWithPublicKey, scrambleCachingSha2Password } from "../protocol/auth/caching-sha2-password";
import type { BackendTarget } from "./config-snapshot";

/** What the client negotiated with us, to be mirrored toward the backend. */
export interface BackendLoginParams {
  user: string;
  password: string;
  /** Client capabilities already masked to what we advertised. */
  clientCapabilities: number;
  /** The client's MariaDB extended capabilities, masked to what we advertised; sent where the backend offers them. Default 0. */
  mariadbCapabilities?: number;
  maxPacketSize: number;
  characterSet: number;
  database: string | null;
  connectAttributes: ReadonlyMap<string, string>;
  /** "ip:port" of the client, sent as connect attribute _mysqlgw_client_addr. */
  clientAddress: string;
  timeoutMs: number;
  /** Largest handshake packet accepted from the backend. */
  maxPacketSize4Handshake: number;
  /** TLS toward this backend (the cluster's tls); absent or null: plain TCP. */
  tls?: BackendTlsSettings | null;
  /** PROXY protocol header written first on the connection (before the greeting is read); absent or null: none. */
  proxyHeader?: Buffer | null;
}

/** An authenticated backend connection, handed over between packets. */
export interface BackendLink {
  /** Paused; has no 'data' listener. Its 'error' listener is a no-op: add yours. */
  socket: net.Socket;
  greeting: HandshakeV10;
  /** Capabilities sent to the backend. */
  capabilities: number;
  /** The backend's OK payload ending authentication (a copy). */
  okPayload: Buffer;
}

/** Capabilities that only concern the handshake: we set them from what the backend offers. */
const HANDSHAKE_CAPS =
  (Capability.Protocol41 |
    Capability.SecureConnection |
    Capability.PluginAuth |
    Capability.PluginAuthLenencClientData |
    Capability.ConnectAttrs |
    Capability.ConnectWithDb) >>>
  0;

/** Never toward backends (not implemented on the gateway yet). */
const NEVER_CAPS =
  (Capability.Ssl |
    Capability.Compress |
    Capability.SslVerifyServerCert |
    Capability.ZstdCompression |
    Capability.QueryAttributes |
    Capability.OptionalResultsetMetadata |
    Capability.MultiFactorAuth |
    Capability.CapabilityExtension) >>>
  0;

/**
 * The capabilities we send to a backend: the client's own (so command-phase
 * bytes mean the same on both sides) intersected with the backend's, plus the
 * handshake-only ones the backend offers.
 */
export function backendCapabilities(clientCaps: number, serverCaps: number, withDb: boolean): number {
  let caps = clientCaps & serverCaps & ~NEVER_CAPS & ~HANDSHAKE_CAPS;
  caps |= serverCaps & (HANDSHAKE_CAPS & ~Capability.ConnectWithDb);
  if (withDb) caps |= serverCaps & Capability.ConnectWithDb;
  return caps >>> 0;
}

const enum Phase {
  Greeting,
  AuthResult,
  PublicKey,
  Done,
}

/**
 * Connects to one backend and logs in as a client would. One attempt, bounded
 * by params.timeoutMs for connect + authentication. `result` rejects with an
 * MgwError (BackendConnectError, BackendTimeoutError, BackendRejectedError,
 * BackendProtocolError, UnsupportedAuthPluginError).
 */
export class BackendHandshake {
  readonly result: Promise<BackendLink>;
  readonly target: BackendTarget;
  private readonly params: BackendLoginParams;
  /** The TCP socket, replaced by its TLSSocket when the cluster uses TLS. */
  private socket: net.Socket;
  private tlsActive: boolean;
  private readonly framer: PacketFramer;
  private readonly timer: NodeJS.Timeout;
  private phase: Phase;
  private greeting: HandshakeV10 | null;
  private plugin: string;
  private nonce: Buffer;
  private caps: number;
  private resolve!: (link: BackendLink) => void;
  private reject!: (err: MgwError) => void;
  /** abort() was called: the outcome says nothing about the backend. */
  private aborted: boolean;

  constructor(target: BackendTarget, params: BackendLoginParams) {
    this.target = target;
    this.aborted = false;
    this.params = params;
    this.phase = Phase.Greeting;
    this.greeting = null;
    this.plugin = "";
    this.nonce = Buffer.alloc(0);
    this.caps = 0;
    this.tlsActive = false;
    this.result = new Promise<BackendLink>((resolve, reject) => {
      this.resolve = resolve;
      this.reject = reject;
    });
    this.framer = new PacketFramer({ maxPacketSize: params.maxPacketSize4Handshake }, this.onPacket);
    this.socket = net.connect({ host: target.host, port: target.port, noDelay: true });
    if (params.proxyHeader) this.socket.write(params.proxyHeader);
    this.socket.on("data", this.onData);
    this.socket.on("error", this.onError);
    this.socket.on("close", this.onClose);
    this.timer = setTimeout(this.onTimeout, params.timeoutMs);
  }

  /** Gives up (the client went away): destroys the socket, rejects `result`. */
  abort(): void {
    this.aborted = true;
    this.fail(new BackendConnectError(`${this.describe()}: aborted`));
  }

  private describe(): string {
    return `backend '${this.target.name}' (${this.target.host}:${this.target.port})`;
  }

  private readonly onTimeout = (): void => {
    this.fail(new BackendTimeoutError(`${this.describe()}: no successful login within ${this.params.timeoutMs} ms`));
  };

  private readonly onError = (err: NodeJS.ErrnoException): void => {
    if (this.phase === Phase.Done) return;
    this.fail(new BackendConnectError(`${this.describe()}: ${err.code ?? err.message}`, { cause: err }));
  };

  private readonly onClose = (): void => {
    if (this.phase === Phase.Done) return;
    this.fail(new BackendConnectError(`${this.describe()}: connection closed during login`));
  };

  private readonly onData = (chunk: Buffer): void => {
    try {
      this.framer.push(chunk);
    } catch (err) {
      this.fail(err instanceof MgwError ? err : new BackendProtocolError(`${this.describe()}: ${String(err)}`, { cause: err }));
    }
  };

  private fail(err: MgwError): void {
    if (this.phase === Phase.Done) return;
    this.phase = Phase.Done;
    clearTimeout(this.timer);
    this.socket.destroy();
    // local ejection (routing/backend-state.ts): only failures to reach the server count against it;
    // a server that answered (refused the login, an unsupported plugin, TLS settings) is reachable
    const o = this.target.loginOutcomes;
    if (o !== undefined && !this.aborted) {
      if (err instanceof BackendConnectError || err instanceof BackendTimeoutError || err instanceof BackendProtocolError) o.connectFailed(this.target.name, Date.now());
      else o.connectSucceeded(this.target.name);
    }
    this.reject(err);
  }

  private write(payload: PacketWriter, seq: number): void {
    this.socket.write(payload.finish(seq));
  }

  private rejected(payload: Buffer): never {
    const e = parseErr(payload);
    throw new BackendRejectedError(e.errno, e.sqlState, e.message, this.describe());
  }

  /** Token for `plugin` over `nonce`; throws for plugins we do not speak. */
  private token(plugin: string, nonce: Buffer): Buffer {
    if (plugin === NATIVE_PASSWORD_PLUGIN || plugin === "") return scrambleNativePassword(this.params.password, nonce);
    if (plugin === CACHING_SHA2_PASSWORD_PLUGIN) return scrambleCachingSha2Password(this.params.password, nonce);
    throw new UnsupportedAuthPluginError(plugin, "backend");
  }

  private readonly onPacket = (seq: number, payload: Buffer): void => {
    switch (this.phase) {
      case Phase.Greeting:
        return this.onGreeting(seq, payload);
      case Phase.AuthResult:
        return this.onAuthResult(seq, payload);
      case Phase.PublicKey:
        return this.onPublicKey(seq, payload);
      default:
        return;
    }
  };

  private onGreeting(seq: number, payload: Buffer): void {
    if (payload.length > 0 && payload[0] === ResponseHeader.Err) this.rejected(payload);
    const g = parseHandshakeV10(payload);
    if ((g.capabilities & Capability.Protocol41) === 0) {
      throw new BackendProtocolError(`${this.describe()}: server does not speak the 4.1 protocol`);
    }
    this.greeting = g;
    const p = this.params;
    this.caps = backendCapabilities(p.clientCapabilities, g.capabilities, p.database !== null && p.database !== "");
    // speak the server's default plugin when we can; otherwise offer native and let it switch us
    this.plugin = g.authPluginName === CACHING_SHA2_PASSWORD_PLUGIN ? CACHING_SHA2_PASSWORD_PLUGIN : NATIVE_PASSWORD_PLUGIN;
    this.nonce = g.authPluginData;
    const attrs = new Map(p.connectAttributes);
    attrs.set("_mysqlgw_client_addr", p.clientAddress);
    const tlsSettings = p.tls ?? null;
    let respSeq = seq + 1;
    if (tlsSettings !== null) {
      this.startTls(tlsSettings, g, respSeq);
      respSeq += 1;
    }
    const wire = buildHandshakeResponse41(
      {
        capabilities: this.caps,
        mariadbCapabilities: ((p.mariadbCapabilities ?? 0) & g.mariadbCapabilities) >>> 0,
        maxPacketSize: p.maxPacketSize,
        characterSet: p.characterSet || g.characterSet,
        username: p.user,
        authResponse: this.token(this.plugin, this.nonce),
        database: p.database,
        authPluginName: this.plugin,
        connectAttributes: attrs,
      },
      respSeq,
    );
    const out = this.socket;
    if (this.tlsActive) out.once("secureConnect", () => out.write(wire));
    else out.write(wire);
    this.phase = Phase.AuthResult;
  }

  /**
   * Sends the SSLRequest (sequence id `seq`) and wraps the socket in TLS; the
   * HandshakeResponse follows over TLS once the TLS handshake completed.
   */
  private startTls(t: BackendTlsSettings, g: HandshakeV10, seq: number): void {
    if (t.error !== null) throw new BackendTlsError(`${this.describe()}: ${t.error}`);
    if ((g.capabilities & Capability.Ssl) === 0) {
      throw new BackendTlsError(
        `${this.describe()}: the server does not offer TLS (no CLIENT_SSL in its greeting) but the cluster's tls.mode is ${t.mode}; ` +
          `enable TLS on the server (ssl_cert, ssl_key) or set tls.mode to MODE_DISABLED`,
      );
    }
    const p = this.params;
    this.caps = (this.caps | Capability.Ssl) >>> 0;
    const raw = this.socket;
    raw.write(buildSslRequest(this.caps, p.maxPacketSize, p.characterSet || g.characterSet, ((p.mariadbCapabilities ?? 0) & g.mariadbCapabilities) >>> 0, seq));
    raw.removeListener("data", this.onData);
    raw.removeListener("close", this.onClose);
    const s = tls.connect(backendTlsOptions(t, raw, this.target.host));
    s.on("data", this.onData);
    s.on("error", this.onTlsError);
    s.on("close", this.onClose);
    this.socket = s;
    this.tlsActive = true;
  }

  private readonly onTlsError = (err: NodeJS.ErrnoException): void => {
    if (this.phase === Phase.Done) return;
    this.fail(
      new BackendTlsError(
        `${this.describe()}: TLS handshake failed: ${err.message}${err.code ? ` (${err.code})` : ""}; check the cluster's tls (caFile, serverName, mode) against the server's certificate`,
        { cause: err },
      ),
    );
  };

  private onAuthResult(seq: number, payload: Buffer): void {
    if (payload.length === 0) throw new BackendProtocolError(`${this.describe()}: empty packet during login`);
    switch (payload[0]) {
      case ResponseHeader.Ok:
        return this.succeed(payload);
      case ResponseHeader.Err:
        return this.rejected(payload);
      case ResponseHeader.Eof: {
        if (payload.length === 1) throw new UnsupportedAuthPluginError("mysql_old_password", "backend");
        const sw = parseAuthSwitchRequest(payload);
        this.plugin = sw.pluginName;
        this.nonce = sw.pluginData;
        this.write(new PacketWriter(32).bytes(this.token(this.plugin, this.nonce)), seq + 1);
        return;
      }
      case ResponseHeader.AuthMoreData: {
        if (this.plugin !== CACHING_SHA2_PASSWORD_PLUGIN || payload.length < 2) {
          throw new BackendProtocolError(`${this.describe()}: unexpected AuthMoreData for plugin '${this.plugin}'`);
        }
        if (payload[1] === CachingSha2Status.FastAuthSuccess) return; // OK follows
        if (payload[1] === CachingSha2Status.PerformFullAuthentication) {
          if (this.tlsActive) {
            // over TLS the clear password may travel, as MySQL clients do
            const pw = Buffer.from(this.params.password, "utf8");
            this.write(new PacketWriter(pw.length + 1).bytes(pw).u8(0), seq + 1);
            return;
          }
          // without TLS: ask for the RSA public key
          this.write(new PacketWriter(4).u8(CachingSha2Status.RequestPublicKey), seq + 1);
          this.phase = Phase.PublicKey;
          return;
        }
        throw new BackendProtocolError(`${this.describe()}: unknown caching_sha2_password status ${payload[1]}`);
      }
      default:
        throw new BackendProtocolError(`${this.describe()}: unexpected packet 0x${payload[0].toString(16)} during login`);
    }
  }

  private onPublicKey(seq: number, payload: Buffer): void {
    if (payload.length > 0 && payload[0] === ResponseHeader.Err) this.rejected(payload);
    if (payload.length < 2 || payload[0] !== ResponseHeader.AuthMoreData) {
      throw new BackendProtocolError(`${this.describe()}: expected the RSA public key`);
    }
    let encrypted: Buffer;
    try {
      encrypted = encryptPasswordWithPublicKey(this.params.password, this.nonce, payload.subarray(1));
    } catch (cause) {
      throw new BackendProtocolError(`${this.describe()}: cannot use the server's RSA public key`, { cause });
    }
    this.write(new PacketWriter(encrypted.length).bytes(encrypted), seq + 1);
    this.phase = Phase.AuthResult;
  }

  private succeed(payload: Buffer): void {
    this.phase = Phase.Done;
    clearTimeout(this.timer);
    this.framer.stop();
    const s = this.socket;
    s.pause();
    s.removeListener("data", this.onData);
    s.removeListener("close", this.onClose);
    // onError stays as a no-op guard until the session adds its own listener
    this.target.loginOutcomes?.connectSucceeded(this.target.name);
    this.resolve({
      socket: s,
      greeting: this.greeting as HandshakeV10,
      capabilities: this.caps,
      okPayload: Buffer.from(payload),
    });
  }

  /** Bytes the backend sent after its OK (normally none); valid once `result` resolved. */
  takeLeftover(): Buffer | null {
    return this.framer.takeLeftover();
  }
}

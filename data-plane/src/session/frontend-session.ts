import { Buffer } from "node:buffer";
import { randomFillSync } from "node:crypto";
import type * as net from "node:net";
import type { Logger } from "pino";
import { ListenerRole } from "@mysqlgw/proto";
import {
  AccessDeniedError,
  BackendLostError,
  BackendRejectedError,
  HandshakeTimeoutError,
  MgwError,
  NoBackendAvailableError,
  PacketTooLargeError,
  ServerShutdownError,
  TooManyConnectionsError,
  UnknownClusterError,
  UserTooManyConnectionsError,
  toSqlError,
} from "../errors";
import { resolveSecretRef } from "../secrets";
import { Capability, DEFAULT_COLLATION, MariaDbCapability, NATIVE_PASSWORD_PLUGIN, ServerStatus } from "../protocol/constants";
import { framePayload } from "../protocol/codec";
import { PacketFramer } from "../protocol/framer";
import { PacketScanner, ScanEvent } from "../protocol/packet-scanner";
import { buildHandshakeV10 } from "../protocol/packets/handshake-v10";
import { parseHandshakeResponse41, type HandshakeResponse41 } from "../protocol/packets/handshake-response41";
import { isSslRequest } from "../protocol/packets/ssl-request";
import { buildErr } from "../protocol/packets/err";
import { AuthStepKind, ClientAuthentication, type AuthStep, type ClientAuthRuntime } from "./client-auth";
import { upgradeClientSocket, type ClientTls } from "./tls";
import { BackendHandshake, type BackendLink } from "./backend-connection";
import { ProxyIntake, proxyHeaderFor } from "./proxy-intake";
import { CompressedSocket } from "./compressed-socket";
import { INTERCEPTED_COMMANDS, SessionCommands, type CommandHost } from "./session-commands";
import type { KillTarget } from "./kill";
import { IdleWatch, type SessionSlots } from "./access";
import type { KillRequest, KillResult } from "../types";
import { backendOrder, type ClusterRuntime, type ClusterSnapshot, type ListenerSnapshot, type UserSnapshot } from "./config-snapshot";
import { buildOk } from "../protocol/packets/ok";
import { listenerModeOf } from "../routing/decide";
import { passthroughOrder } from "./backend-choice";
import type { HookError, PhaseHooks } from "../plugins/phase-hooks";
import { observers, type SessionInfo } from "../observe/observer";
import { RoutedSession, routedListener, type RoutedHost, type RoutedSessionOptions } from "./routed-session";
import { metrics, backendConnectFailureReason, handshakeFailureReason, type AuthRefusalReason, type HandshakeFailureReason } from "../metrics";

export interface SessionOptions {
  handshakeTimeoutMs: number;
  backendConnectTimeoutMs: number;
  /** Largest client packet in the command phase (larger: ERR 1153 and close). */
  maxPacketSize: number;
  /** Largest packet accepted during the handshake, either side. */
  maxHandshakePacketSize: number;
  /** TLS toward clients (CLIENT_SSL announced), or null. */
  clientTls: ClientTls | null;
  /** RSA key pair and caching_sha2_password cache of this worker. */
  auth: ClientAuthRuntime;
  /** Pools and limits of routed listeners (SPLIT, multiplexing). */
  routed: RoutedSessionOptions;
  /** The phase-hook plugin (connectServer, readHandshake, readAuth, readAuthResult); null: none. */
  hooks: PhaseHooks | null;
}

/** What a session needs from whoever accepted it. Called synchronously, once. */
export interface SessionHost {
  readonly logger: Logger;
  sessionClosed(session: FrontendSession): void;
  /** Routes a client's KILL to the session owning `req.target` (any worker); never rejects. */
  killConnection(req: KillRequest): Promise<KillResult>;
}

const EMPTY = Buffer.alloc(0);

/** TCP keepalive on both sockets of a session, to notice dead peers. */
const KEEPALIVE_MS = 60_000;

/** Server version announced before any backend of the cluster was seen. */
export const DEFAULT_SERVER_VERSION = "5.5.5-10.11.6-MariaDB-mysqlgw";

/**
 * Capabilities we announce to clients: a set both MySQL and MariaDB servers
 * support, plus COMPRESS (the gateway's own: see compressed-socket.ts);
 * SSL is added when TLS is configured. Command-phase ones are further
 * intersected with what the cluster's backends announced, once known.
 */
export const ADVERTISED_CAPABILITIES =
  (Capability.LongPassword |
    Capability.FoundRows |
    Capability.LongFlag |
    Capability.ConnectWithDb |
    Capability.Odbc |
    Capability.LocalFiles |
    Capability.IgnoreSpace |
    Capability.Protocol41 |
    Capability.Interactive |
    Capability.Transactions |
    Capability.SecureConnection |
    Capability.MultiStatements |
    Capability.MultiResults |
    Capability.PsMultiResults |
    Capability.PluginAuth |
    Capability.ConnectAttrs |
    Capability.PluginAuthLenencClientData |
    Capability.SessionTrack |
    Capability.DeprecateEof |
    Capability.Compress) >>>
  0;

/**
 * MariaDB extended capabilities offered to clients when the cluster's backends
 * offer them, and passed on to the backend as the client asked: only ones that
 * change the format of what is forwarded byte for byte. Extended column
 * metadata lets connectors see JSON/UUID/INET columns as such (mysql2 and the
 * mariadb connector parse JSON values with it), as they do direct.
 */
export const PASSTHROUGH_MARIADB_CAPABILITIES = (MariaDbCapability.ExtendedTypeInfo | MariaDbCapability.StmtBulkOperations) >>> 0;

/** Handled by the gateway itself, whatever the backend supports. */
const GATEWAY_OWN_CAPABILITIES =
  (Capability.LongPassword |
    Capability.Protocol41 |
    Capability.SecureConnection |
    Capability.PluginAuth |
    Capability.PluginAuthLenencClientData |
    Capability.ConnectAttrs |
    Capability.ConnectWithDb |
    Capability.Compress) >>>
  0;

/** Backend errors during login that concern the client's request, forwarded as-is. */
const CLIENT_FACING_BACKEND_ERRNOS = new Set([
  1044, // ER_DBACCESS_DENIED_ERROR
  1049, // ER_BAD_DB_ERROR
]);

/** MariaDB clients rely on the "5.5.5-" prefix to recognise MariaDB ≥ 10. */
export function advertisedServerVersion(backendVersion: string): string {
  if (backendVersion.startsWith("5.5.5-") || !/mariadb/i.test(backendVersion)) return backendVersion;
  return "5.5.5-" + backendVersion;
}

const enum State {
  AwaitResponse,
  /** SSLRequest read: the socket is upgraded once the current chunk is consumed. */
  StartingTls,
  /** Auth exchange after the HandshakeResponse (switch, caching_sha2 full path). */
  AwaitSwitchToken,
  ConnectingBackend,
  Forwarding,
  /** The command phase of a routed listener (routed-session.ts). */
  Routed,
  Closed,
}

/**
 * One client connection: server-side handshake and auth, backend login, then
 * byte forwarding in both directions.
 *
 * Forwarding (the hot path) writes every chunk as received to the other
 * socket; PacketScanners track packet boundaries without copying. When a
 * write returns false the reading socket is paused until 'drain'.
 *
 * Closing rules: client closes → backend destroyed (ended gracefully after a
 * COM_QUIT). Backend closes or fails → the client is ended after what was
 * already forwarded is flushed; a client waiting on a query then sees its
 * driver's "lost connection" error (2013). We do not inject an ERR packet
 * there, because we do not know where in a response stream the backend died.
 */
export class FrontendSession {
  readonly connectionId: number;
  readonly listener: ListenerSnapshot;
  /** Replaced by its TLSSocket after an SSLRequest. */
  private client: net.Socket;
  /** True once the client connection is TLS. */
  private secure: boolean;
  private auth: ClientAuthentication | null;
  private readonly options: SessionOptions;
  private readonly host: SessionHost;
  /** The client's address ("ip:port", ip); from its PROXY header when a trusted peer sent one. */
  private clientAddress: string;
  private clientHost: string;
  private clientPort: number;
  /** Judges the first bytes (PROXY header); null once done. */
  private intake: ProxyIntake | null;
  /** True once the client speaks the compressed protocol (`client` is then a CompressedSocket). */
  private compressed: boolean;
  private state: State;
  private framer: PacketFramer | null;
  private nonce: Buffer;
  /** Capabilities announced in our greeting. */
  private advertised: number;
  /** MariaDB extended capabilities announced in our greeting (0: none, CLIENT_MYSQL set). */
  private advertisedMariadb: number;
  private handshakeTimer: NodeJS.Timeout | null;
  /** Sequence id of the last client packet during the handshake. */
  private lastSeq: number;
  private response: HandshakeResponse41 | null;
  private pendingBackend: BackendHandshake | null;
  private backend: net.Socket | null;
  private up: PacketScanner;
  private down: PacketScanner;
  private quitSeen: boolean;
  private lastFromBackend: boolean;
  /** Commands the gateway handles itself (COM_CHANGE_USER, KILL); set when forwarding starts. */
  private commands: SessionCommands | null;
  /** True while such a command runs: the client is paused and not forwarded. */
  private intercepting: boolean;
  /** Client bytes of a packet start (≤ 4) held back until its command byte is known. */
  private held: Buffer | null;
  /** Connection-limit slots (see access.ts); set by the listener manager before start(), released by it. */
  slots: SessionSlots | null = null;
  /** The listener's idle_timeout while forwarding; null without one. */
  private idle: IdleWatch | null = null;
  /** The command phase on a routed listener; null otherwise. */
  private routed: RoutedSession | null = null;
  /** The session as observers (observe/observer.ts) know it; null when none was registered at accept. */
  private observed: SessionInfo | null = null;
  /** Why the session ended, for observers. */
  private endReason = "client closed";

  constructor(client: net.Socket, listener: ListenerSnapshot, connectionId: number, options: SessionOptions, host: SessionHost) {
    this.connectionId = connectionId;
    this.listener = listener;
    this.client = client;
    this.options = options;
    this.host = host;
    const addr = (client.remoteAddress ?? "unknown").replace(/^::ffff:/, "");
    this.clientHost = addr;
    this.clientAddress = `${addr}:${client.remotePort ?? 0}`;
    this.clientPort = client.remotePort ?? 0;
    this.intake = new ProxyIntake(listener.proxyProtocol, addr);
    this.compressed = false;
    this.state = State.AwaitResponse;
    this.framer = new PacketFramer({ maxPacketSize: options.maxHandshakePacketSize }, this.onHandshakePacket);
    this.nonce = makeNonce();
    this.advertised = ADVERTISED_CAPABILITIES;
    this.secure = false;
    this.auth = null;
    this.advertisedMariadb = 0;
    this.handshakeTimer = null;
    this.lastSeq = 1;
    this.response = null;
    this.pendingBackend = null;
    this.backend = null;
    this.up = new PacketScanner(true, options.maxPacketSize);
    this.down = new PacketScanner(false);
    this.quitSeen = false;
    this.lastFromBackend = false;
    this.commands = null;
    this.intercepting = false;
    this.held = null;
  }

  /** Who owns this connection and where its backend thread is; null before forwarding. */
  /** The routed command phase, once started (KILL of routed sessions goes through it). */
  routedSession(): RoutedSession | null {
    return this.state === State.Routed ? this.routed : null;
  }

  /** Ends the session as KILL CONNECTION does (the client sees its connection closed). */
  killed(): void {
    this.endReason = "killed";
    this.close();
  }

  killTarget(): KillTarget | null {
    return this.state === State.Forwarding && this.commands !== null ? this.commands.killTarget() : null;
  }

  /** A pass-through session of a READ_WRITE listener: its cluster and backend (a planned switchover closes it off the old primary); null otherwise. */
  writableBackend(): { cluster: string; backend: string } | null {
    if (this.state !== State.Forwarding || this.commands === null || this.listener.role !== ListenerRole.READ_WRITE) return null;
    return { cluster: this.listener.clusterName, backend: this.commands.killTarget().backend.name };
  }

  /** Closes the session, as wait_timeout does (no packet), if it is between commands; true when it did. */
  closeIfIdle(reason: string): boolean {
    if (this.state !== State.Forwarding || this.idleProbe() < 0) return false;
    this.endReason = reason;
    this.close();
    return true;
  }

  /** Sends the greeting and starts the handshake clock. */
  start(): void {
    const c = this.client;
    if (observers.active) {
      this.observed = { connectionId: this.connectionId, listener: this.listener.name, user: "", clientAddress: this.clientAddress, openedAt: performance.now(), tls: false };
      observers.sessionOpened(this.observed);
    }
    c.setNoDelay(true);
    c.on("data", this.onHandshakeData);
    c.on("error", this.onClientError);
    c.on("close", this.onClientClose);
    this.handshakeTimer = setTimeout(this.onHandshakeTimeout, this.handshakeTimeoutMs());
    // a trusted peer that must send a PROXY header: greet once it has (see onIntakeData)
    if (this.intake !== null && this.intake.waitsBeforeGreeting) return;
    this.sendGreeting();
  }

  /** The greeting, after the plugin's connectServer and readHandshake hooks when it has them. */
  private sendGreeting(): void {
    const hooks = this.options.hooks;
    if (hooks === null || !(hooks.has("connectServer") || hooks.has("readHandshake"))) return this.writeGreeting(null);
    this.client.pause();
    void this.greetWithHooks(hooks);
  }

  private async greetWithHooks(hooks: PhaseHooks): Promise<void> {
    const listener = this.listener.name;
    const verdict = await hooks.call<{ reject?: HookError }>("connectServer", { connectionId: this.connectionId, listener, clientAddress: this.clientHost, clientPort: this.clientPort });
    if (this.state === State.Closed) return;
    if (verdict?.reject !== undefined) {
      const r = verdict.reject;
      this.host.logger.info({ conn: this.connectionId, client: this.clientAddress, plugin: hooks.name }, "connection refused by plugin (connectServer)");
      return this.sendErrAndClose(buildErr({ errno: r.errno ?? 1130, sqlState: r.sqlState ?? "HY000", message: r.message }, 0));
    }
    const runtime: ClusterRuntime | null = this.listener.cluster?.runtime ?? null;
    const version = runtime?.serverVersion ? advertisedServerVersion(runtime.serverVersion) : DEFAULT_SERVER_VERSION;
    const hs = await hooks.call<{ serverVersion?: string }>("readHandshake", { connectionId: this.connectionId, listener, serverVersion: version });
    if (this.isClosed()) return;
    this.writeGreeting(typeof hs?.serverVersion === "string" && hs.serverVersion !== "" ? hs.serverVersion : null);
    this.client.resume();
  }

  private writeGreeting(serverVersion: string | null): void {
    const c = this.client;
    const runtime: ClusterRuntime | null = this.listener.cluster?.runtime ?? null;
    const backendCaps = runtime?.capabilities ?? 0xffffffff;
    this.advertised = ((ADVERTISED_CAPABILITIES & backendCaps) | GATEWAY_OWN_CAPABILITIES) >>> 0;
    if (this.options.clientTls !== null) this.advertised = (this.advertised | Capability.Ssl) >>> 0;
    // as MariaDB does: extended capabilities are announced with CLIENT_MYSQL (LongPassword) clear
    this.advertisedMariadb = ((runtime?.mariadbCapabilities ?? 0) & PASSTHROUGH_MARIADB_CAPABILITIES) >>> 0;
    if (this.advertisedMariadb !== 0) this.advertised = (this.advertised & ~Capability.LongPassword) >>> 0;
    c.write(
      buildHandshakeV10({
        protocolVersion: 10,
        serverVersion: serverVersion ?? (runtime?.serverVersion ? advertisedServerVersion(runtime.serverVersion) : DEFAULT_SERVER_VERSION),
        connectionId: this.connectionId,
        authPluginData: this.nonce,
        capabilities: this.advertised,
        mariadbCapabilities: this.advertisedMariadb,
        characterSet: runtime?.characterSet ?? DEFAULT_COLLATION,
        statusFlags: ServerStatus.Autocommit,
        authPluginName: NATIVE_PASSWORD_PLUGIN,
      }),
    );
  }

  /** True once the session has ended (a call, so that TypeScript does not narrow `state` across awaits). */
  private isClosed(): boolean {
    return this.state === State.Closed;
  }

  /** True once the session forwards commands. */
  isForwarding(): boolean {
    return this.state === State.Forwarding || this.state === State.Routed;
  }

  /**
   * Ends the session now (drain timeout). A session idle between commands
   * gets ERR 1053 "Server shutdown in progress" first; a busy one is cut.
   */
  shutdown(): void {
    if (this.state === State.Closed) return;
    if (this.state === State.Routed) {
      this.routed?.shutdown();
      return this.close();
    }
    if (this.state === State.Forwarding && this.lastFromBackend && this.up.atBoundary() && this.down.atBoundary()) {
      const e = toSqlError(new ServerShutdownError());
      this.client.write(buildErr(e, 0));
    }
    this.close();
  }

  // ---- handshake -----------------------------------------------------------

  private readonly onHandshakeTimeout = (): void => {
    this.handshakeTimer = null;
    if (this.state === State.Closed || this.state === State.Forwarding || this.state === State.Routed) return;
    this.host.logger.info({ conn: this.connectionId, client: this.clientAddress, listener: this.listener.name }, "handshake timeout, closing");
    this.failHandshake(new HandshakeTimeoutError(this.handshakeTimeoutMs()), false);
  };

  /** The listener's handshake_timeout, else the data plane's --handshake-timeout. */
  private handshakeTimeoutMs(): number {
    return this.listener.handshakeTimeoutMs > 0 ? this.listener.handshakeTimeoutMs : this.options.handshakeTimeoutMs;
  }

  private readonly onHandshakeData = (chunk: Buffer): void => {
    if (this.intake !== null) return this.onIntakeData(chunk);
    const f = this.framer;
    if (f === null) return;
    try {
      f.push(chunk);
      if (this.state === State.StartingTls) this.startTls();
    } catch (err) {
      this.failHandshake(err, true);
    }
  };

  /** First bytes of the connection: a PROXY header (trusted peers), or refused (see proxy-intake.ts). */
  private onIntakeData(chunk: Buffer): void {
    const intake = this.intake as ProxyIntake;
    let decided: boolean;
    try {
      decided = intake.push(chunk);
    } catch (err) {
      this.host.logger.info({ conn: this.connectionId, peer: this.clientAddress, listener: this.listener.name, err: (err as Error).message }, "PROXY protocol: closing");
      this.failHandshake(err, false);
      return;
    }
    if (!decided) return;
    this.intake = null;
    const src = intake.header?.source ?? null;
    if (src !== null) {
      const host = src.address.replace(/^::ffff:/, "");
      this.host.logger.debug({ conn: this.connectionId, peer: this.clientAddress, client: `${host}:${src.port}` }, "PROXY header");
      this.clientHost = host;
      this.clientPort = src.port;
      this.clientAddress = `${host}:${src.port}`;
    }
    if (intake.waitsBeforeGreeting) this.sendGreeting();
    if (intake.rest !== null && this.state !== State.Closed) this.onHandshakeData(intake.rest);
  }

  /**
   * Upgrades the client socket after its SSLRequest: bytes that followed it
   * (the TLS ClientHello) go back to the socket for the TLS layer, and the
   * handshake continues over TLS with the next sequence id.
   */
  private startTls(): void {
    const raw = this.client;
    const leftover = this.framer?.takeLeftover() ?? null;
    raw.removeListener("data", this.onHandshakeData);
    raw.removeListener("close", this.onClientClose);
    // paused first: unshift() into a flowing socket without a 'data' listener would drop the bytes;
    // the TLS layer reads what is buffered when it starts
    raw.pause();
    if (leftover !== null) raw.unshift(leftover);
    const s = upgradeClientSocket(raw, this.options.clientTls as ClientTls);
    this.client = s;
    this.secure = true;
    this.state = State.AwaitResponse;
    this.framer = new PacketFramer({ maxPacketSize: this.options.maxHandshakePacketSize }, this.onHandshakePacket);
    s.on("error", this.onClientError);
    s.on("close", this.onClientClose);
    s.on("data", this.onHandshakeData);
  }

  private readonly onHandshakePacket = (seq: number, payload: Buffer): void => {
    this.lastSeq = seq;
    switch (this.state) {
      case State.AwaitResponse:
        if (!this.secure && this.options.clientTls !== null && isSslRequest(payload)) {
          this.state = State.StartingTls;
          this.framer?.stop();
          return;
        }
        return this.onHandshakeResponse(payload);
      case State.AwaitSwitchToken:
        return this.onAuthStep((this.auth as ClientAuthentication).next(Buffer.from(payload)));
      default:
        return;
    }
  };

  private onHandshakeResponse(payload: Buffer): void {
    const resp = parseHandshakeResponse41(payload, this.advertised);
    this.response = resp;
    const hooks = this.options.hooks;
    if (hooks !== null && hooks.has("readAuth")) {
      this.state = State.ConnectingBackend; // nothing more is read until the hook has spoken
      void hooks
        .call<{ reject?: HookError }>("readAuth", {
          connectionId: this.connectionId,
          listener: this.listener.name,
          user: resp.username,
          database: resp.database || null,
          clientAddress: this.clientHost,
          attributes: Object.fromEntries(resp.connectAttributes),
        })
        .then((verdict) => {
          if (this.state !== State.ConnectingBackend) return;
          this.state = State.AwaitResponse;
          if (verdict?.reject !== undefined) {
            const r = verdict.reject;
            this.host.logger.info({ conn: this.connectionId, user: resp.username, plugin: hooks.name }, "login refused by plugin (readAuth)");
            return this.sendErrAndClose(buildErr({ errno: r.errno ?? 1045, sqlState: r.sqlState ?? "28000", message: r.message }, this.lastSeq + 1));
          }
          this.beginAuth(resp);
        });
      return;
    }
    this.beginAuth(resp);
  }

  private beginAuth(resp: HandshakeResponse41): void {
    this.auth = new ClientAuthentication(this.listener.users, resp, this.nonce, this.secure, this.options.auth);
    this.onAuthStep(this.auth.begin());
  }

  /** Carries out one step of the client's authentication (see client-auth.ts). */
  private onAuthStep(step: AuthStep): void {
    const resp = this.response as HandshakeResponse41;
    if (step.kind === AuthStepKind.Send) {
      this.state = State.AwaitSwitchToken;
      this.lastSeq += 1;
      this.client.write(framePayload(step.payload, this.lastSeq));
      return;
    }
    if (step.kind === AuthStepKind.Denied) {
      this.host.logger.info(
        { conn: this.connectionId, client: this.clientAddress, listener: this.listener.name, user: resp.username, tls: this.secure, why: step.reason },
        "access denied",
      );
      this.options.hooks?.notify("readAuthResult", { connectionId: this.connectionId, listener: this.listener.name, user: resp.username, ok: false, errno: 1045 });
      if (this.observed !== null) {
        this.observed.user = resp.username;
        observers.sessionAuthenticated(this.observed, false, 1045, this.observed.openedAt, performance.now());
        this.endReason = "access denied";
      }
      this.failHandshake(new AccessDeniedError(resp.username, this.clientHost, step.usedPassword), true);
      return;
    }
    this.options.hooks?.notify("readAuthResult", { connectionId: this.connectionId, listener: this.listener.name, user: resp.username, ok: true, errno: 0 });
    if (this.observed !== null) {
      this.observed.user = resp.username;
      this.observed.tls = this.secure;
      observers.sessionAuthenticated(this.observed, true, 0, this.observed.openedAt, performance.now());
    }
    const user = step.user;
    this.auth = null;
    // the user's IP lists (on the PROXY header's address when one was given) and connection limit
    if (user.access !== null && !user.access.permits(this.clientHost)) {
      if (this.slots !== null) this.slots.counters.userHostDenied++;
      this.host.logger.info({ conn: this.connectionId, client: this.clientAddress, listener: this.listener.name, user: user.name }, "access denied: address not allowed for this user");
      this.failHandshake(new AccessDeniedError(resp.username, this.clientHost, resp.authResponse.length > 0), true, "user_host_denied");
      return;
    }
    if (this.slots !== null && !this.slots.takeUser(user.name, user.maxConnections)) {
      this.host.logger.info({ conn: this.connectionId, client: this.clientAddress, user: user.name, max: user.maxConnections }, "user connection limit reached");
      this.failHandshake(new UserTooManyConnectionsError(user.name), true);
      return;
    }
    if (step.payload !== null) {
      this.lastSeq += 1;
      this.client.write(framePayload(step.payload, this.lastSeq));
    }
    // From here until forwarding starts the client must stay silent; keep anything it sends.
    this.state = State.ConnectingBackend;
    this.framer?.stop();
    this.client.pause();
    // a user whose statements are checked one by one (permissions, firewall) or counted by a quota always gets the routed engine
    const routed = routedListener(this.listener) || (user as UserSnapshot).checked || (this.listener.quotas?.covers(user.name) ?? false);
    const login = routed ? this.startRouted(user as UserSnapshot, resp) : this.connectBackend(user as UserSnapshot, resp);
    login.catch((err: unknown) => this.failHandshake(err, true));
  }

  /**
   * The listener's cluster and the user's backend password, or null when the
   * login cannot go on (the client got its error, or the session ended meanwhile).
   */
  private async backendLogin(user: UserSnapshot): Promise<{ cluster: ClusterSnapshot; password: string } | null> {
    const log = this.host.logger;
    const cluster = this.listener.cluster;
    if (cluster === null) {
      const err = new UnknownClusterError(this.listener.name, this.listener.clusterName);
      log.error({ conn: this.connectionId, listener: this.listener.name, err: err.message }, "cannot route connection");
      this.failHandshake(err, true);
      return null;
    }
    let password: string;
    try {
      password = await resolveSecretRef(user.secretRef);
    } catch (err) {
      log.error({ conn: this.connectionId, user: user.name, err: (err as Error).message }, "cannot resolve backend credentials");
      this.failHandshake(new NoBackendAvailableError(`mysqlgw: the backend credentials of user '${user.name}' cannot be resolved on this data plane (see its log)`), true);
      return null;
    }
    return this.isConnectingBackend() ? { cluster, password } : null;
  }

  /** (A call, so that TypeScript does not narrow `state` across awaits.) */
  private isConnectingBackend(): boolean {
    return this.state === State.ConnectingBackend;
  }

  private async connectBackend(user: UserSnapshot, resp: HandshakeResponse41): Promise<void> {
    const log = this.host.logger;
    const login = await this.backendLogin(user);
    if (login === null) return;
    const { cluster, password } = login;
    const failures: string[] = [];
    let full = 0;
    for (const target of passthroughOrder(cluster, this.listener, () => backendOrder(cluster))) {
      if (this.slots !== null && !this.slots.takeBackend(`${cluster.name}/${target.name}`, target.maxConnections ?? 0)) {
        log.debug({ conn: this.connectionId, cluster: cluster.name, backend: target.name }, "backend at its connection limit, trying the next one");
        metrics.backendFullSkipped(cluster.name, target.name);
        full++;
        continue;
      }
      const hs = new BackendHandshake(target, {
        user: user.backendUser,
        password,
        // without allow_load_data_local the backend refuses LOAD DATA LOCAL itself
        clientCapabilities: (resp.capabilities & this.advertised & (user.allowLoadDataLocal ? 0xffffffff : ~Capability.LocalFiles)) >>> 0,
        mariadbCapabilities: (resp.capabilities & Capability.LongPassword) === 0 ? (resp.mariadbCapabilities & this.advertisedMariadb) >>> 0 : 0,
        maxPacketSize: resp.maxPacketSize,
        characterSet: resp.characterSet,
        database: resp.database,
        connectAttributes: resp.connectAttributes,
        clientAddress: this.clientAddress,
        proxyHeader: cluster.sendProxyProtocol
          ? proxyHeaderFor(this.clientHost, this.clientPort, this.client.localAddress ?? "0.0.0.0", this.client.localPort ?? 0)
          : null,
        timeoutMs: this.options.backendConnectTimeoutMs,
        maxPacketSize4Handshake: this.options.maxHandshakePacketSize,
        tls: cluster.tls,
      });
      this.pendingBackend = hs;
      let link: BackendLink;
      try {
        link = await hs.result;
      } catch (err) {
        this.pendingBackend = null;
        this.slots?.releaseBackend();
        if (this.state !== State.ConnectingBackend) return;
        if (err instanceof BackendRejectedError && CLIENT_FACING_BACKEND_ERRNOS.has(err.errno)) {
          metrics.handshakeFailed(this.listener.name, "backend_refused");
          this.sendErrAndClose(buildErr({ errno: err.errno, sqlState: err.sqlState, message: err.serverMessage }, this.lastSeq + 1));
          return;
        }
        const msg = err instanceof Error ? err.message : String(err);
        metrics.backendConnectFailed(cluster.name, target.name, backendConnectFailureReason(err));
        log.warn({ conn: this.connectionId, cluster: cluster.name, backend: target.name, err: msg }, "backend login failed, trying the next one");
        failures.push(msg);
        continue;
      }
      this.pendingBackend = null;
      if (this.state !== State.ConnectingBackend) {
        link.socket.destroy();
        return;
      }
      const rt = cluster.runtime;
      rt.serverVersion = link.greeting.serverVersion;
      rt.capabilities = link.greeting.capabilities;
      rt.mariadbCapabilities = link.greeting.mariadbCapabilities;
      rt.characterSet = link.greeting.characterSet || null;
      const caps = (resp.capabilities & this.advertised & ~GATEWAY_OWN_CAPABILITIES) >>> 0;
      const missing = (caps & ~link.capabilities) >>> 0;
      if (missing !== 0) {
        log.warn({ conn: this.connectionId, backend: target.name, missing: missing.toString(16) }, "backend lacks capabilities the client negotiated");
      }
      this.commands = new SessionCommands(this.commandHost(), this.options, {
        user,
        users: this.listener.users,
        clientCapabilities: (resp.capabilities & this.advertised) >>> 0,
        nonce: this.nonce,
        backend: target,
        backendTls: cluster.tls,
        link,
        characterSet: resp.characterSet,
        secure: this.secure,
        authRuntime: this.options.auth,
      });
      this.startForwarding(link, hs.takeLeftover());
      return;
    }
    if (full > 0 && failures.length === 0) {
      if (this.slots !== null) this.slots.counters.clusterFull++;
      log.warn({ conn: this.connectionId, cluster: cluster.name, listener: this.listener.name }, "every backend of the cluster is at its connection limit");
      return this.failHandshake(new TooManyConnectionsError(`Too many connections: every backend of cluster '${cluster.name}' is at its max_connections`), true);
    }
    const err = new NoBackendAvailableError(
      `mysqlgw: no backend of cluster '${cluster.name}' accepted the connection` +
        (failures.length > 0
          ? ` (${failures.join("; ")})`
          : cluster.backends.length === 0
            ? " (the cluster has no backends)"
            : " (none has the role this listener needs, or all are down: see mysqlgw backends)") +
        `; check that the backends are running and reachable from the data plane and that user '${user.name}' has valid backendCredentials`,
    );
    log.error({ conn: this.connectionId, cluster: cluster.name, listener: this.listener.name }, err.message);
    this.failHandshake(err, true);
  }

  /**
   * Routed listener: the login borrows a pooled connection (checking the
   * backend account and the client's database), then the command phase
   * belongs to a RoutedSession.
   */
  private async startRouted(user: UserSnapshot, resp: HandshakeResponse41): Promise<void> {
    const log = this.host.logger;
    const login = await this.backendLogin(user);
    if (login === null) return;
    const { cluster, password } = login;
    const negotiated = (resp.capabilities & this.advertised) >>> 0;
    const engine = new RoutedSession(
      this.routedHost(),
      this.options.routed,
      {
        listener: this.listener,
        cluster,
        user,
        password,
        clientCapabilities: (negotiated & ~GATEWAY_OWN_CAPABILITIES & ~Capability.Ssl) >>> 0,
        mariadbCapabilities: (resp.capabilities & Capability.LongPassword) === 0 ? (resp.mariadbCapabilities & this.advertisedMariadb) >>> 0 : 0,
        characterSet: resp.characterSet,
        database: resp.database,
        maxPacketSize: resp.maxPacketSize,
      },
      listenerModeOf(this.listener.role),
    );
    this.routed = engine;
    const refused = await engine.start();
    if (this.state !== State.ConnectingBackend) {
      engine.close();
      return;
    }
    if (refused !== null) {
      log.info({ conn: this.connectionId, listener: this.listener.name, user: user.name, errno: refused.errno, err: refused.message }, "routed login refused");
      metrics.handshakeFailed(this.listener.name, refused.errno === 1044 || refused.errno === 1049 ? "backend_refused" : "no_backend");
      this.sendErrAndClose(buildErr(refused, this.lastSeq + 1));
      return;
    }
    const ok = buildOk({ statusFlags: ServerStatus.Autocommit }, negotiated, this.lastSeq + 1);
    if (this.handshakeTimer !== null) {
      clearTimeout(this.handshakeTimer);
      this.handshakeTimer = null;
    }
    if ((negotiated & Capability.Compress) !== 0) this.startCompression(ok);
    const c = this.client;
    const leftover = this.framer?.takeLeftover() ?? null;
    this.framer = null;
    this.response = null;
    this.nonce = EMPTY;
    c.removeListener("data", this.onHandshakeData);
    if (!this.compressed) c.write(ok);
    c.setKeepAlive(true, KEEPALIVE_MS);
    c.on("data", engine.onClientData);
    c.on("drain", engine.clientDrain);
    this.state = State.Routed;
    metrics.sessionEstablished(this.listener.name);
    if (this.listener.idleTimeoutMs > 0) this.idle = new IdleWatch(this.listener.idleTimeoutMs, this.idleProbe, this.onIdleTimeout);
    if (leftover !== null) engine.onClientData(leftover);
    c.resume();
  }

  private routedHost(): RoutedHost {
    return {
      connectionId: this.connectionId,
      logger: this.host.logger,
      client: () => this.client,
      fail: (packet) => (packet !== null ? this.sendErrAndClose(packet) : this.close()),
      quit: () => {
        this.endReason = "quit";
        this.close();
      },
      killConnection: (req) => this.host.killConnection(req),
      users: this.listener.users,
      nonce: this.nonce,
      secure: this.secure,
      authRuntime: this.options.auth,
      clientHost: this.clientHost,
      handshakeTimeoutMs: this.handshakeTimeoutMs(),
      observed: this.observed,
    };
  }

  /** Sends an ERR for `err` (when `reply`) and closes; the backend, if any, goes too. `reason`: its metrics label when not derived from `err`. */
  private failHandshake(err: unknown, reply: boolean, reason?: HandshakeFailureReason | AuthRefusalReason): void {
    if (this.state === State.Closed) return;
    metrics.handshakeFailed(this.listener.name, reason ?? handshakeFailureReason(err));
    if (!(err instanceof MgwError)) {
      this.host.logger.error({ conn: this.connectionId, err }, "unexpected error during handshake");
    } else if (err instanceof PacketTooLargeError || err.code === "MGW_ERR_PROTOCOL_MALFORMED_PACKET" || err.code === "MGW_ERR_PROTOCOL_UNSUPPORTED") {
      this.host.logger.info({ conn: this.connectionId, client: this.clientAddress, err: err.message }, "bad handshake");
    }
    if (!reply) return this.close();
    this.sendErrAndClose(buildErr(toSqlError(err), this.lastSeq + 1));
  }

  private sendErrAndClose(packet: Buffer): void {
    const c = this.client;
    this.teardown();
    if (c.destroyed) return;
    c.end(packet, () => c.destroy());
    // a peer that never reads must not keep the socket: bounded by the handshake timeout
    setTimeout(destroySocket, this.options.handshakeTimeoutMs, c).unref();
  }

  // ---- forwarding (hot path) ------------------------------------------------

  private startForwarding(link: BackendLink, backendLeftover: Buffer | null): void {
    const resp = this.response as HandshakeResponse41;
    if ((resp.capabilities & this.advertised & Capability.Compress) !== 0) this.startCompression(framePayload(link.okPayload, this.lastSeq + 1));
    const c = this.client;
    const b = link.socket;
    this.backend = b;
    const clientLeftover = this.framer?.takeLeftover() ?? null;
    this.framer = null;
    this.response = null;
    this.nonce = EMPTY;
    c.setKeepAlive(true, KEEPALIVE_MS);
    b.setKeepAlive(true, KEEPALIVE_MS);
    if (this.handshakeTimer !== null) {
      clearTimeout(this.handshakeTimer);
      this.handshakeTimer = null;
    }
    c.removeListener("data", this.onHandshakeData);
    b.on("error", this.onBackendError);
    b.on("close", this.onBackendClose);
    b.on("data", this.onBackendData);
    b.on("drain", this.onBackendDrain);
    c.on("drain", this.onClientDrain);
    c.on("data", this.onClientData);
    this.up.interceptMask = INTERCEPTED_COMMANDS;
    this.state = State.Forwarding;
    metrics.sessionEstablished(this.listener.name);
    // the server spoke last (the login OK): the session is idle until the client sends a command
    this.lastFromBackend = true;
    if (this.listener.idleTimeoutMs > 0) this.idle = new IdleWatch(this.listener.idleTimeoutMs, this.idleProbe, this.onIdleTimeout);
    if (!this.compressed) c.write(framePayload(link.okPayload, this.lastSeq + 1));
    if (backendLeftover !== null) this.onBackendData(backendLeftover);
    if (clientLeftover !== null) this.onClientData(clientLeftover);
    b.resume();
    c.resume();
  }

  /**
   * CLIENT_COMPRESS: sends the OK (the last uncompressed packet), then puts a
   * CompressedSocket in the client socket's place, as a TLS upgrade does;
   * bytes the client already sent go through it.
   */
  private startCompression(ok: Buffer): void {
    const raw = this.client;
    raw.write(ok);
    const leftover = this.framer?.takeLeftover() ?? null;
    raw.removeListener("data", this.onHandshakeData);
    raw.removeListener("error", this.onClientError);
    raw.removeListener("close", this.onClientClose);
    raw.on("error", noop);
    const z = new CompressedSocket(raw, leftover);
    // a CompressedSocket has every member of net.Socket the session uses
    this.client = z as unknown as net.Socket;
    this.compressed = true;
    z.on("error", this.onClientError);
    z.on("close", this.onClientClose);
    z.pause();
  }

  private readonly onClientData = (chunk: Buffer): void => {
    const backend = this.backend as net.Socket;
    this.lastFromBackend = false;
    const events = this.up.scan(chunk);
    if (events !== ScanEvent.None && this.onClientEvents(events, chunk)) return;
    if (this.held !== null || this.up.headerFill !== 0 || this.up.awaitingCommand) return this.writeHoldingBack(chunk);
    if (!backend.write(chunk)) this.client.pause();
  };

  /**
   * Rare: the chunk ends inside the first 5 bytes of a packet (header, command
   * byte), or bytes were held back before. Keeps those ≤ 4 bytes until the
   * command byte is known, so that an intercepted command never reaches the
   * backend in part.
   */
  private writeHoldingBack(chunk: Buffer): void {
    const keep = this.up.awaitingCommand ? 4 : this.up.headerFill;
    const all = this.held === null ? chunk : Buffer.concat([this.held, chunk]);
    this.held = keep > 0 ? Buffer.from(all.subarray(all.length - keep)) : null;
    const out = keep > 0 ? all.subarray(0, all.length - keep) : all;
    if (out.length > 0 && !(this.backend as net.Socket).write(out)) this.client.pause();
  }

  /** A command the gateway handles starts in `chunk`: forward what precedes it, run it. */
  private intercept(chunk: Buffer): void {
    const c = this.client;
    const b = this.backend as net.Socket;
    let buf = chunk;
    let at = this.up.interceptOffset;
    if (this.held !== null) {
      buf = Buffer.concat([this.held, chunk]);
      at += this.held.length;
      this.held = null;
    }
    const start = at - 4;
    this.up.resetToBoundary();
    if (start < 0) {
      // cannot happen: a packet start is always held back until its command byte is seen
      this.host.logger.error({ conn: this.connectionId }, "intercepted command without its header, closing");
      return this.close();
    }
    if (start > 0) b.write(buf.subarray(0, start));
    this.intercepting = true;
    c.pause();
    c.removeListener("data", this.onClientData);
    b.removeListener("drain", this.onBackendDrain);
    (this.commands as SessionCommands).run(buf.subarray(start));
  }

  private commandHost(): CommandHost {
    // eslint-disable-next-line @typescript-eslint/no-this-alias
    const self = this;
    return {
      connectionId: this.connectionId,
      logger: this.host.logger,
      clientHost: this.clientHost,
      clientAddress: this.clientAddress,
      get client() {
        return self.client;
      },
      backendSocket: () => this.backend,
      detachBackend: () => {
        const b = this.backend;
        if (b === null) return;
        b.removeListener("data", this.onBackendData);
        this.client.removeListener("drain", this.onClientDrain);
        b.pause();
      },
      attachBackend: (leftover) => {
        const b = this.backend;
        if (b === null || this.state !== State.Forwarding) return;
        b.on("data", this.onBackendData);
        this.client.on("drain", this.onClientDrain);
        if (leftover !== null) this.onBackendData(leftover);
        b.resume();
      },
      resumeForwarding: (replay) => {
        if (this.state !== State.Forwarding || this.backend === null) return;
        this.intercepting = false;
        this.lastFromBackend = true;
        this.backend.on("drain", this.onBackendDrain);
        this.client.on("data", this.onClientData);
        if (replay !== null) this.onClientData(replay);
        if (!this.intercepting && this.state === State.Forwarding) this.client.resume();
      },
      fail: (packet) => (packet !== null ? this.sendErrAndClose(packet) : this.close()),
      killConnection: (req) => this.host.killConnection(req),
    };
  }

  private readonly onBackendData = (chunk: Buffer): void => {
    this.lastFromBackend = true;
    this.down.scan(chunk);
    if (!this.client.write(chunk)) (this.backend as net.Socket).pause();
  };

  private readonly onBackendDrain = (): void => {
    this.client.resume();
  };

  private readonly onClientDrain = (): void => {
    (this.backend as net.Socket).resume();
  };

  /** Rare scanner events; returns true when the chunk was dealt with here. */
  private onClientEvents(events: number, chunk: Buffer): boolean {
    if ((events & ScanEvent.Intercept) !== 0 && (events & ScanEvent.Oversize) === 0) {
      this.intercept(chunk);
      return true;
    }
    if ((events & ScanEvent.Oversize) !== 0) {
      const e = toSqlError(new PacketTooLargeError(this.up.logicalLength, this.options.maxPacketSize));
      this.host.logger.info({ conn: this.connectionId, size: this.up.logicalLength }, "client packet too large, closing");
      this.sendErrAndClose(buildErr({ ...e, message: "Got a packet bigger than 'max_allowed_packet' bytes" }, 1));
      return true;
    }
    if ((events & ScanEvent.Quit) !== 0) {
      // forward COM_QUIT, then half-close: the backend ends the connection itself
      const b = this.backend as net.Socket;
      this.quitSeen = true;
      this.client.removeListener("data", this.onClientData);
      if (this.held !== null) b.write(this.held);
      this.held = null;
      b.end(chunk);
      return true;
    }
    return false;
  }

  // ---- idle timeout (checked a few times per period; nothing on the hot path) ----

  /** -1: busy (a command or response under way); else a figure that changes with any traffic. */
  private readonly idleProbe = (): number => {
    if (this.state === State.Routed) {
      const r = this.routed as RoutedSession;
      return r.isBusy() ? -1 : r.commandCount;
    }
    const b = this.backend;
    if (this.state !== State.Forwarding || b === null) return -1;
    if (this.intercepting || !this.lastFromBackend || !this.up.atBoundary() || !this.down.atBoundary()) return -1;
    return this.up.commandCount + b.bytesRead;
  };

  /** As MariaDB's wait_timeout: the connection is closed without a packet. */
  private readonly onIdleTimeout = (): void => {
    if (this.slots !== null) this.slots.counters.idleClosed++;
    metrics.idleTimeout(this.listener.name);
    this.endReason = "idle timeout";
    this.host.logger.info({ conn: this.connectionId, client: this.clientAddress, listener: this.listener.name, idleTimeoutMs: this.listener.idleTimeoutMs }, "idle timeout, closing");
    this.close();
  };

  // ---- closing --------------------------------------------------------------

  private readonly onClientError = (err: NodeJS.ErrnoException): void => {
    this.host.logger.debug({ conn: this.connectionId, err: err.code ?? err.message }, "client socket error");
  };

  private readonly onBackendError = (err: NodeJS.ErrnoException): void => {
    this.host.logger.debug({ conn: this.connectionId, err: err.code ?? err.message }, "backend socket error");
  };

  private readonly onClientClose = (): void => {
    if (this.state !== State.Forwarding && this.state !== State.Routed && this.state !== State.Closed) metrics.handshakeFailed(this.listener.name, "client_closed");
    const b = this.backend;
    if (b !== null && this.quitSeen && !b.destroyed) {
      // let COM_QUIT reach the backend (already ended): it closes the connection itself
      b.removeListener("data", this.onBackendData);
      b.removeListener("drain", this.onBackendDrain);
      b.resume();
      setTimeout(destroySocket, 1000, b).unref();
      this.backend = null;
    }
    this.close();
  };

  private readonly onBackendClose = (): void => {
    if (this.state === State.Closed) return;
    if (!this.quitSeen) {
      const lost = new BackendLostError("backend closed the connection");
      this.host.logger.debug({ conn: this.connectionId, err: lost.message, idle: this.up.atBoundary() }, "backend connection ended");
    }
    const c = this.client;
    this.backend = null;
    this.teardown();
    if (!c.destroyed) c.end(() => c.destroy());
    setTimeout(destroySocket, 1000, c).unref();
  };

  /** Releases everything but the client socket; idempotent. */
  private teardown(): void {
    if (this.state === State.Closed) return;
    this.state = State.Closed;
    if (this.handshakeTimer !== null) {
      clearTimeout(this.handshakeTimer);
      this.handshakeTimer = null;
    }
    this.idle?.stop();
    this.idle = null;
    this.framer = null;
    if (this.observed !== null) observers.sessionClosed({ session: this.observed, reason: this.endReason, closedAt: performance.now() });
    if (this.routed !== null) {
      const c0 = this.client;
      c0.removeListener("data", this.routed.onClientData);
      c0.removeListener("drain", this.routed.clientDrain);
      this.routed.close();
      this.routed = null;
    }
    this.pendingBackend?.abort();
    this.pendingBackend = null;
    // no forwarding handler may run once we are closed (the client may still
    // be readable while it is being ended)
    const c = this.client;
    c.removeListener("data", this.onClientData);
    c.removeListener("data", this.onHandshakeData);
    c.removeListener("drain", this.onClientDrain);
    const b = this.backend;
    this.backend = null;
    if (b !== null) {
      b.removeListener("data", this.onBackendData);
      b.removeListener("drain", this.onBackendDrain);
      b.destroy();
    }
    this.host.sessionClosed(this);
  }

  private close(): void {
    this.teardown();
    this.client.destroy();
  }
}

function noop(): void {}

function destroySocket(s: net.Socket): void {
  s.destroy();
}

/** 20 random bytes in 1..127 without '$' (0x24), safe in NUL-terminated fields. */
function makeNonce(): Buffer {
  const b = randomFillSync(Buffer.allocUnsafe(20));
  for (let i = 0; i < 20; i++) {
    let v = b[i] & 0x7f;
    if (v === 0 || v === 0x24) v += 1;
    b[i] = v;
  }
  return b;
}

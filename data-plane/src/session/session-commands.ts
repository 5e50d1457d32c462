import { Buffer } from "node:buffer";
import type * as net from "node:net";
import type { Logger } from "pino";
import {
  AccessDeniedError,
  BackendProtocolError,
  ChangeUserRefusedError,
  UnsupportedAuthPluginError,
  toSqlError,
} from "../errors";
import {
  CACHING_SHA2_PASSWORD_PLUGIN,
  Capability,
  CachingSha2Status,
  Command,
  NATIVE_PASSWORD_PLUGIN,
  ResponseHeader,
  ServerStatus,
} from "../protocol/constants";
import { framePayload, PacketWriter } from "../protocol/codec";
import { parseKillStatement } from "../protocol/kill-statement";
import { parseAuthSwitchRequest } from "../protocol/packets/auth-switch-request";
import { buildChangeUser, parseChangeUser } from "../protocol/packets/change-user";
import { buildErr, parseErr } from "../protocol/packets/err";
import { buildOk } from "../protocol/packets/ok";
import { scrambleNativePassword } from "../protocol/auth/mysql-native-password";
import { encryptPasswordWithPublicKey, scrambleCachingSha2Password } from "../protocol/auth/caching-sha2-password";
import { resolveSecretRef } from "../secrets";
import type { KillRequest, KillResult } from "../types";
import type { BackendLink } from "./backend-connection";
import type { BackendTarget, UserSnapshot } from "./config-snapshot";
import { AuthStepKind, ClientAuthentication, type ClientAuthRuntime } from "./client-auth";
import type { KillTarget } from "./kill";
import type { BackendTlsSettings } from "./tls";
import { SocketPackets, type Packet } from "./socket-packets";

/** Commands the gateway answers or rewrites itself (bits for PacketScanner.interceptMask). */
export const INTERCEPTED_COMMANDS = ((1 << Command.ChangeUser) | (1 << Command.ProcessKill) | (1 << Command.Query)) >>> 0;

/** What SessionCommands needs from its FrontendSession. */
export interface CommandHost {
  readonly connectionId: number;
  readonly logger: Logger;
  readonly clientHost: string;
  readonly clientAddress: string;
  readonly client: net.Socket;
  /** The forwarding backend socket (null once closed). */
  backendSocket(): net.Socket | null;
  /** Stops / restarts forwarding backend bytes to the client (a command exchange owns the backend meanwhile). */
  detachBackend(): void;
  attachBackend(leftover: Buffer | null): void;
  /** The exchange is over: forward client bytes again, starting with `replay` (bytes the client sent meanwhile). */
  resumeForwarding(replay: Buffer | null): void;
  /** Sends `packet` (if any) to the client, then closes the session. */
  fail(packet: Buffer | null): void;
  /** Routes a KILL to the session owning `req.target` (this worker or another). */
  killConnection(req: KillRequest): Promise<KillResult>;
}

export interface CommandOptions {
  handshakeTimeoutMs: number;
  backendConnectTimeoutMs: number;
  maxHandshakePacketSize: number;
}

export interface SessionCommandsInit {
  user: UserSnapshot;
  users: ReadonlyMap<string, UserSnapshot>;
  /** Capabilities negotiated with the client (ours ∩ its). */
  clientCapabilities: number;
  /** Nonce of our greeting (clients scramble COM_CHANGE_USER with it). */
  nonce: Buffer;
  backend: BackendTarget;
  /** The cluster's TLS settings (for the KILL connection). */
  backendTls: BackendTlsSettings | null;
  link: BackendLink;
  characterSet: number;
  /** The client connection is TLS. */
  secure: boolean;
  authRuntime: ClientAuthRuntime;
}

/**
 * The commands the gateway handles itself at command boundaries:
 * COM_CHANGE_USER (re-authenticated against mysqlgw's users), COM_PROCESS_KILL
 * and `KILL [QUERY] n` (our connection ids → backend thread ids). One exchange
 * at a time; the session keeps the client paused until it is over.
 */
export class SessionCommands {
  user: UserSnapshot;
  private readonly h: CommandHost;
  private readonly o: CommandOptions;
  private readonly users: ReadonlyMap<string, UserSnapshot>;
  private readonly clientCaps: number;
  private readonly nonce: Buffer;
  private readonly backend: BackendTarget;
  private readonly backendTls: BackendTlsSettings | null;
  private readonly threadId: number;
  private readonly backendCaps: number;
  private readonly backendPlugin: string;
  private backendNonce: Buffer;
  private characterSet: number;
  private readonly secure: boolean;
  private readonly authRuntime: ClientAuthRuntime;

  constructor(host: CommandHost, options: CommandOptions, init: SessionCommandsInit) {
    this.h = host;
    this.o = options;
    this.user = init.user;
    this.users = init.users;
    this.clientCaps = init.clientCapabilities;
    this.nonce = init.nonce;
    this.backend = init.backend;
    this.backendTls = init.backendTls;
    this.threadId = init.link.greeting.connectionId;
    this.backendCaps = init.link.capabilities;
    this.backendPlugin = init.link.greeting.authPluginName === CACHING_SHA2_PASSWORD_PLUGIN ? CACHING_SHA2_PASSWORD_PLUGIN : NATIVE_PASSWORD_PLUGIN;
    this.backendNonce = init.link.greeting.authPluginData;
    this.characterSet = init.characterSet;
    this.secure = init.secure;
    this.authRuntime = init.authRuntime;
  }

  /** Who may kill this session's backend thread, and how. */
  killTarget(): KillTarget {
    return { user: this.user.name, backend: this.backend, backendUser: this.user.backendUser, secretRef: this.user.secretRef, threadId: this.threadId, tls: this.backendTls };
  }

  /**
   * Runs the intercepted command starting at `bytes` (its header first). The
   * client is paused and has no forwarding listener; ends with
   * host.resumeForwarding() or host.fail().
   */
  run(bytes: Buffer): void {
    const packets = new SocketPackets(this.h.client, this.o.maxHandshakePacketSize, bytes);
    this.exchange(packets).then(
      (reply) => {
        if (reply !== null) this.h.client.write(reply);
        this.h.resumeForwarding(packets.leftover());
      },
      (err: unknown) => {
        this.h.logger.info({ conn: this.h.connectionId, err: err instanceof Error ? err.message : String(err) }, "command exchange failed, closing");
        this.h.fail(null);
      },
    );
  }

  /** Returns the wire bytes to send to the client, or null when the packet was forwarded instead. */
  private async exchange(packets: SocketPackets): Promise<Buffer | null> {
    const first = await packets.next(this.o.handshakeTimeoutMs);
    const cmd = first.payload.length > 0 ? first.payload[0] : -1;
    if (cmd === Command.ChangeUser) return this.changeUser(first, packets);
    if (cmd === Command.ProcessKill && first.payload.length >= 5) {
      return this.kill(first.payload.readUInt32LE(1), false, first.seq);
    }
    if (cmd === Command.Query) {
      const kill = parseKillStatement(first.payload.subarray(1).toString("utf8"));
      if (kill !== null) return this.kill(kill.id, kill.query, first.seq);
    }
    // not ours after all: forward it unchanged
    const b = this.h.backendSocket();
    if (b !== null) b.write(framePayload(first.payload, first.seq));
    return null;
  }

  // ---- KILL -----------------------------------------------------------------

  private async kill(id: number, query: boolean, seq: number): Promise<Buffer> {
    const r = await this.h.killConnection({ target: id >>> 0, user: this.user.name, query });
    this.h.logger.info({ conn: this.h.connectionId, target: id, query, errno: r.errno }, "kill");
    if (r.errno === 0) return buildOk({ statusFlags: ServerStatus.Autocommit }, this.clientCaps, seq + 1);
    return buildErr(r, seq + 1);
  }

  // ---- COM_CHANGE_USER ------------------------------------------------------

  private async changeUser(first: Packet, packets: SocketPackets): Promise<Buffer> {
    const req = parseChangeUser(first.payload, this.clientCaps);
    let seq = first.seq;
    // the same verification as at login (plugins, TLS requirement), over our greeting's nonce
    const auth = new ClientAuthentication(
      this.users,
      {
        capabilities: this.clientCaps,
        mariadbCapabilities: 0,
        maxPacketSize: 0,
        characterSet: req.characterSet ?? this.characterSet,
        username: req.username,
        authResponse: req.authResponse,
        database: req.database,
        authPluginName: req.authPluginName,
        connectAttributes: req.connectAttributes,
      },
      this.nonce,
      this.secure,
      this.authRuntime,
    );
    let step = auth.begin();
    for (let round = 0; step.kind === AuthStepKind.Send && round < 4; round++) {
      seq += 1;
      this.h.client.write(framePayload(step.payload, seq));
      const answer = await packets.next(this.o.handshakeTimeoutMs);
      seq = answer.seq;
      step = auth.next(answer.payload);
    }
    if (step.kind !== AuthStepKind.Done) {
      // As MariaDB: 1045, and the connection stays open as the previous user.
      const used = step.kind === AuthStepKind.Denied ? step.usedPassword : true;
      this.h.logger.info({ conn: this.h.connectionId, user: req.username, why: step.kind === AuthStepKind.Denied ? step.reason : "too many rounds" }, "change user: access denied");
      return buildErr(toSqlError(new AccessDeniedError(req.username, this.h.clientHost, used)), seq + 1);
    }
    if (step.payload !== null) {
      seq += 1;
      this.h.client.write(framePayload(step.payload, seq));
    }
    const user = step.user;
    const u = user as UserSnapshot;
    if ((this.backendCaps & Capability.LocalFiles) !== 0 && !u.allowLoadDataLocal) {
      return buildErr(
        toSqlError(
          new ChangeUserRefusedError(
            `mysqlgw: cannot change to user '${u.name}' on this connection: it allows LOAD DATA LOCAL and '${u.name}' may not use it; connect as '${u.name}' instead`,
          ),
        ),
        seq + 1,
      );
    }
    let password: string;
    try {
      password = await resolveSecretRef(u.secretRef);
    } catch {
      return buildErr(
        toSqlError(new ChangeUserRefusedError(`mysqlgw: the backend credentials of user '${u.name}' cannot be resolved on this data plane (see its log)`)),
        seq + 1,
      );
    }
    const reply = await this.backendChangeUser(u, password, req.database, req.characterSet, req.connectAttributes);
    if (reply[0] === ResponseHeader.Ok) {
      this.h.logger.info({ conn: this.h.connectionId, from: this.user.name, to: u.name }, "change user");
      this.user = u;
      if (req.characterSet !== null && req.characterSet !== 0) this.characterSet = req.characterSet;
      return framePayload(reply, seq + 1);
    }
    const e = parseErr(reply);
    this.h.logger.warn({ conn: this.h.connectionId, user: u.name, errno: e.errno, err: e.message }, "backend refused change user");
    if (e.errno === 1044 || e.errno === 1049) return framePayload(reply, seq + 1);
    return buildErr(
      toSqlError(new ChangeUserRefusedError(`mysqlgw: the backend refused user '${u.name}' (${e.errno}); check its backendCredentials`)),
      seq + 1,
    );
  }

  /** COM_CHANGE_USER toward the backend; resolves with the final OK or ERR payload. */
  private async backendChangeUser(
    u: UserSnapshot,
    password: string,
    database: string,
    characterSet: number | null,
    attrs: ReadonlyMap<string, string>,
  ): Promise<Buffer> {
    const b = this.h.backendSocket();
    if (b === null) throw new BackendProtocolError("backend gone");
    this.h.detachBackend();
    const packets = new SocketPackets(b, this.o.maxHandshakePacketSize, null);
    try {
      let plugin = this.backendPlugin;
      let nonce = this.backendNonce;
      const connectAttributes = new Map(attrs);
      connectAttributes.set("_mysqlgw_client_addr", this.h.clientAddress);
      b.write(
        buildChangeUser(
          {
            username: u.backendUser,
            authResponse: backendToken(plugin, password, nonce),
            database,
            characterSet: characterSet !== null && characterSet !== 0 ? characterSet : this.characterSet,
            authPluginName: plugin,
            connectAttributes,
          },
          this.backendCaps,
        ),
      );
      for (let round = 0; round < 8; round++) {
        const p = await packets.next(this.o.backendConnectTimeoutMs);
        const head = p.payload.length > 0 ? p.payload[0] : -1;
        if (head === ResponseHeader.Ok || head === ResponseHeader.Err) return p.payload;
        if (head === ResponseHeader.Eof) {
          const sw = parseAuthSwitchRequest(p.payload);
          plugin = sw.pluginName;
          nonce = sw.pluginData;
          this.backendNonce = nonce;
          b.write(new PacketWriter(40).bytes(backendToken(plugin, password, nonce)).finish(p.seq + 1));
          continue;
        }
        if (head === ResponseHeader.AuthMoreData && plugin === CACHING_SHA2_PASSWORD_PLUGIN && p.payload.length >= 2) {
          if (p.payload[1] === CachingSha2Status.FastAuthSuccess) continue;
          if (p.payload[1] === CachingSha2Status.PerformFullAuthentication) {
            b.write(new PacketWriter(4).u8(CachingSha2Status.RequestPublicKey).finish(p.seq + 1));
            continue;
          }
          const encrypted = encryptPasswordWithPublicKey(password, nonce, p.payload.subarray(1));
          b.write(new PacketWriter(encrypted.length).bytes(encrypted).finish(p.seq + 1));
          continue;
        }
        throw new BackendProtocolError(`unexpected packet 0x${head.toString(16)} in reply to COM_CHANGE_USER`);
      }
      throw new BackendProtocolError("COM_CHANGE_USER: too many authentication rounds");
    } finally {
      this.h.attachBackend(packets.leftover());
    }
  }
}

function backendToken(plugin: string, password: string, nonce: Buffer): Buffer {
  if (plugin === NATIVE_PASSWORD_PLUGIN || plugin === "") return scrambleNativePassword(password, nonce);
  if (plugin === CACHING_SHA2_PASSWORD_PLUGIN) return scrambleCachingSha2Password(password, nonce);
  throw new UnsupportedAuthPluginError(plugin, "backend");
}

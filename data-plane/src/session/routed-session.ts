import { Buffer } from "node:buffer";
import type * as net from "node:net";
import { performance } from "node:perf_hooks";
import type { Logger } from "pino";
import { MgwError, NoBackendAvailableError, ServerShutdownError, toSqlError } from "../errors";
import { Capability, Command, MariaDbCapability, MAX_PACKET_PAYLOAD, ServerStatus } from "../protocol/constants";
import { framePayload } from "../protocol/codec";
import { buildErr, type ErrPacket } from "../protocol/packets/err";
import { buildOk } from "../protocol/packets/ok";
import { ResponseShape, ResponseTracker } from "../protocol/response-tracker";
import { classify } from "../routing/classify";
import { createClassification, StatementFlags as F, StatementKind as K, type Classification } from "../routing/statement-kind";
import { createSessionRouteState, decideRoute, ListenerMode, RouteTarget, type RouteDecision } from "../routing/decide";
import { analyseSet, NAMES_KEY, useStatementSchema } from "../routing/session-settings";
import { runBackendCommand } from "../pool/backend-command";
import { PooledConnection, type BackendPool, type PoolLogin, type PoolManager } from "../pool/backend-pool";
import { ListenerRole, ReadYourWrites, ReplicaFallback } from "@mysqlgw/proto";
import { covers, mergeGtidLists, parseGtidList } from "../routing/gtid";
import type { BackendTarget, ClusterSnapshot, ListenerSnapshot, UserSnapshot } from "./config-snapshot";
import { chooseBackend, type BackendChoice } from "./backend-choice";
import type { ClusterState } from "../routing/backend-state";
import { createRuleContext, type RuleAction } from "../routing/rules";
import { statementKindName } from "../routing/names";
import type { TableExtractor } from "../routing/tables";
import { metrics } from "../metrics";
import { observers, type SessionInfo } from "../observe/observer";
import { digestHash } from "../routing/digest";
import { digestBySkeleton } from "../routing/digest-cache";
import type { PhaseHooks, QueryDecision } from "../plugins/phase-hooks";
import { buildTextResultSet } from "../protocol/packets/result-set";
import { buildInitDb, buildQuery } from "../protocol/packets/commands";
import { mirrorLogin, mirrorTarget, type Mirror } from "./mirror";
import { cacheKey, ResponseRecorder, type ResultCache, type ResultCaches } from "./result-cache";
import { AccessDeniedError, ChangeUserRefusedError } from "../errors";
import { parseKillStatement } from "../protocol/kill-statement";
import { parseChangeUser } from "../protocol/packets/change-user";
import { resolveSecretRef } from "../secrets";
import type { KillRequest, KillResult } from "../types";
import { AuthStepKind, ClientAuthentication, type ClientAuthRuntime } from "./client-auth";
import type { KillTarget } from "./kill";
import { switchoverHolds } from "./switchover-hold";
import { quotas as workerQuotas, type SessionQuotas } from "../quota";

/**
 * The command phase of a session on a routed listener (SPLIT, or any listener
 * with multiplexing): each command is read whole from the client, classified,
 * routed (decideRoute), run on a backend connection borrowed from the pool
 * (or held by the session while it must be: transaction, pins), and its
 * response streamed back chunk by chunk as received; the ResponseTracker says
 * where it ends, and the connection goes back to the pool.
 *
 * Session state follows the session, not the connection: the schema (COM_INIT_DB
 * / USE) and tracked settings (analyseSet) are replayed on a borrowed
 * connection when they differ; prepared statements get gateway ids and are
 * prepared on each backend connection that runs them; state that cannot be
 * carried (user variables, temporary tables, named locks, unknown SETs, …)
 * pins the session to its primary connection, each pin with its reason.
 */

/** Whether a listener's sessions go through the routed engine (else: byte-for-byte pass-through). */
export function routedListener(l: ListenerSnapshot): boolean {
  // query rules are enforced on every listener they name (or all): their statements must be read
  return l.role === ListenerRole.SPLIT || l.multiplexing === true || l.rulesApply || observers.everyStatement;
}

export interface RoutedSessionOptions {
  /** Query rules' mirror action (one per worker). */
  mirror: Mirror;
  /** Query rules' cache action: one cache per rule (one registry per worker). */
  caches: ResultCaches;
  /** The phase-hook plugin (readQuery, readQueryResult); null: none. */
  hooks: PhaseHooks | null;
  pools: PoolManager;
  /** Tables of statements for query rules that match on them (one per worker, cached by digest). */
  tables: TableExtractor;
  backendConnectTimeoutMs: number;
  maxHandshakePacketSize: number;
  maxPacketSize: number;
}

/** What the routed session needs from its FrontendSession. */
export interface RoutedHost {
  readonly connectionId: number;
  readonly logger: Logger;
  /** The client socket (TLS or compressed as negotiated). */
  client(): net.Socket;
  /** Sends `packet` (when given) and closes the client connection. */
  fail(packet: Buffer | null): void;
  /** The session closed itself after COM_QUIT. */
  quit(): void;
  /** Routes a client's KILL to the session owning `req.target` (any worker); never rejects. */
  killConnection(req: KillRequest): Promise<KillResult>;
  /** The session as observers know it; null when no observer was registered when it opened. */
  readonly observed: SessionInfo | null;
  /** What COM_CHANGE_USER re-authenticates against. */
  readonly users: ReadonlyMap<string, UserSnapshot>;
  readonly nonce: Buffer;
  readonly secure: boolean;
  readonly authRuntime: ClientAuthRuntime;
  readonly clientHost: string;
  readonly handshakeTimeoutMs: number;
}

export interface RoutedLogin {
  listener: ListenerSnapshot;
  cluster: ClusterSnapshot;
  /** Replaced by COM_CHANGE_USER. */
  user: UserSnapshot;
  password: string;
  /** Negotiated with the client (its capabilities & what we advertised). */
  clientCapabilities: number;
  mariadbCapabilities: number;
  characterSet: number;
  database: string | null;
  maxPacketSize: number;
}

/** A prepared statement as the client knows it. */
interface ClientStatement {
  readonly sql: string;
  readonly packet: Buffer; // the COM_STMT_PREPARE payload (re-sent to prepare elsewhere)
  readonly kind: K;
  readonly flags: number;
  /** Classification.skeleton of its text (the digest is looked up by it). */
  readonly skeleton: number;
  readonly numParams: number;
  /** Parameter types last sent by the client (2 bytes each), for backends that have not seen them. */
  paramTypes: Buffer | null;
  /** The connection holding its long data or open cursor, while it does. */
  boundTo: PooledConnection | null;
}

/** A statement prepared on one backend connection (PooledConnection.statements, keyed by SQL text). */
interface BackendStatement {
  readonly id: number;
  /** The prepare response, for clients preparing the same text later (its id rewritten). */
  readonly response: Buffer;
  typesSent: boolean;
}

const enum Sink {
  /** Response bytes go to the client as they come. */
  Client,
  /** Collected, then handed to `collected` (prepare responses). */
  Collect,
}

// @mysqlgw/proto's exports are CommonJS re-exports, read through a getter on every access:
// the values read per statement are copied once here.
const RYW_UNSPECIFIED = ReadYourWrites.UNSPECIFIED;
const RYW_NONE = ReadYourWrites.NONE;
const RYW_SESSION = ReadYourWrites.SESSION;
const RYW_GLOBAL = ReadYourWrites.GLOBAL;

/** QueryState.packet between statements. */
const NO_PACKET = Buffer.alloc(0);

/** After this long without a command, a connection kept for the next statement goes back to the pool. */
const STICKY_MS = 250;

/** Largest prepare response cached per backend statement. */
const MAX_CACHED_PREPARE = 64 * 1024;

const CURSOR_TYPE_READ_ONLY = 0x01;

/** Statement id meaning "the one prepared last" (MariaDB). */
const LAST_PREPARED = 0xffffffff;

export class RoutedSession {
  private readonly host: RoutedHost;
  private readonly options: RoutedSessionOptions;
  private readonly login: RoutedLogin;
  private readonly mode: ListenerMode;
  private readonly multiplexing: boolean;
  private readonly log: Logger;
  private readonly tracker: ResponseTracker;
  private readonly cls: Classification = createClassification();
  private readonly route = createSessionRouteState();

  // ---- session state ----
  private schema: string | null;
  /** Tracked settings: name → replay text (analyseSet). */
  private readonly settings = new Map<string, string>();
  /** Why the session keeps its primary connection (reason → since); empty: it need not. */
  private readonly pins = new Set<string>();
  private readonly statements = new Map<number, ClientStatement>();
  private nextStatementId = 1;
  /** Connections the session holds (transaction, pins, or multiplexing off), by target. */
  private heldPrimary: PooledConnection | null = null;
  private heldReplica: PooledConnection | null = null;
  /** The last statement's connection, kept until the next command or STICKY_MS. */
  private sticky: PooledConnection | null = null;
  private stickyTarget: RouteTarget = RouteTarget.Primary;
  private stickyTimer: NodeJS.Timeout | null = null;
  /** When the command under way (or the last one) was read whole (performance.now() ms). */
  private commandAt = 0;
  /** When the last response was complete (performance.now() ms; set by complete()). */
  private completedAt = 0;

  // ---- the command under way ----
  private busy = false;
  private closed = false;
  private current: PooledConnection | null = null;
  private currentTarget: RouteTarget = RouteTarget.Primary;
  private sink = Sink.Client;
  private collected: Buffer[] = [];
  private onDone: (() => void) | null = null;
  /** Bytes the client sent for the response under way (LOCAL INFILE upload). */
  private uploading = false;
  private wroteToClient = false;

  // ---- client packet reader ----
  /** Bytes of an incomplete client packet, and how many are needed before it can be read. */
  private parts: Buffer[] = [];
  private partsLength = 0;
  private need = 0;
  private readonly queue: Buffer[] = [];
  /** Commands run (for the idle timeout's probe). */
  commandCount = 0;
  /** The quotas counting this session's statements (quota/session-quotas.ts); inactive while the worker has none. */
  private readonly quotas: SessionQuotas;

  constructor(host: RoutedHost, options: RoutedSessionOptions, login: RoutedLogin, mode: ListenerMode) {
    this.host = host;
    this.options = options;
    this.login = login;
    this.mode = mode;
    this.log = host.logger;
    // absent: on for SPLIT listeners; a READ_WRITE/READ_ONLY listener keeps a connection per session
    this.multiplexing = login.listener.multiplexing ?? login.listener.role === ListenerRole.SPLIT;
    this.schema = login.database || null;
    this.observed = host.observed;
    this.tracker = new ResponseTracker((login.clientCapabilities & Capability.DeprecateEof) !== 0);
    this.quotas = workerQuotas.session(login.listener.name, login.listener.clusterName, login.user.name);
  }

  /** True while a command is under way (for the idle timeout and drain). */
  isBusy(): boolean {
    return this.busy || this.queue.length > 0 || this.parts.length > 0;
  }

  /**
   * Borrows a connection as the login would (checking the backend account and
   * the client's database); resolves to an ERR packet payload to refuse the
   * login with, or null.
   */
  async start(): Promise<ErrPacket | null> {
    if (this.schema !== null && !this.schemaAllowed(this.schema)) return this.schemaDenied(this.schema);
    const target = this.mode === ListenerMode.ReadOnly ? RouteTarget.Replica : RouteTarget.Primary;
    let conn: PooledConnection;
    try {
      conn = await this.acquire(target);
    } catch (err) {
      return toSqlError(err);
    }
    try {
      const e = await this.syncState(conn);
      if (e !== null) {
        this.releaseConn(conn);
        return e;
      }
    } catch (err) {
      this.poolOf(conn)?.discard(conn);
      return toSqlError(err);
    }
    if (this.multiplexing) this.releaseConn(conn);
    else this.hold(target, conn);
    return null;
  }

  // ---- client side ----------------------------------------------------------

  readonly onClientData = (chunk: Buffer): void => {
    if (this.closed) return;
    let buf = chunk;
    if (this.parts.length > 0) {
      // an incomplete packet waits for `need` bytes; joined once, when they are all here
      this.parts.push(chunk);
      this.partsLength += chunk.length;
      if (this.partsLength < this.need) return;
      buf = Buffer.concat(this.parts, this.partsLength);
      this.parts = [];
      this.partsLength = 0;
    }
    let pos = 0;
    // whole logical packets (a payload of 0xFFFFFF continues in the next packet)
    for (let guard = 0; guard < buf.length && pos < buf.length; guard++) {
      let p = pos;
      let complete = false;
      let need = 0;
      for (let parts = 0; parts <= buf.length; parts++) {
        if (buf.length - p < 4) {
          need = p - pos + 4;
          break;
        }
        const len = buf[p] | (buf[p + 1] << 8) | (buf[p + 2] << 16);
        if (buf.length - p - 4 < len) {
          need = p - pos + 4 + len;
          break;
        }
        p += 4 + len;
        if (this.uploading || len !== MAX_PACKET_PAYLOAD) {
          complete = true;
          break;
        }
      }
      if (!complete) {
        if (need > this.options.maxPacketSize + 4 * (1 + Math.ceil(this.options.maxPacketSize / MAX_PACKET_PAYLOAD))) {
          this.host.fail(buildErr({ errno: 1153, sqlState: "08S01", message: "Got a packet bigger than 'max_allowed_packet' bytes" }, 1));
          return this.close();
        }
        this.need = need;
        break;
      }
      const packet = pos === 0 && p === buf.length ? buf : buf.subarray(pos, p); // a chunk of one command: no view made
      pos = p;
      if (this.uploading) this.onUploadPacket(packet);
      else if (this.packetWaiter !== null) {
        const w = this.packetWaiter;
        this.packetWaiter = null;
        w(packet);
      } else this.queue.push(packet);
    }
    if (pos < buf.length) {
      this.parts = [buf.subarray(pos)];
      this.partsLength = buf.length - pos;
    }
    if (!this.busy) this.next();
  };

  private readonly onClientDrain = (): void => {
    this.current?.link.socket.resume();
  };

  /** LOCAL INFILE: the client's file, packet by packet, to the backend; an empty packet ends it. */
  private onUploadPacket(packet: Buffer): void {
    const conn = this.current;
    if (conn === null) return;
    conn.link.socket.write(packet);
    if (packet.length === 4) {
      this.uploading = false;
      this.tracker.infileSent();
      conn.link.socket.resume();
    }
  }

  private next(): void {
    if (this.closed || this.busy) return;
    const packet = this.queue.shift();
    if (packet === undefined) return;
    if (this.switchoverEnd !== null) return this.endedBySwitchover(this.switchoverEnd);
    this.busy = true;
    this.commandCount++;
    this.commandAt = performance.now();
    try {
      const p = this.command(packet);
      if (p !== undefined) p.catch(this.onCommandRejected);
    } catch (err) {
      this.commandFailed(err);
    }
  }

  private readonly onCommandRejected = (err: unknown): void => this.commandFailed(err);

  /** A command failed before or while it ran: the client gets an ERR (or the connection closes if a response was under way). */
  private commandFailed(err: unknown): void {
    if (this.closed) return;
    const conn = this.current;
    if (conn !== null) {
      this.current = null;
      this.dropConn(conn);
    }
    if (!(err instanceof MgwError)) this.log.error({ conn: this.host.connectionId, err }, "routed command failed");
    else this.log.info({ conn: this.host.connectionId, err: err.message }, "routed command failed");
    if (this.wroteToClient || this.heldLost) {
      // part of a response went out, or the transaction / pinned state is gone: as MySQL would, the connection ends
      this.host.fail(null);
      return this.close();
    }
    this.replyErr(err instanceof SessionStateError ? err.packet : toSqlError(err), 1);
    this.finish();
  }

  /** Set when a held connection (transaction, pins) broke: the session's state is gone. */
  private heldLost = false;

  private replyErr(e: ErrPacket, seq: number): void {
    this.host.client().write(buildErr(e, seq));
  }

  private replyOk(seq: number): void {
    this.host.client().write(buildOk({ statusFlags: this.statusFlags() }, this.login.clientCapabilities, seq));
  }

  private statusFlags(): number {
    let s = 0;
    if (this.route.autocommit) s |= ServerStatus.Autocommit;
    if (this.route.inTransaction) s |= ServerStatus.InTrans;
    return s;
  }

  /** Runs one command; a promise when it has to wait (a rejection is a failed command), else void. */
  private command(packet: Buffer): Promise<void> | void {
    const cmd = packet.length > 4 ? packet[4] : -1;
    this.wroteToClient = false;
    switch (cmd) {
      case Command.Quit:
        this.close();
        this.host.quit();
        return;
      case Command.Query:
        return this.query(packet);
      case Command.Ping:
        this.replyOk(1);
        return this.finish();
      case Command.InitDb:
        return this.initDb(packet);
      case Command.StmtPrepare:
        return this.prepare(packet);
      case Command.StmtExecute:
      case Command.StmtBulkExecute:
        return this.execute(packet, cmd);
      case Command.StmtSendLongData:
        return this.sendLongData(packet);
      case Command.StmtClose:
        return this.closeStatement(packet);
      case Command.StmtReset:
        return this.resetStatement(packet);
      case Command.StmtFetch:
        return this.fetch(packet);
      case Command.ResetConnection:
        return this.resetConnection();
      case Command.ProcessKill:
        if (packet.length < 9) break;
        return this.kill(packet.readUInt32LE(5), false);
      case Command.ChangeUser:
        return this.changeUser(packet);
      case Command.FieldList:
        return this.simple(packet, this.readTarget(), ResponseShape.FieldList);
      case Command.Statistics:
        return this.simple(packet, this.readTarget(), ResponseShape.Single);
      case Command.SetOption:
        this.pin("set-option");
        return this.simple(packet, RouteTarget.Primary, ResponseShape.Single);
    }
    this.replyErr(
      {
        errno: 1047,
        sqlState: "08S01",
        message: `Unknown command: mysqlgw's ${this.modeName()} listener '${this.login.listener.name}' does not route command 0x${cmd.toString(16)}; use a READ_WRITE listener without multiplexing for it`,
      },
      1,
    );
    return this.finish();
  }

  private modeName(): string {
    return this.mode === ListenerMode.Split ? "SPLIT" : this.mode === ListenerMode.ReadOnly ? "READ_ONLY" : "READ_WRITE";
  }

  /** Where reads that need no particular backend go. */
  private readTarget(): RouteTarget {
    if (this.mustStayOnPrimary()) return RouteTarget.Primary;
    return this.mode === ListenerMode.ReadWrite ? RouteTarget.Primary : RouteTarget.Replica;
  }

  private mustStayOnPrimary(): boolean {
    return this.route.inTransaction || !this.route.autocommit || this.pins.size > 0;
  }

  // ---- COM_QUERY ------------------------------------------------------------
  //
  // A statement goes through phases, each a method: read it (classify, checks),
  // the plugin's readQuery hook, query rules, quotas, route (decideRoute, pins,
  // cache, mirror), a backend connection, run. A phase that must wait (a hook,
  // a quota's queue, a pool, a GTID read) is an async method that awaits, then
  // calls the next phase; the common case — no hook, no quota waiting, a held
  // or kept connection in step with the session — runs them all without a
  // promise, and carries the statement in `this.q` instead of closures.

  /** The COM_QUERY under way (a session runs one command at a time). */
  private readonly q: QueryState = {
    packet: NO_PACKET, started: 0, large: false, skeleton: -1, kind: K.Other, flags: 0, hookRoute: null,
    rule: null, target: RouteTarget.Primary, reason: "", after: null, cache: null, key: "", conn: null,
  };

  /** Phase 1: classify and check the statement; on to the readQuery hook, or to the rules. */
  private query(packet: Buffer): Promise<void> | void {
    const q = this.q;
    q.started = this.commandAt;
    q.large = packet.length > 4 + MAX_PACKET_PAYLOAD - 1 && (packet[0] & packet[1] & packet[2]) === 0xff;
    const c = classify(packet, 5, q.large ? 4 + MAX_PACKET_PAYLOAD : packet.length, this.cls);
    q.skeleton = q.large ? -1 : c.skeleton; // the digest's key (digest-cache.ts)
    q.kind = c.kind;
    q.flags = c.flags;
    q.hookRoute = null;
    q.rule = null;
    q.after = null;
    q.cache = null;
    q.conn = null;
    const listener = this.login.listener;
    if (this.login.user.checked || listener.firewall !== null) {
      const refused = this.checkStatement(c.kind, c.flags, packet, 5, packet.length);
      if (refused !== null) {
        metrics.statementFinished(listener.name, statementKindName(c.kind), "error", 0);
        this.replyErr(refused, 1);
        return this.finish();
      }
    }
    const hooks = this.options.hooks;
    if (hooks !== null && hooks.has("readQuery") && !q.large) return this.queryHook(packet, hooks);
    return this.queryRules(packet);
  }

  /** Phase 2: the plugin's readQuery may answer, refuse, rewrite or route the statement. */
  private async queryHook(packetIn: Buffer, hooks: PhaseHooks): Promise<void> {
    const q = this.q;
    let packet = packetIn;
    const listener = this.login.listener;
    const ctx = { connectionId: this.host.connectionId, listener: listener.name, user: this.login.user.name, schema: this.schema, sql: packet.toString("utf8", 5), kind: statementKindName(q.kind) };
    const dec = await hooks.call<QueryDecision>("readQuery", ctx);
    if (dec?.error !== undefined || dec?.reply !== undefined) {
      if (dec.error !== undefined) this.replyErr({ errno: dec.error.errno ?? 1105, sqlState: dec.error.sqlState ?? "HY000", message: dec.error.message }, 1);
      else if (dec.reply !== undefined) this.host.client().write(buildTextResultSet(
          dec.reply.columns,
          dec.reply.rows,
          (this.login.clientCapabilities & Capability.DeprecateEof) !== 0,
          this.statusFlags(),
          1,
          (this.login.mariadbCapabilities & MariaDbCapability.ExtendedTypeInfo) !== 0,
        ),);
      hooks.notify("readQueryResult", { ...ctx, durationMs: performance.now() - q.started, ok: dec.error === undefined, errno: dec.error?.errno ?? 0, target: "local" });
      return this.finish();
    }
    if (typeof dec?.rewrite === "string") {
      packet = framePayload(buildQuery(dec.rewrite), packet[3]);
      const c = classify(packet, 5, packet.length, this.cls);
      q.skeleton = c.skeleton;
      q.kind = c.kind;
      q.flags = c.flags;
    }
    if (dec?.route === "primary") q.hookRoute = RouteTarget.Primary;
    else if (dec?.route === "replica") q.hookRoute = RouteTarget.Replica;
    return this.queryRules(packet);
  }

  /** Phase 3: query rules (deny, rewrite; route, mirror and cache are applied later), then quotas. */
  private queryRules(packetIn: Buffer): Promise<void> | void {
    const q = this.q;
    let packet = packetIn;
    const listener = this.login.listener;
    if (!listener.rules.empty && !q.large) {
      const rule = listener.rules.match(
        createRuleContext(
          { user: this.login.user.name, schema: this.schema, listener: listener.name, sql: packet.toString("utf8", 5), classification: this.cls, bytes: packet, start: 5, end: packet.length },
          listener.rules.needsTables ? this.options.tables : null,
        ),
      );
      q.rule = rule;
      if (rule !== null && rule.deny !== null) {
        this.log.debug({ conn: this.host.connectionId, rule: rule.rule }, "statement denied by rule");
        metrics.statementFinished(listener.name, statementKindName(q.kind), "error", 0);
        this.replyErr(rule.deny, 1);
        return this.finish();
      }
      if (rule !== null && rule.rewrite !== null) {
        const text = rule.rewrite(packet.toString("utf8", 5));
        packet = framePayload(buildQuery(text), packet[3]);
        q.skeleton = -1;
      }
    }
    if (this.quotas.active) {
      // fleet-wide quotas: admitted now (no await), refused now, or waiting in a bounded queue
      const waiting = this.quotas.admit(q.rule === null ? null : q.rule.rule);
      if (waiting !== null) return this.queryQuota(packet, waiting);
    }
    return this.queryRoute(packet);
  }

  /** Phase 3b: a statement a quota did not admit at once (refused, or queued). */
  private async queryQuota(packet: Buffer, waiting: ErrPacket | Promise<ErrPacket | null>): Promise<void> {
    if (await this.quotaRefused(waiting, this.login.listener.name, this.q.kind)) return this.finish();
    return this.queryRoute(packet);
  }

  /** Phase 4: where the statement runs and what it leaves behind (pins, tracked settings, schema); cache and mirror. */
  private queryRoute(packet: Buffer): Promise<void> | void {
    const q = this.q;
    const listener = this.login.listener;
    const kind = q.kind;
    const flags = q.flags;
    const rule = q.rule;
    const d: RouteDecision = decideRoute(this.mode, this.cls, this.route, rule);
    let target = d.target;
    if (q.hookRoute !== null && !this.mustStayOnPrimary() && this.mode === ListenerMode.Split) target = q.hookRoute;
    if (q.large || this.mustStayOnPrimary()) target = RouteTarget.Primary;
    if (kind === K.Kill && !q.large) {
      const k = parseKillStatement(packet.toString("utf8", 5));
      if (k !== null) return this.kill(k.id, k.query);
    }
    let after: (() => void) | null = null;
    if (kind === K.Set && (flags & F.MultiStatement) === 0) {
      const a = analyseSet(packet, 5, packet.length);
      after = () => {
        if (this.tracker.error) return;
        if (a.pinReason !== null) this.pin(a.pinReason);
        for (const t of a.tracked) {
          this.settings.set(t.name, t.sql);
          this.lastConn?.settings.set(t.name, t.sql);
        }
      };
      if (a.pinReason !== null) target = RouteTarget.Primary;
      else if (a.tracked.length > 0 && !a.autocommit && this.mode !== ListenerMode.ReadWrite && !this.mustStayOnPrimary()) {
        // a tracked SET runs where the next statement will probably go; it is replayed elsewhere as needed
        target = this.sticky !== null ? this.stickyTarget : RouteTarget.Primary;
      }
    } else if (kind === K.Use && (flags & F.MultiStatement) === 0) {
      const schema = useStatementSchema(packet, 5, packet.length);
      if (schema !== null && !this.schemaAllowed(schema)) {
        this.replyErr(this.schemaDenied(schema), 1);
        return this.finish();
      }
      after = () => {
        if (this.tracker.error) return;
        if (schema === null) this.pin("use-statement");
        else {
          this.schema = schema;
          if (this.lastConn !== null) this.lastConn.schema = schema;
        }
      };
    } else {
      const reason = pinReasonOf(kind, flags);
      if (reason !== null) {
        target = RouteTarget.Primary;
        after = () => {
          if (!this.tracker.error || reason === "multi-statement") this.pin(reason);
        };
      }
    }
    q.after = after;
    q.target = target;
    q.reason = d.reason;
    metrics.routed(listener.name, target === RouteTarget.Replica ? "replica" : "primary", d.reason);
    if (rule !== null && !this.mustStayOnPrimary() && after === null) {
      if (rule.mirror !== null && Math.random() < rule.mirror.ratio) this.mirrorStatement(rule.mirror.cluster, packet);
      if (rule.cache !== null && kind === K.Select && (flags & UNCACHEABLE) === 0) {
        const cache = this.options.caches.cacheFor(rule);
        if (cache !== null) {
          const key = cacheKey(this.login.user.name, this.schema, packet.toString("utf8", 5), this.login.clientCapabilities, this.cacheContext());
          const hit = cache.get(key, Date.now());
          if (hit !== null) {
            this.host.client().write(hit);
            metrics.statementFinished(listener.name, statementKindName(kind), "ok", (performance.now() - q.started) / 1000);
            return this.finish();
          }
          q.cache = cache;
          q.key = key;
          this.recorder = new ResponseRecorder(rule.cache.maxResultBytes);
        }
      }
    }
    if (d.cluster !== null && d.cluster !== this.login.cluster.name && !this.mustStayOnPrimary() && after === null) {
      return this.runElsewhere(d.cluster, target, packet, kind, q.started);
    }
    // Phase 5: the connection. At hand (held, or kept and in step with the session): no promise
    const previous = (flags & (F.ReadsDiagnostics | F.UsesFoundRows | F.UsesLastInsertId)) !== 0;
    const routedAt = this.observed === null ? 0 : performance.now();
    const causal = target === RouteTarget.Replica && !previous && this.causalGtid() !== null;
    const ready = causal || previous ? null : this.connNow(target);
    if (ready instanceof PooledConnection) {
      if (this.observed !== null) this.beginObservation(q.started, routedAt, routedAt, d.reason, rule?.rule ?? null, traceparentOf(packet, this.cls));
      return this.queryRun(packet, ready);
    }
    const traceparent = this.observed === null ? null : traceparentOf(packet, this.cls);
    return this.queryConnect(packet, ready, causal, previous, routedAt, traceparent);
  }

  /** Phase 5b: a connection from the pool (or for a causal read), its schema and settings replayed. */
  private async queryConnect(packet: Buffer, chosen: BackendChoice | null, causal: boolean, previous: boolean, routedAt: number, traceparent: string | null): Promise<void> {
    const q = this.q;
    const conn = await this.ensureState(
      chosen !== null ? await this.acquireChosen(chosen, this.login.cluster) : causal ? await this.connForCausalRead() : await this.connFor(q.target, previous),
    );
    if (this.observed !== null) this.beginObservation(q.started, routedAt, performance.now(), q.reason, q.rule?.rule ?? null, traceparent);
    return this.queryRun(packet, conn);
  }

  /** Phase 6: the statement runs on `conn`, its response streams to the client; onQueryDone once it is whole. */
  private queryRun(packet: Buffer, conn: PooledConnection): Promise<void> | void {
    const q = this.q;
    q.packet = packet;
    q.conn = conn;
    this.route.lastTarget = this.currentTarget;
    // read-your-writes: the GTID of a write is read on its connection before the next command
    const captureGtid = this.ryw !== RYW_NONE && this.currentTarget === RouteTarget.Primary && writes(q.kind);
    if (!captureGtid) return this.launch(conn, packet, ResponseShape.ResultSets, this.onQueryDone); // nothing follows the response: no promise to wait on
    return this.queryRunCapturingGtid(packet, conn);
  }

  /** Phase 6b: a write on a read-your-writes listener; the next command waits until its GTID is read. */
  private async queryRunCapturingGtid(packet: Buffer, conn: PooledConnection): Promise<void> {
    this.holdFinish = true;
    await this.run(conn, packet, ResponseShape.ResultSets, this.onQueryDone);
    const failed = this.tracker.error;
    try {
      if (!failed && !this.route.inTransaction && (conn === this.sticky || conn === this.heldPrimary)) {
        await this.readLastGtid(conn).catch((err: unknown) => this.log.debug({ conn: this.host.connectionId, err: String(err) }, "could not read @@last_gtid"));
      }
    } finally {
      this.holdFinish = false;
      this.finish();
    }
  }

  /** The COM_QUERY's response went out whole: what it leaves behind, its cache entry, metrics, observers, hooks. */
  private readonly onQueryDone = (): void => {
    const q = this.q;
    const t = this.tracker;
    const route = this.route;
    if ((q.flags & F.UsesUserVariableAssignment) !== 0 && !t.error) route.userVariablesSet = true;
    if ((q.flags & F.TemporaryTable) !== 0 && !t.error) route.temporaryTables = true;
    q.after?.();
    const cache = q.cache;
    if (cache !== null) {
      const rec = this.recorder;
      this.recorder = null;
      const bytes = rec?.take() ?? null;
      const rule = q.rule;
      if (bytes !== null && !t.error && rule !== null && rule.cache !== null) cache.put(q.key, bytes, rule.cache.ttlMs, Date.now());
    }
    const ms = this.completedAt - q.started;
    const listener = this.login.listener;
    const kindName = statementKindName(q.kind);
    metrics.statementFinished(listener.name, kindName, t.error ? "error" : "ok", ms / 1000);
    if (this.observed !== null && q.conn !== null) this.endObservation(Command.Query, kindName, q.packet, 5, q.conn, q.skeleton);
    const hooks = this.options.hooks;
    if (hooks !== null && hooks.has("readQueryResult")) {
      hooks.notify("readQueryResult", {
        connectionId: this.host.connectionId, listener: listener.name, user: this.login.user.name, schema: this.schema, sql: q.packet.toString("utf8", 5), kind: kindName,
        durationMs: ms, ok: !t.error, errno: t.errno, target: this.currentTarget === RouteTarget.Replica ? "replica" : "primary",
      });
    }
    // the statement's bytes (up to max_allowed_packet) are not kept while the session idles
    q.packet = NO_PACKET;
    q.conn = null;
    q.after = null;
    q.cache = null;
    q.rule = null;
  };

  // ---- read-your-writes -----------------------------------------------------

  /** The listener's ReadYourWrites (UNSPECIFIED: NONE). */
  private get ryw(): ReadYourWrites {
    const r = this.login.listener.readYourWrites as ReadYourWrites;
    return r === RYW_UNSPECIFIED ? RYW_NONE : r;
  }

  /** The session's last written GTID (SESSION), or the worker's last on the cluster (GLOBAL); null: no constraint. */
  private causalGtid(): string | null {
    const r = this.ryw;
    if (r === RYW_SESSION) return this.lastGtid;
    if (r === RYW_GLOBAL) return this.login.cluster.runtime.lastGtid;
    return null;
  }

  /** The session's last write's GTID (MariaDB @@last_gtid). */
  private lastGtid: string | null = null;
  /** Backends known (this session) to have applied `lastGtid`. */
  private readonly caughtUp = new Set<string>();

  /** SELECT @@last_gtid on the connection that just wrote. */
  private async readLastGtid(conn: PooledConnection): Promise<void> {
    const v = await this.scalar(conn, "SELECT @@last_gtid");
    if (v === null || !/^[0-9]+-[0-9]+-[0-9]+(,[0-9]+-[0-9]+-[0-9]+)*$/.test(v)) return;
    this.lastGtid = v;
    this.caughtUp.clear();
    const rt = this.login.cluster.runtime;
    const mine = parseGtidList(v);
    const prev = rt.lastGtid === null ? null : parseGtidList(rt.lastGtid);
    if (mine !== null && (prev === null || !covers(prev, mine))) rt.lastGtid = prev === null ? v : gtidText(mergeGtidLists(prev, mine), v);
  }

  /**
   * A replica connection for a read that must see `causalGtid()`: a replica
   * the monitor reports as having applied it, or one that catches up within
   * the listener's causalReadTimeout (MASTER_GTID_WAIT), else the primary.
   */
  private async connForCausalRead(): Promise<PooledConnection> {
    const gtid = this.causalGtid() as string;
    const cluster = this.login.cluster;
    this.dropSticky();
    const now = Date.now();
    const known = cluster.runtime.state.pickReplica(now, { gtid });
    if (known !== null) return this.acquireFrom(known, RouteTarget.Replica, cluster);
    const timeoutMs = this.login.listener.causalReadTimeoutMs;
    if (timeoutMs > 0) {
      const conn = await this.ensureState(await this.acquire(RouteTarget.Replica));
      if (this.currentTarget === RouteTarget.Replica) {
        const backend = this.poolByConn.get(conn)?.backend.name ?? "";
        if (this.caughtUp.has(backend)) return conn;
        const v = await this.scalar(conn, `SELECT MASTER_GTID_WAIT('${gtid}', ${(timeoutMs / 1000).toFixed(3)})`);
        if (v === "0") {
          this.caughtUp.add(backend);
          return conn;
        }
        this.log.debug({ conn: this.host.connectionId, backend, gtid, timeoutMs }, "replica did not catch up in time: read goes to the primary");
        this.releaseConn(conn);
      } else {
        return conn; // already the primary (no replica usable)
      }
    }
    metrics.routed(this.login.listener.name, "primary", "read-your-writes");
    return this.connFor(RouteTarget.Primary);
  }

  /** Runs a one-value query on `conn` (the client sees nothing); its value as text, or null (NULL, error, no row). */
  private async scalar(conn: PooledConnection, sql: string): Promise<string | null> {
    const bytes = await this.collect(conn, framePayload(buildQuery(sql), 0), ResponseShape.ResultSets);
    this.current = null;
    if (this.tracker.error) return null;
    return firstValue(bytes, this.tracker.deprecateEof);
  }

  /**
   * A statement a rule sends to another cluster: on a connection of that
   * cluster's pool for this statement only (the session's own connections and
   * state stay with its listener's cluster; settings and schema are replayed).
   */
  private async runElsewhere(clusterName: string, target: RouteTarget, packet: Buffer, kind: K, started: number): Promise<void> {
    const cluster = this.login.listener.clusters.get(clusterName);
    if (cluster === undefined) throw new NoBackendAvailableError(`mysqlgw: query rule routes to cluster '${clusterName}', which this config version does not define`);
    this.dropSticky();
    const conn = await this.ensureState(await this.acquire(target, cluster));
    this.external = conn;
    await this.run(conn, packet, ResponseShape.ResultSets, () => {
      metrics.statementFinished(this.login.listener.name, statementKindName(kind), this.tracker.error ? "error" : "ok", (performance.now() - started) / 1000);
    });
  }

  // ---- observation (observe/observer.ts; nothing here runs without observers) ----

  /** The session as observers know it; null: nothing is observed. */
  private readonly observed: SessionInfo | null;
  private readonly obs = { startedAt: 0, routedAt: 0, acquiredAt: 0, firstByteAt: 0, bytes: 0, reason: "", rule: null as string | null, pinReason: null as string | null, traceparent: null as string | null };

  private beginObservation(startedAt: number, routedAt: number, acquiredAt: number, reason: string, rule: string | null, traceparent: string | null): void {
    const o = this.obs;
    o.startedAt = startedAt;
    o.routedAt = routedAt;
    o.acquiredAt = acquiredAt;
    o.firstByteAt = 0;
    o.bytes = 0;
    o.reason = reason;
    o.rule = rule;
    o.pinReason = null;
    o.traceparent = traceparent;
  }

  /** One StatementRecord for the observers, once the response went out (from the command's `after`: complete() set completedAt). */
  private endObservation(command: number, kind: string, textPacket: Buffer, textStart: number, conn: PooledConnection, skeleton: number): void {
    const session = this.observed;
    if (session === null || !observers.active) return;
    const o = this.obs;
    const t = this.tracker;
    const endedAt = this.completedAt;
    let digestCache: { readonly text: string; readonly hash: string } | null = null;
    const origin = this.poolByConn.get(conn);
    observers.statement({
      session,
      command,
      kind,
      sql: observers.wantsSql ? textPacket.toString("utf8", textStart) : "",
      digest: () => (digestCache ??= digestBySkeleton(skeleton, textPacket, textStart, textPacket.length)),
      traceparent: o.traceparent,
      schema: this.schema,
      target: this.currentTarget === RouteTarget.Replica ? "replica" : "primary",
      cluster: origin !== undefined ? this.clusterOfPool(origin) : this.login.cluster.name,
      backend: origin?.backend.name ?? null,
      reason: o.reason,
      rule: o.rule,
      pinReason: o.pinReason,
      ok: !t.error,
      errno: t.error ? t.errno : 0,
      rows: t.rows,
      bytes: o.bytes,
      startedAt: o.startedAt,
      routedAt: o.routedAt || o.startedAt,
      acquiredAt: o.acquiredAt,
      firstByteAt: o.firstByteAt || endedAt, // not read when the response came in one chunk
      endedAt,
    });
  }

  private clusterOfPool(origin: ConnOrigin): string {
    return origin.pool.identity.cluster;
  }

  /** Records the response of a statement a cache rule matched. */
  private recorder: ResponseRecorder | null = null;

  /** What else a cached response's bytes depend on: the character set, MariaDB capabilities, tracked settings. */
  private cacheContext(): string {
    let s = `${this.login.characterSet}|${this.login.mariadbCapabilities}`;
    for (const [k, v] of this.settings) s += `|${k}=${v}`;
    return s;
  }

  /** Sends the statement to a rule's mirror cluster too (fire and forget; see mirror.ts). */
  private mirrorStatement(clusterName: string, packet: Buffer): void {
    const cluster = this.login.listener.clusters.get(clusterName);
    if (cluster === undefined) return;
    const target = mirrorTarget(cluster);
    if (target === null) return;
    const own = this.poolLogin(target, this.login.cluster);
    this.options.mirror.send(mirrorLogin(own, cluster, target), cluster.pool, packet, this.schema, false);
  }

  /** A connection of another cluster (rule route) running the current statement: released right after it. */
  private external: PooledConnection | null = null;

  // ---- other commands -------------------------------------------------------

  private async initDb(packet: Buffer): Promise<void> {
    const name = packet.toString("utf8", 5);
    if (!this.schemaAllowed(name)) {
      this.replyErr(this.schemaDenied(name), 1);
      return this.finish();
    }
    const conn = await this.ensureState(await this.connFor(this.readTarget()));
    await this.run(conn, packet, ResponseShape.Single, () => {
      if (!this.tracker.error) {
        this.schema = name;
        conn.schema = name;
      }
    });
  }

  private async simple(packet: Buffer, target: RouteTarget, shape: ResponseShape): Promise<void> {
    const conn = await this.ensureState(await this.connFor(target));
    await this.run(conn, packet, shape, null);
  }

  private async resetConnection(): Promise<void> {
    // the session starts afresh: settings, pins, statements, transaction; the schema stays (as MariaDB's)
    this.settings.clear();
    this.pins.clear();
    this.statements.clear();
    Object.assign(this.route, createSessionRouteState());
    this.releaseHeld(true);
    this.replyOk(1);
    this.finish();
  }

  // ---- prepared statements --------------------------------------------------

  private statementTarget(s: ClientStatement): RouteTarget {
    if (this.mustStayOnPrimary() || this.mode === ListenerMode.ReadWrite) return RouteTarget.Primary;
    if (this.mode === ListenerMode.ReadOnly) return RouteTarget.Replica;
    const c = this.cls;
    c.kind = s.kind;
    c.flags = s.flags;
    c.hint = 0;
    return decideRoute(this.mode, c, this.route, null).target;
  }

  private async prepare(packet: Buffer): Promise<void> {
    const c = classify(packet, 5, packet.length, this.cls);
    if (this.login.user.checked || this.login.listener.firewall !== null) {
      const refused = this.checkStatement(c.kind, c.flags, packet, 5, packet.length);
      if (refused !== null) {
        this.replyErr(refused, 1);
        return this.finish();
      }
    }
    const sql = packet.toString("utf8", 5);
    const stmt: ClientStatement = { sql, packet: Buffer.from(packet), kind: c.kind, flags: c.flags, skeleton: c.skeleton, numParams: 0, paramTypes: null, boundTo: null };
    const target = this.statementTarget(stmt);
    const conn = await this.ensureState(await this.connFor(target));
    this.lastPrepared = 0;
    const be = await this.prepareOn(conn, stmt);
    if (be === null) return; // the ERR went to the client
    const id = this.nextStatementId++;
    if (this.nextStatementId > 0x7fffffff) this.nextStatementId = 1;
    const numParams = be.response.length >= 13 ? be.response[11] | (be.response[12] << 8) : 0;
    this.statements.set(id, { ...stmt, numParams });
    this.lastPrepared = id;
    const out = Buffer.from(be.response);
    out.writeUInt32LE(id, 5);
    this.host.client().write(out);
    this.afterCommand(conn);
  }

  /**
   * The backend statement for `stmt` on `conn`, prepared there if needed.
   * On a prepare error the ERR goes to the client (when `toClient`) and null is returned.
   */
  private async prepareOn(conn: PooledConnection, stmt: ClientStatement, toClient = true): Promise<BackendStatement | null> {
    const known = conn.statements.get(stmt.sql) as BackendStatement | undefined;
    if (known !== undefined) return known;
    const bytes = await this.collect(conn, stmt.packet, ResponseShape.Prepare);
    if (this.tracker.error) {
      if (toClient) {
        this.host.client().write(bytes);
        this.afterCommand(conn);
      }
      return null;
    }
    const be: BackendStatement = { id: this.tracker.stmtId, response: bytes, typesSent: false };
    if (bytes.length <= MAX_CACHED_PREPARE) conn.statements.set(stmt.sql, be);
    return be;
  }

  /**
   * The client statement a command names. MariaDB's id 0xFFFFFFFF means the
   * statement prepared last (connectors pipeline PREPARE and EXECUTE with it).
   */
  private statementOf(packet: Buffer): ClientStatement | null {
    if (packet.length < 9) return null;
    const id = packet.readUInt32LE(5);
    if (id === LAST_PREPARED) return this.lastPrepared === 0 ? null : (this.statements.get(this.lastPrepared) ?? null);
    return this.statements.get(id) ?? null;
  }

  /** The gateway id of the statement prepared last (0: none, or its prepare failed). */
  private lastPrepared = 0;

  private unknownStatement(packet: Buffer, what: string): void {
    const id = packet.length >= 9 ? packet.readUInt32LE(5) : 0;
    this.replyErr({ errno: 1243, sqlState: "HY000", message: `Unknown prepared statement handler (${id}) given to ${what}` }, 1);
    this.finish();
  }

  private async execute(packet: Buffer, cmd: number): Promise<void> {
    const stmt = this.statementOf(packet);
    if (stmt === null) return this.unknownStatement(packet, cmd === Command.StmtExecute ? "mysqld_stmt_execute" : "mysqld_stmt_bulk_execute");
    if (this.quotas.active) {
      const q = this.quotas.admit(null);
      if (q !== null && (await this.quotaRefused(q, this.login.listener.name, stmt.kind))) return this.finish();
    }
    const conn = stmt.boundTo ?? (await this.ensureState(await this.connFor(this.statementTarget(stmt))));
    const be = await this.prepareOn(conn, stmt, false);
    if (be === null) {
      // the statement no longer prepares (e.g. its table was dropped): the client gets the server's error
      return this.replyPrepareError(conn);
    }
    let out = packet;
    if (cmd === Command.StmtExecute) out = this.executePacket(packet, stmt, be);
    else out.writeUInt32LE(be.id, 5);
    const cursor = cmd === Command.StmtExecute && packet.length > 9 && (packet[9] & CURSOR_TYPE_READ_ONLY) !== 0;
    if (this.observed !== null) this.beginObservation(this.commandAt, this.commandAt, performance.now(), "prepared", null, null);
    await this.run(conn, out, ResponseShape.ResultSets, () => {
      if (this.observed !== null) this.endObservation(cmd, statementKindName(stmt.kind), stmt.packet, 5, conn, stmt.skeleton);
      if (cursor && (this.tracker.statusFlags & ServerStatus.CursorExists) !== 0 && !this.tracker.error) {
        stmt.boundTo = conn;
        this.pin("cursor");
      } else if (stmt.boundTo !== null) {
        stmt.boundTo = null;
        this.unpinIfUnbound("long-data");
      }
    });
  }

  /** The ERR of a re-prepare that failed, sent as the answer to the command. */
  private replyPrepareError(conn: PooledConnection): void {
    const bytes = this.lastCollected;
    if (bytes !== null) this.host.client().write(bytes);
    this.afterCommand(conn);
  }

  /**
   * COM_STMT_EXECUTE with the backend's statement id; when this backend
   * statement has not seen the parameter types yet and the client does not
   * send them (new_params_bound_flag 0), the saved ones are put in.
   */
  private executePacket(packet: Buffer, stmt: ClientStatement, be: BackendStatement): Buffer {
    packet.writeUInt32LE(be.id, 5);
    const n = stmt.numParams;
    if (n === 0) return packet;
    const bitmap = (n + 7) >> 3;
    const flagAt = 4 + 1 + 4 + 1 + 4 + bitmap;
    if (flagAt >= packet.length) return packet;
    if (packet[flagAt] === 1) {
      stmt.paramTypes = Buffer.from(packet.subarray(flagAt + 1, flagAt + 1 + 2 * n));
      be.typesSent = true;
      return packet;
    }
    if (be.typesSent || stmt.paramTypes === null) return packet;
    be.typesSent = true;
    const payload = Buffer.concat([packet.subarray(4, flagAt), Buffer.from([1]), stmt.paramTypes, packet.subarray(flagAt + 1)]);
    return framePayload(payload, packet[3]);
  }

  private async sendLongData(packet: Buffer): Promise<void> {
    const stmt = this.statementOf(packet);
    if (stmt === null) return this.finish(); // no response to this command, as the server does
    const conn = stmt.boundTo ?? (await this.ensureState(await this.connFor(this.statementTarget(stmt))));
    const be = await this.prepareOn(conn, stmt, false);
    if (be === null) return this.finish();
    stmt.boundTo = conn;
    this.pin("long-data");
    packet.writeUInt32LE(be.id, 5);
    await this.run(conn, packet, ResponseShape.None, null);
  }

  private async closeStatement(packet: Buffer): Promise<void> {
    const stmt = this.statementOf(packet);
    if (stmt !== null) {
      const id = packet.readUInt32LE(5);
      const gid = id === LAST_PREPARED ? this.lastPrepared : id;
      this.statements.delete(gid);
      if (gid === this.lastPrepared) this.lastPrepared = 0;
      if (stmt.boundTo !== null) {
        stmt.boundTo = null;
        this.unpinIfUnbound("cursor");
        this.unpinIfUnbound("long-data");
      }
    }
    // the backend statement stays prepared on its connections for the next client preparing the same text
    this.finish();
  }

  private async resetStatement(packet: Buffer): Promise<void> {
    const stmt = this.statementOf(packet);
    if (stmt === null) return this.unknownStatement(packet, "mysqld_stmt_reset");
    const conn = stmt.boundTo;
    if (conn === null) {
      this.replyOk(1);
      return this.finish();
    }
    const be = conn.statements.get(stmt.sql) as BackendStatement | undefined;
    if (be !== undefined) packet.writeUInt32LE(be.id, 5);
    stmt.boundTo = null;
    await this.run(conn, packet, ResponseShape.Single, () => {
      this.unpinIfUnbound("cursor");
      this.unpinIfUnbound("long-data");
    });
  }

  private async fetch(packet: Buffer): Promise<void> {
    const stmt = this.statementOf(packet);
    if (stmt === null || stmt.boundTo === null) return this.unknownStatement(packet, "mysqld_stmt_fetch");
    const conn = stmt.boundTo;
    const be = conn.statements.get(stmt.sql) as BackendStatement | undefined;
    if (be !== undefined) packet.writeUInt32LE(be.id, 5);
    await this.run(conn, packet, ResponseShape.Rows, () => {
      if (this.tracker.error || (this.tracker.statusFlags & ServerStatus.LastRowSent) !== 0) {
        stmt.boundTo = null;
        this.unpinIfUnbound("cursor");
      }
    });
  }

  // ---- permissions and the firewall (issue 6) ----------------------------------

  private schemaAllowed(schema: string): boolean {
    const allowed = this.login.user.allowedSchemas;
    return allowed === null || allowed.has(schema);
  }

  /** As MariaDB says it: 1044 (42000). */
  private schemaDenied(schema: string): ErrPacket {
    return { errno: 1044, sqlState: "42000", message: `Access denied for user '${this.login.user.name}'@'${this.host.clientHost}' to database '${schema}'` };
  }

  /**
   * The user's permissions (read-only, allowed statement kinds) and the
   * firewall's allowlist, for one statement; an ERR to refuse it with, or null.
   */
  private checkStatement(kind: K, flags: number, bytes: Buffer, start: number, end: number): ErrPacket | null {
    const u = this.login.user;
    const who = `'${u.name}'@'${this.host.clientHost}'`;
    const name = statementKindName(kind);
    if ((u.readOnly || u.allowedKinds !== null) && (flags & F.MultiStatement) !== 0) {
      return { errno: 1142, sqlState: "42000", message: `mysqlgw: user ${who} may not send several statements in one query (its permissions are checked statement by statement); send them one at a time` };
    }
    if (u.allowedKinds !== null && !u.allowedKinds.has(kind)) {
      return { errno: 1142, sqlState: "42000", message: `${name} command denied to user ${who} (mysqlgw: not among the user's allowedStatementKinds)` };
    }
    if (u.readOnly && !readOnlyAllows(kind, flags)) {
      return { errno: 1142, sqlState: "42000", message: `${name} command denied to user ${who} (mysqlgw: the user is read-only)` };
    }
    const fw = this.login.listener.firewall;
    if (fw !== null && (fw.users === null || fw.users.has(u.name))) {
      const hash = digestHash(bytes, start, end);
      if (!fw.digests.has(hash)) {
        if (fw.enforce) {
          metrics.pinned(this.login.listener.name, "firewall-refused");
          return { errno: 1142, sqlState: "42000", message: `statement refused by mysqlgw's firewall: its digest ${hash} is not on the allowlist; ask for it to be approved (mysqlgw firewall suggest lists what ran)` };
        }
        if (learned.size < MAX_LEARNED && !learned.has(hash)) {
          learned.add(hash);
          this.log.info({ digest: hash, user: u.name, kind: name }, "firewall (learning): statement not on the allowlist");
        }
      }
    }
    return null;
  }

  // ---- KILL and COM_CHANGE_USER ---------------------------------------------

  /** `KILL [QUERY] id` / COM_PROCESS_KILL by this client: routed to the owner of `id` (any session, any worker). */
  private async kill(id: number, query: boolean): Promise<void> {
    const r = await this.host.killConnection({ target: id >>> 0, user: this.login.user.name, query });
    this.log.info({ conn: this.host.connectionId, target: id, query, errno: r.errno }, "kill");
    if (r.errno === 0) this.replyOk(1);
    else this.replyErr(r, 1);
    this.finish();
  }

  /**
   * Someone's KILL of this session: the statement under way (if any) is
   * interrupted on its backend connection, which is kept from the pool until
   * the KILL QUERY has run (so that it cannot hit another client's statement).
   * Returns the backend thread to kill, or null when idle.
   */
  beginKill(): KillTarget | null {
    const conn = this.current;
    if (conn === null || this.closed) return null;
    this.killConn = conn;
    const u = this.login.user;
    const backend = this.poolByConn.get(conn)?.backend;
    if (backend === undefined) return null;
    return { user: u.name, backend, backendUser: u.backendUser, secretRef: u.secretRef, threadId: conn.threadId, tls: this.login.cluster.tls };
  }

  endKill(): void {
    const conn = this.killConn;
    this.killConn = null;
    if (conn !== null && this.deferredRelease === conn) {
      this.deferredRelease = null;
      this.releaseConn(conn);
    }
  }

  /** The mysqlgw user owning the session (who may KILL it). */
  ownerName(): string {
    return this.login.user.name;
  }

  private killConn: PooledConnection | null = null;
  private deferredRelease: PooledConnection | null = null;

  /** Reads the next client packet of an exchange (COM_CHANGE_USER's auth rounds); bounded by the handshake timeout. */
  private nextClientPacket(): Promise<Buffer> {
    const queued = this.queue.shift();
    if (queued !== undefined) return Promise.resolve(queued);
    return new Promise<Buffer>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.packetWaiter = null;
        reject(new ChangeUserRefusedError("mysqlgw: the client did not answer the authentication exchange in time"));
      }, this.host.handshakeTimeoutMs);
      this.packetWaiter = (p) => {
        clearTimeout(timer);
        resolve(p);
      };
    });
  }

  private packetWaiter: ((packet: Buffer) => void) | null = null;

  /**
   * COM_CHANGE_USER: re-authenticated against mysqlgw's users; the session
   * then starts afresh as the new user (its connections go back to the pool
   * to be reset; the next statement borrows from the new user's pool).
   */
  private async changeUser(packet: Buffer): Promise<void> {
    const caps = this.login.clientCapabilities | Capability.Protocol41 | Capability.SecureConnection | Capability.PluginAuth | Capability.ConnectAttrs | Capability.PluginAuthLenencClientData;
    const req = parseChangeUser(packet.subarray(4), caps);
    let seq = packet[3];
    const auth = new ClientAuthentication(
      this.host.users,
      {
        capabilities: caps,
        mariadbCapabilities: 0,
        maxPacketSize: 0,
        characterSet: req.characterSet ?? this.login.characterSet,
        username: req.username,
        authResponse: req.authResponse,
        database: req.database,
        authPluginName: req.authPluginName,
        connectAttributes: req.connectAttributes,
      },
      this.host.nonce,
      this.host.secure,
      this.host.authRuntime,
    );
    let step = auth.begin();
    for (let round = 0; step.kind === AuthStepKind.Send && round < 4; round++) {
      seq += 1;
      this.host.client().write(framePayload(step.payload, seq));
      const answer = await this.nextClientPacket();
      seq = answer[3];
      step = auth.next(Buffer.from(answer.subarray(4)));
    }
    if (step.kind !== AuthStepKind.Done) {
      const used = step.kind === AuthStepKind.Denied ? step.usedPassword : true;
      this.log.info({ conn: this.host.connectionId, user: req.username }, "change user: access denied");
      this.replyErr(toSqlError(new AccessDeniedError(req.username, this.host.clientHost, used)), seq + 1);
      return this.finish();
    }
    if (step.payload !== null) {
      seq += 1;
      this.host.client().write(framePayload(step.payload, seq));
    }
    const u = step.user as UserSnapshot;
    let password: string;
    try {
      password = await resolveSecretRef(u.secretRef);
    } catch {
      this.replyErr(toSqlError(new ChangeUserRefusedError(`mysqlgw: the backend credentials of user '${u.name}' cannot be resolved on this data plane (see its log)`)), seq + 1);
      return this.finish();
    }
    // the session starts afresh, as after COM_CHANGE_USER on MariaDB
    this.settings.clear();
    this.pins.clear();
    this.statements.clear();
    this.lastPrepared = 0;
    Object.assign(this.route, createSessionRouteState());
    this.releaseHeld(true);
    const previous = this.login.user.name;
    this.login.user = u;
    this.login.password = password;
    this.quotas.setUser(u.name);
    this.poolCache.clear(); // the new user's backend account has pools of its own
    if (req.characterSet !== null && req.characterSet !== 0) this.login.characterSet = req.characterSet;
    this.schema = req.database || null;
    const refused = await this.start();
    if (refused !== null) {
      this.replyErr(refused, seq + 1);
      return this.finish();
    }
    this.log.info({ conn: this.host.connectionId, from: previous, to: u.name }, "change user");
    this.replyOk(seq + 1);
    this.finish();
  }

  // ---- planned switchover (switchover-hold.ts) --------------------------------

  /** Set at the end of a switchover's drain window: answers the next command, then the connection closes. */
  private switchoverEnd: ErrPacket | null = null;

  /** A statement about to borrow a primary connection waits while the cluster's switchover holds writes. */
  private async switchoverGate(): Promise<void> {
    const h = switchoverHolds.get(this.login.cluster.name);
    if (h === undefined) return;
    const held = this.heldPrimary;
    if (held !== null) {
      // a transaction or pinned state goes on where it is; a connection held only for lack of multiplexing moves
      if (this.mustStayOnPrimary() || this.poolByConn.get(held)?.backend.name !== h.oldPrimary) return;
      this.heldPrimary = null;
      this.releaseConn(held);
    }
    await h.wait(this.login.cluster.runtime.state);
    if (this.closed) throw new ServerShutdownError();
  }

  /** True while it holds an open transaction (or pinned state) on `backend` of `cluster` (switchover-hold.ts). */
  switchoverOpen(cluster: string, backend: string): boolean {
    const held = this.heldPrimary;
    return held !== null && this.switchoverEnd === null && this.login.cluster.name === cluster && this.mustStayOnPrimary() && this.poolByConn.get(held)?.backend.name === backend;
  }

  /**
   * The drain window is over: the transaction is rolled back (now if idle, else as its command
   * finishes: finish() drops the held primary) and `err` answers the next command.
   */
  endForSwitchover(err: ErrPacket): void {
    this.switchoverEnd = err;
    if (!this.busy && this.heldPrimary !== null) this.dropConn(this.heldPrimary);
  }

  private endedBySwitchover(err: ErrPacket): void {
    if (this.heldPrimary !== null) this.dropConn(this.heldPrimary);
    this.host.fail(buildErr(err, 1));
    this.close();
  }

  // ---- pins -----------------------------------------------------------------

  private pin(reason: string): void {
    if (!this.pins.has(reason)) {
      this.pins.add(reason);
      this.obs.pinReason = reason;
      metrics.pinned(this.login.listener.name, reason);
      this.log.debug({ conn: this.host.connectionId, reason }, "session pinned to its primary connection");
    }
  }

  /** Drops a statement-bound pin once no statement holds a connection any more. */
  private unpinIfUnbound(reason: string): void {
    if (!this.pins.has(reason)) return;
    for (const s of this.statements.values()) if (s.boundTo !== null) return;
    this.pins.delete(reason);
  }

  // ---- connections ----------------------------------------------------------

  private poolFor(target: BackendTarget, cluster: ClusterSnapshot): BackendPool {
    // a pool's key is a string of the whole login: made once per backend per session
    const known = this.poolCache.get(target);
    if (known !== undefined && !known.closed) return known;
    const pool = this.options.pools.pool(this.poolLogin(target, cluster), cluster.pool);
    this.poolCache.set(target, pool);
    return pool;
  }

  /** The pool of each backend this session used (BackendTarget objects are per config version and cluster). */
  private readonly poolCache = new Map<BackendTarget, BackendPool>();

  /** The login of this session's pooled connections to `target`. */
  private poolLogin(target: BackendTarget, cluster: ClusterSnapshot): PoolLogin {
    const l = this.login;
    return {
      clusterName: cluster.name,
      target,
      tls: cluster.tls,
      user: l.user.backendUser,
      password: l.password,
      capabilities: l.clientCapabilities & (l.user.allowLoadDataLocal ? 0xffffffff : ~Capability.LocalFiles),
      mariadbCapabilities: l.mariadbCapabilities,
      characterSet: l.characterSet,
      maxPacketSize: l.maxPacketSize,
      connectTimeoutMs: this.options.backendConnectTimeoutMs,
      maxHandshakePacketSize: this.options.maxHandshakePacketSize,
    };
  }

  private poolOf(conn: PooledConnection): BackendPool | null {
    return this.poolByConn.get(conn)?.pool ?? null;
  }

  /** Where each connection the session borrowed comes from. */
  private readonly poolByConn = new WeakMap<PooledConnection, ConnOrigin>();

  /** A connection from the pool of a backend chosen for `target`. */
  private async acquire(target: RouteTarget, cluster: ClusterSnapshot = this.login.cluster): Promise<PooledConnection> {
    const choice = chooseBackend(cluster, target, this.login.listener);
    if (choice === null) {
      throw new NoBackendAvailableError(
        `mysqlgw: no ${target === RouteTarget.Replica ? "replica" : "primary"} of cluster '${cluster.name}' is usable; check the backends' health (mysqlgw backends) or the listener's replicaFallback`,
      );
    }
    return this.acquireChosen(choice, cluster);
  }

  /**
   * connFor without a promise, for a statement of the session's cluster: the
   * held connection, or the one kept on the backend the load balancing picks,
   * when it needs no schema or settings replay. A BackendChoice: the backend
   * is picked (acquireChosen it), the connection is not at hand; null: connFor.
   */
  private connNow(target: RouteTarget): PooledConnection | BackendChoice | null {
    if (this.mustStayOnPrimary()) target = RouteTarget.Primary;
    if (switchoverHolds.size !== 0 && target === RouteTarget.Primary) return null;
    const held = target === RouteTarget.Primary ? this.heldPrimary : this.heldReplica;
    if (held !== null) {
      if (!this.inStep(held)) return null;
      this.currentTarget = target;
      return held;
    }
    if (this.kept.size === 0) return null;
    const cluster = this.login.cluster;
    const choice = chooseBackend(cluster, target, this.login.listener);
    if (choice === null) return null;
    const pool = this.poolCache.get(choice.backend);
    const mine = pool === undefined ? undefined : this.kept.get(pool);
    if (mine === undefined || pool === undefined || pool.closed || mine.link.socket.destroyed || !this.inStep(mine)) return choice;
    this.takeKept(pool);
    this.currentTarget = choice.target;
    return mine;
  }

  /** The connection has the session's schema and tracked settings (syncState would send nothing). */
  private inStep(conn: PooledConnection): boolean {
    if (this.schema !== null && conn.schema !== this.schema) return false;
    const mine = this.settings;
    const theirs = conn.settings;
    if (mine.size !== theirs.size) return false;
    if (mine.size !== 0) {
      for (const [k, v] of mine) if (theirs.get(k) !== v) return false;
    }
    return true;
  }

  /** A connection from the pool of the chosen backend; an unreachable replica's read goes to another, else the primary. */
  private async acquireChosen(choice: BackendChoice, cluster: ClusterSnapshot): Promise<PooledConnection> {
    try {
      return await this.acquireFrom(choice.backend, choice.target, cluster);
    } catch (err) {
      // a replica that cannot be reached (nothing was sent yet): another replica, else the primary
      const code = err instanceof MgwError ? err.code : "";
      if (choice.target !== RouteTarget.Replica || (code !== "MGW_ERR_BACKEND_CONNECT" && code !== "MGW_ERR_BACKEND_TIMEOUT")) throw err;
      const now = Date.now();
      const other = cluster.runtime.state.pickReplica(now, { exclude: choice.backend.name });
      this.log.info({ conn: this.host.connectionId, backend: choice.backend.name, retry: other?.name ?? "primary", err: (err as Error).message }, "replica unreachable, read goes elsewhere");
      if (other !== null) return this.acquireFrom(other, RouteTarget.Replica, cluster);
      if (this.login.listener.replicaFallback === ReplicaFallback.NONE) throw err;
      const primary = cluster.runtime.state.primary(now);
      if (primary === null) throw err;
      return this.acquireFrom(primary, RouteTarget.Primary, cluster);
    }
  }

  private async acquireFrom(backend: BackendTarget, target: RouteTarget, cluster: ClusterSnapshot): Promise<PooledConnection> {
    const pool = this.poolFor(backend, cluster);
    // the connection this session last used on that backend, kept for it: no pool round trip, and
    // the backend's thread keeps serving one client (rotating threads costs more than the pool does)
    const mine = this.takeKept(pool);
    if (mine !== null) {
      if (!mine.link.socket.destroyed) {
        this.currentTarget = target;
        return mine;
      }
      this.detach(mine);
      pool.discard(mine);
    }
    if (pool.exhausted) RoutedSession.reclaimSticky(pool);
    const conn = await pool.acquire();
    this.poolByConn.set(conn, { pool, backend, state: cluster.runtime.state });
    this.currentTarget = target;
    return conn;
  }

  /**
   * The connection for the next command: held, or the previous statement's
   * when `previous` (the statement reads its state: warnings, FOUND_ROWS(),
   * LAST_INSERT_ID()), else one borrowed through the cluster's load balancing.
   */
  private async connFor(target: RouteTarget, previous = false): Promise<PooledConnection> {
    if (this.mustStayOnPrimary()) target = RouteTarget.Primary;
    if (switchoverHolds.size !== 0 && target === RouteTarget.Primary) await this.switchoverGate();
    const held = target === RouteTarget.Primary ? this.heldPrimary : this.heldReplica;
    if (held !== null) {
      this.currentTarget = target;
      return held;
    }
    const sticky = this.sticky;
    if (previous && sticky !== null && this.stickyTarget === target) {
      const pool = this.poolOf(sticky);
      const c = pool === null ? null : this.takeKept(pool);
      if (c !== null) {
        this.currentTarget = target;
        return c;
      }
    }
    return this.acquire(target);
  }

  /** Brings a borrowed connection to the session's schema and settings; an ERR to refuse with, or null. */
  private async syncState(conn: PooledConnection): Promise<ErrPacket | null> {
    const timeout = this.options.backendConnectTimeoutMs;
    const sock = conn.link.socket;
    if (this.schema !== null && conn.schema !== this.schema) {
      if (this.listening.has(conn)) this.detach(conn); // runBackendCommand reads the socket itself
      const r = await runBackendCommand(sock, buildInitDb(this.schema), timeout);
      if (!r.ok) return { errno: r.errno, sqlState: r.sqlState, message: r.message };
      conn.schema = this.schema;
    }
    let sql = "";
    for (const [name, text] of this.settings) {
      if (conn.settings.get(name) !== text) sql += (sql === "" ? "SET " : ", ") + text;
    }
    for (const name of conn.settings.keys()) {
      if (!this.settings.has(name)) {
        if (name === NAMES_KEY) {
          // the handshake's character set cannot be named back: the connection is reset instead
          conn.dirty = true;
          throw new ReplaceConnection();
        }
        sql += (sql === "" ? "SET " : ", ") + `${name} = DEFAULT`;
      }
    }
    if (sql !== "") {
      if (this.listening.has(conn)) this.detach(conn);
      const r = await runBackendCommand(sock, buildQuery(sql), timeout);
      if (!r.ok) return { errno: r.errno, sqlState: r.sqlState, message: `mysqlgw could not restore the session's settings on a backend connection (${sql}): ${r.message}` };
      conn.settings.clear();
      for (const [k, v] of this.settings) conn.settings.set(k, v);
    }
    return null;
  }

  /** syncState for a command; a connection that cannot be brought in line is replaced once. Returns the one to use. */
  private async ensureState(conn: PooledConnection): Promise<PooledConnection> {
    let c = conn;
    for (let attempt = 0; ; attempt++) {
      try {
        const e = await this.syncState(c);
        if (e !== null) throw new SessionStateError(e);
        return c;
      } catch (err) {
        if (!(err instanceof ReplaceConnection) || attempt > 0 || c === this.heldPrimary || c === this.heldReplica) throw err;
        this.releaseConn(c);
        c = await this.acquire(this.currentTarget);
      }
    }
  }

  private hold(target: RouteTarget, conn: PooledConnection): void {
    if (target === RouteTarget.Primary) this.heldPrimary = conn;
    else this.heldReplica = conn;
    conn.link.socket.on("close", this.onHeldClose);
  }

  private readonly onHeldClose = (): void => {
    if (this.closed) return;
    const dead = (c: PooledConnection | null): boolean => c !== null && c.link.socket.destroyed;
    const lostState = dead(this.heldPrimary) && (this.route.inTransaction || !this.route.autocommit || this.pins.size > 0);
    if (dead(this.heldPrimary)) {
      this.poolOf(this.heldPrimary as PooledConnection)?.discard(this.heldPrimary as PooledConnection);
      this.heldPrimary = null;
    }
    if (dead(this.heldReplica)) {
      this.poolOf(this.heldReplica as PooledConnection)?.discard(this.heldReplica as PooledConnection);
      this.heldReplica = null;
    }
    if (lostState) {
      this.heldLost = true;
      if (!this.busy) {
        this.log.info({ conn: this.host.connectionId }, "backend connection holding the session's transaction or state was lost, closing");
        this.host.fail(null);
        this.close();
      }
    }
  };

  private releaseConn(conn: PooledConnection): void {
    if (conn === this.killConn) {
      // a KILL QUERY is on its way to this connection's thread: not back to the pool before it has run
      this.deferredRelease = conn;
      return;
    }
    if (this.listening.has(conn)) this.detach(conn);
    const pool = this.poolOf(conn);
    conn.link.socket.removeListener("close", this.onHeldClose);
    if (conn.link.socket.destroyed) {
      pool?.discard(conn);
      return;
    }
    if (conn.settings.has(NAMES_KEY)) conn.dirty = true;
    pool?.release(conn);
  }

  private dropConn(conn: PooledConnection): void {
    if (this.listening.has(conn)) this.detach(conn);
    conn.link.socket.removeListener("close", this.onHeldClose);
    if (conn === this.heldPrimary) this.heldPrimary = null;
    if (conn === this.heldReplica) this.heldReplica = null;
    const pool = this.poolOf(conn);
    if (pool !== null && this.kept.get(pool) === conn) this.takeKept(pool);
    pool?.discard(conn);
  }

  /** Gives back every connection the session holds; `dirty`: they carry session state to reset. */
  private releaseHeld(dirty: boolean): void {
    const kept = [...this.kept.keys()].map((p) => this.takeKept(p));
    for (const c of [this.heldPrimary, this.heldReplica, ...kept]) {
      if (c === null) continue;
      if (dirty) c.dirty = true;
      this.releaseConn(c);
    }
    this.heldPrimary = this.heldReplica = this.sticky = null;
    for (const s of this.statements.values()) s.boundTo = null;
  }

  // ---- running a command on a backend ---------------------------------------

  private lastCollected: Buffer | null = null;
  /** The connection of the command whose `after` runs. */
  private lastConn: PooledConnection | null = null;

  /** Sends `packet` on `conn` and streams the response to the client; `after` runs once it is complete. */
  private run(conn: PooledConnection, packet: Buffer, shape: ResponseShape, after: (() => void) | null): Promise<void> {
    return new Promise<void>((resolve) => {
      this.launch(conn, packet, shape, () => {
        after?.();
        resolve();
      });
    });
  }

  /** As run(), for a caller that has nothing to do after the response: `after` runs once it is complete, then the connection is kept, held or released. */
  private launch(conn: PooledConnection, packet: Buffer, shape: ResponseShape, after: (() => void) | null): void {
    this.current = conn;
    this.sink = Sink.Client;
    this.launched = conn;
    this.launchedAfter = after;
    this.onDone = this.onLaunchedDone;
    this.send(conn, packet, shape);
  }

  /** The connection and `after` of the command launch() sent (fields, not a closure per command). */
  private launched: PooledConnection | null = null;
  private launchedAfter: (() => void) | null = null;

  private readonly onLaunchedDone = (): void => {
    const c = this.launched as PooledConnection;
    const after = this.launchedAfter;
    this.launched = null;
    this.launchedAfter = null;
    this.lastConn = c;
    after?.();
    this.lastConn = null;
    this.afterCommand(c);
  };

  /** Sends `packet` on `conn` and collects the whole response (a prepare's), without the client seeing it. */
  private collect(conn: PooledConnection, packet: Buffer, shape: ResponseShape): Promise<Buffer> {
    const c = conn;
    return new Promise<Buffer>((resolve) => {
      this.current = c;
      this.sink = Sink.Collect;
      this.collected = [];
      this.onDone = () => {
        const bytes = Buffer.concat(this.collected);
        this.collected = [];
        this.lastCollected = bytes;
        this.current = null;
        this.detach(c);
        resolve(bytes);
      };
      // prepare on a connection: sequence id 0 whatever the client's packet said
      const out = Buffer.from(packet);
      out[3] = 0;
      this.send(c, out, shape);
    });
  }

  private send(conn: PooledConnection, packet: Buffer, shape: ResponseShape): void {
    const s = conn.link.socket;
    this.tracker.deprecateEof = (conn.link.capabilities & Capability.DeprecateEof) !== 0;
    const expects = this.tracker.begin(shape);
    if (expects) {
      // in-flight count and latency for LEAST_OUTSTANDING / POWER_OF_TWO_LATENCY
      const origin = this.poolByConn.get(conn);
      if (origin !== undefined) {
        origin.state.statementStarted(origin.backend.name);
        this.inflight = origin;
        this.sentAt = performance.now();
      }
    }
    this.attach(conn);
    s.write(packet);
    if (!expects) this.complete();
  }

  /**
   * The connections whose bytes the session reads, each with its own
   * listeners: the one a command runs on, and those the session keeps or holds.
   * They stay attached (and flowing) between statements, so that statements
   * alternating between backends add and remove no listeners; a connection is
   * detached (paused, no listener) when it goes back to the pool or another
   * command exchange (runBackendCommand) takes it over.
   */
  private readonly listening = new Map<PooledConnection, ConnListeners>();

  private attach(conn: PooledConnection): void {
    const s = conn.link.socket;
    if (!this.listening.has(conn)) {
      const l: ConnListeners = { data: (chunk: Buffer) => this.onBackendData(conn, chunk), close: () => this.onBackendClose(conn) };
      s.on("data", l.data);
      s.on("close", l.close);
      this.listening.set(conn, l);
    }
    if (s.isPaused()) s.resume();
  }

  private detach(conn: PooledConnection): void {
    const s = conn.link.socket;
    const l = this.listening.get(conn);
    if (l !== undefined) {
      s.removeListener("data", l.data);
      s.removeListener("close", l.close);
      this.listening.delete(conn);
    }
    s.pause();
  }

  private onBackendData(conn: PooledConnection, chunk: Buffer): void {
    if (this.current !== conn) {
      // nothing was asked of this connection: it is out of step (or the server is closing it)
      this.log.warn({ conn: this.host.connectionId, bytes: chunk.length }, "backend sent bytes with no command under way; its connection is dropped");
      this.dropConn(conn);
      return;
    }
    const end = this.tracker.push(chunk);
    const part = end < 0 || end === chunk.length ? chunk : chunk.subarray(0, end);
    if (this.sink === Sink.Collect) this.collected.push(part);
    else if (part.length > 0) {
      if (this.recorder !== null) this.recorder.add(part);
      if (this.observed !== null) {
        if (this.obs.firstByteAt === 0 && end < 0) this.obs.firstByteAt = performance.now(); // a response in one chunk: its end time
        this.obs.bytes += part.length;
      }
      this.wroteToClient = true;
      if (!this.host.client().write(part) && end < 0) this.current?.link.socket.pause();
    }
    if (end < 0) return;
    if (end < chunk.length) this.log.warn({ conn: this.host.connectionId, extra: chunk.length - end }, "backend sent bytes after a complete response; they are dropped");
    if (this.tracker.localInfile) {
      this.uploading = true;
      return;
    }
    this.complete();
  }

  private onBackendClose(conn: PooledConnection): void {
    if (this.closed) return;
    if (conn !== this.current) {
      // a kept connection closed between statements: it is discarded when next taken (or by onHeldClose)
      this.detach(conn);
      return;
    }
    this.tracker.abandon();
    this.endInflight(-1);
    this.onDone = null;
    // the transaction or session state it held is gone with it (dropConn removes onHeldClose first): the session ends, as MySQL's would
    if (conn === this.heldPrimary && (this.route.inTransaction || !this.route.autocommit || this.pins.size > 0)) this.heldLost = true;
    this.commandFailed(new BackendLostMidCommand());
  };

  /** Where the statement under way runs, for the backend's in-flight count and latency. */
  private inflight: ConnOrigin | null = null;
  private sentAt = 0;

  private endInflight(latencyUs: number): void {
    const o = this.inflight;
    if (o === null) return;
    this.inflight = null;
    o.state.statementFinished(o.backend.name, latencyUs);
  }

  private complete(): void {
    const now = performance.now();
    this.completedAt = now;
    this.endInflight((now - this.sentAt) * 1000);
    const done = this.onDone;
    this.onDone = null;
    if (this.sink === Sink.Client) this.current = null;
    done?.();
  }

  /** After a command's response: session status from the server, then hold, keep or release its connection. */
  private afterCommand(conn: PooledConnection): void {
    const t = this.tracker;
    if (t.statusKnown) {
      const f = t.statusFlags;
      this.route.inTransaction = (f & ServerStatus.InTrans) !== 0;
      this.route.readOnlyTransaction = (f & ServerStatus.InTransReadonly) !== 0;
      this.route.autocommit = (f & ServerStatus.Autocommit) !== 0;
    }
    this.current = null;
    if (conn === this.external) {
      this.external = null;
      this.releaseConn(conn);
      return this.finish();
    }
    const target = this.currentTarget;
    const mustHold = !this.multiplexing || this.mustStayOnPrimary();
    if (mustHold) {
      const held = target === RouteTarget.Primary ? this.heldPrimary : this.heldReplica;
      if (held !== conn) {
        if (held !== null) this.releaseConn(held);
        this.hold(target, conn);
      }
    } else {
      if (conn === this.heldPrimary) {
        this.heldPrimary = null;
        conn.link.socket.removeListener("close", this.onHeldClose);
      }
      this.keepSticky(conn, target);
    }
    this.finish();
  }

  /**
   * After a statement outside a transaction and pins: the connection is kept
   * for this session (one per pool) until its next statement to that backend,
   * STICKY_MS of idleness, or another session waiting for the pool; the last
   * one used is `sticky` (statements reading the previous one's state use it).
   */
  private keepSticky(conn: PooledConnection, target: RouteTarget): void {
    const pool = this.poolOf(conn);
    if (pool === null || pool.waiterCount > 0) {
      // others are waiting for this pool: the connection goes back at once
      if (this.sticky === conn) this.sticky = null;
      this.releaseConn(conn);
      return;
    }
    const prev = this.kept.get(pool);
    if (prev !== undefined && prev !== conn) this.dropKept(pool);
    this.kept.set(pool, conn);
    this.sticky = conn;
    this.stickyTarget = target;
    let holders = stickyHolders.get(pool);
    if (holders === undefined) stickyHolders.set(pool, (holders = new Set()));
    holders.add(this);
    if (this.stickyTimer === null) this.stickyTimer = setTimeout(this.onStickyTimer, STICKY_MS);
  }

  /** Connections kept for this session between statements, one per pool (see keepSticky). */
  private readonly kept = new Map<BackendPool, PooledConnection>();

  /** Every kept connection back to its pool (time is up, or the session moves elsewhere). */
  dropSticky(): void {
    for (const pool of [...this.kept.keys()]) this.dropKept(pool);
  }

  /** The connection kept for `pool` back to it. */
  dropKept(pool: BackendPool): void {
    const c = this.takeKept(pool);
    if (c !== null) this.releaseConn(c);
  }

  /** The connection kept for `pool`, no longer kept (the caller owns it); null when none. */
  private takeKept(pool: BackendPool): PooledConnection | null {
    const c = this.kept.get(pool);
    if (c === undefined) return null;
    this.kept.delete(pool);
    if (c === this.sticky) this.sticky = null;
    const holders = stickyHolders.get(pool);
    holders?.delete(this);
    if (holders !== undefined && holders.size === 0) stickyHolders.delete(pool);
    return c;
  }

  /** Before waiting on an exhausted pool: the connections other sessions keep of it go back. */
  private static reclaimSticky(pool: BackendPool): void {
    const holders = stickyHolders.get(pool);
    if (holders === undefined || holders.size === 0) return;
    for (const s of [...holders]) {
      if (!pool.exhausted) break;
      s.dropKept(pool);
    }
  }

  private readonly onStickyTimer = (): void => {
    this.stickyTimer = null;
    if (this.kept.size === 0 || this.closed) return;
    const idle = performance.now() - this.commandAt;
    if (this.busy || idle < STICKY_MS) {
      this.stickyTimer = setTimeout(this.onStickyTimer, Math.max(10, STICKY_MS - idle));
      return;
    }
    this.dropSticky();
  };

  /** Set while a command's tail (read-your-writes' GTID read) still runs after its response went out. */
  private holdFinish = false;

  private finish(): void {
    if (this.holdFinish) return;
    // a switchover ended the session's transaction during this command: its row locks must not
    // outlive the command on the old primary (they would stall its replication)
    if (this.switchoverEnd !== null && this.heldPrimary !== null) this.dropConn(this.heldPrimary);
    this.quotas.release();
    this.busy = false;
    if (this.queue.length > 0) setImmediate(() => this.next());
  }

  /** Idle between commands: ERR 1053 then close (drain timeout). */
  shutdown(): void {
    if (!this.busy) this.host.client().write(buildErr(toSqlError(new ServerShutdownError()), 0));
  }

  /** Releases every connection; idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.stickyTimer !== null) clearTimeout(this.stickyTimer);
    this.stickyTimer = null;
    const conn = this.current;
    this.current = null;
    this.endInflight(-1);
    if (conn !== null) {
      // a command under way: the connection's state is unknown
      this.dropConn(conn);
    }
    const dirty = this.pins.size > 0 || this.route.inTransaction || !this.route.autocommit || this.settings.size > 0;
    this.releaseHeld(dirty);
    this.quotas.release();
  }

  /**
   * A statement a quota did not admit at once: waits if it was queued; true
   * (the client got ERR 1226, or the session closed meanwhile) when it must not run.
   */
  private async quotaRefused(q: ErrPacket | Promise<ErrPacket | null>, listener: string, kind: K): Promise<boolean> {
    const refused = q instanceof Promise ? await q : q;
    if (this.closed) return true;
    if (refused === null) return false;
    metrics.statementFinished(listener, statementKindName(kind), "error", 0);
    this.replyErr(refused, 1);
    return true;
  }

  /** The client's drain listener (the FrontendSession attaches it). */
  get clientDrain(): () => void {
    return this.onClientDrain;
  }
}

/** A COM_QUERY between its phases (RoutedSession.q). */
interface QueryState {
  /** The statement as sent to the backend (a hook or rule may have rewritten it). */
  packet: Buffer;
  /** When it was read whole (performance.now() ms). */
  started: number;
  /** Longer than one packet: classified on its first 16 MiB, routed to the primary, no hook or rule. */
  large: boolean;
  /** The digest cache's key (Classification.skeleton), -1: none. */
  skeleton: number;
  kind: K;
  flags: number;
  /** Where the readQuery hook routes it, if it does. */
  hookRoute: RouteTarget | null;
  /** The query rule it matched. */
  rule: RuleAction | null;
  target: RouteTarget;
  /** decideRoute's reason. */
  reason: string;
  /** What its success leaves in the session (tracked settings, schema, pins). */
  after: (() => void) | null;
  /** The rule's result cache, when its response is to be recorded under `key`. */
  cache: ResultCache | null;
  key: string;
  /** The connection it runs on. */
  conn: PooledConnection | null;
}

/** Statements whose results are not cached even when a cache rule matches them (they depend on more than their text). */
const UNCACHEABLE =
  F.MultiStatement | F.ForUpdate | F.LockInShareMode | F.ForShare | F.SelectInto | F.UsesUserVariableAssignment | F.ReadsUserVariable | F.UsesLastInsertId | F.UsesFoundRows | F.UsesGetLock | F.ReadsDiagnostics;

/** What a read-only user may run: reads, session settings and transaction control. */
function readOnlyAllows(kind: K, flags: number): boolean {
  switch (kind) {
    case K.Select:
      return !writesFile(flags);
    case K.Show:
    case K.Explain:
    case K.Set:
    case K.Use:
    case K.Begin:
    case K.Commit:
    case K.Rollback:
    case K.Savepoint:
    case K.Deallocate:
    case K.Kill:
      return true;
    default:
      return false;
  }
}

/** SELECT … INTO OUTFILE/DUMPFILE (a file on the server) rather than INTO @variables. */
function writesFile(flags: number): boolean {
  return (flags & F.SelectInto) !== 0 && (flags & F.UsesUserVariableAssignment) === 0;
}

/** Digests the firewall logged while learning (once each, per worker). */
const learned = new Set<string>();
const MAX_LEARNED = 10_000;

/** Sessions keeping a connection of a pool for their next statement (see keepSticky). */
const stickyHolders = new Map<BackendPool, Set<RoutedSession>>();

/** Pins implied by a statement outside SET/USE: the session keeps its primary connection after it. */
function pinReasonOf(kind: K, flags: number): string | null {
  if ((flags & F.MultiStatement) !== 0) return "multi-statement";
  if ((flags & F.TemporaryTable) !== 0) return "temporary-table";
  if ((flags & F.UsesGetLock) !== 0) return "named-lock";
  if ((flags & F.UsesUserVariableAssignment) !== 0) return "user-variable";
  switch (kind) {
    case K.Prepare:
    case K.Execute:
    case K.Deallocate:
      return "sql-prepare";
    case K.Lock:
      return "lock-tables";
    case K.Handler:
      return "handler";
    case K.Xa:
      return "xa";
    default:
      return null;
  }
}

/** Where a borrowed connection comes from. */
/** A session's listeners on one backend connection's socket (see RoutedSession.attach). */
interface ConnListeners {
  readonly data: (chunk: Buffer) => void;
  readonly close: () => void;
}

interface ConnOrigin {
  pool: BackendPool;
  backend: BackendTarget;
  state: ClusterState;
}

class ReplaceConnection extends Error {}

class SessionStateError extends MgwError {
  readonly packet: ErrPacket;
  constructor(e: ErrPacket) {
    super("MGW_ERR_BACKEND_REJECTED", e.message);
    this.packet = e;
  }
}

class BackendLostMidCommand extends MgwError {
  constructor() {
    super("MGW_ERR_BACKEND_LOST", "Lost connection to the backend during the query; mysqlgw closed this session's connection to it (the statement may or may not have run; check before retrying)");
  }
}

/** The sqlcommenter traceparent of a COM_QUERY (classify found its offsets), or null. */
function traceparentOf(packet: Buffer, c: Classification): string | null {
  if (c.traceparentStart < 0 || c.traceparentEnd <= c.traceparentStart) return null;
  return decodeURIComponent(packet.toString("latin1", c.traceparentStart, c.traceparentEnd));
}

/** Statements after which read-your-writes records the session's GTID. */
function writes(kind: K): boolean {
  switch (kind) {
    case K.Insert:
    case K.Update:
    case K.Delete:
    case K.Replace:
    case K.Load:
    case K.Commit:
    case K.Create:
    case K.Alter:
    case K.Drop:
    case K.Truncate:
    case K.Rename:
    case K.Call:
      return true;
    default:
      return false;
  }
}

/** A GTID list as MariaDB writes it, keeping the server ids of `hint` where it names the domain. */
function gtidText(list: ReadonlyMap<number, bigint>, hint: string): string {
  const servers = new Map<number, string>();
  for (const g of hint.split(",")) {
    const [d, srv] = g.split("-");
    servers.set(Number(d), srv);
  }
  return [...list].map(([d, seq]) => `${d}-${servers.get(d) ?? "0"}-${seq}`).join(",");
}

/** The first column of the first row of a text-protocol result set in `bytes` (whole packets), or null. */
function firstValue(bytes: Buffer, deprecateEof: boolean): string | null {
  let p = 0;
  let index = 0;
  const rowIndex = deprecateEof ? 2 : 3; // column count, one definition, [EOF], row
  for (let guard = 0; guard < 8 && p + 4 <= bytes.length; guard++) {
    const len = bytes[p] | (bytes[p + 1] << 8) | (bytes[p + 2] << 16);
    const at = p + 4;
    if (index === 0 && bytes[at] !== 1) return null;
    if (index === rowIndex) {
      const b = bytes[at];
      if (b === 0xfb || b >= 0xfc) return null; // NULL, or too long for a scalar we ask for
      return bytes.toString("utf8", at + 1, at + 1 + b);
    }
    p = at + len;
    index++;
  }
  return null;
}

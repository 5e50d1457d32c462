import { Buffer } from "node:buffer";
import type pino from "pino";
import { BackendProtocolError, MgwError, PoolTimeoutError, ServerShutdownError } from "../errors";
import { framePayload } from "../protocol/codec";
import { COM_PING, COM_QUIT, COM_RESET_CONNECTION } from "../protocol/packets/commands";
import { BackendHandshake, type BackendLink } from "../session/backend-connection";
import type { BackendTarget } from "../session/config-snapshot";
import type { BackendTlsSettings } from "../session/tls";
import { runBackendCommand } from "./backend-command";
import { samePoolSettings, type PoolSettings } from "./pool-settings";
import { RingQueue } from "./ring-queue";

/**
 * Backend connection pools: one per worker, backend and backend login
 * (see PoolManager). A pooled connection is logged in once, by the gateway
 * (not on behalf of one client), and lent to sessions one at a time.
 *
 * Concurrency: everything runs on the worker's event loop; a connection is in
 * exactly one state at a time — idle (in the pool, socket paused, no 'data'
 * listener), lent (the borrower owns the socket until release/discard), busy
 * (the pool is checking or resetting it) or closed.
 */

/** What a pooled connection logs in with; the pool key is derived from all of it but the password. */
export interface PoolLogin {
  clusterName: string;
  target: BackendTarget;
  tls: BackendTlsSettings | null;
  user: string;
  password: string;
  /** Capabilities wanted (as a client's, already masked to what the gateway supports); intersected with the server's. */
  capabilities: number;
  mariadbCapabilities: number;
  characterSet: number;
  maxPacketSize: number;
  /** Bound on connect + login; also bounds a check (COM_PING) and a reset (COM_RESET_CONNECTION). */
  connectTimeoutMs: number;
  maxHandshakePacketSize: number;
  /**
   * Addition: a PROXY v2 header written first on every pooled connection.
   * Absent or null (normal): none — a pooled connection serves many clients,
   * so no client address applies, and MariaDB accepts a connection without a
   * header from a proxy_protocol_networks address (it uses the TCP peer:
   * checked by test/integration/backend-pool.test.ts).
   */
  proxyHeader?: Buffer | null;
}

/** The pool key of a login: cluster/backend name/host:port/user/capabilities/mariadbCapabilities/characterSet/tls mode. */
export function poolKey(l: PoolLogin): string {
  const e = encodeURIComponent;
  return [
    e(l.clusterName),
    e(l.target.name),
    `${e(l.target.host)}:${l.target.port}`,
    e(l.user),
    (l.capabilities >>> 0).toString(16),
    (l.mariadbCapabilities >>> 0).toString(16),
    String(l.characterSet),
    l.tls === null ? "plain" : l.tls.mode,
  ].join("/");
}

/** Connect attributes of every pooled connection (plus _mysqlgw_client_addr=pool, set by BackendHandshake). */
const POOL_ATTRIBUTES: ReadonlyMap<string, string> = new Map([["_mysqlgw_pool", "1"]]);

/** A COM_QUIT, framed once. */
const QUIT_FRAME = framePayload(COM_QUIT, 0);

/** setTimeout's longest delay (longer ones fire at once). */
const MAX_TIMER_MS = 2_147_483_647;

/** After COM_QUIT, how long we wait for the server to close before destroying the socket. */
const QUIT_GRACE_MS = 1000;

/** @internal */
export const enum ConnState {
  Idle,
  Lent,
  Busy,
  Closed,
}

/** One pooled backend connection. Created by the pool only. */
export class PooledConnection {
  readonly id: number;
  readonly link: BackendLink;
  /** Backend connection id, from the greeting (what KILL and PROCESSLIST show). */
  readonly threadId: number;
  readonly createdAt: number;
  /** When it was last released (or opened); the check-on-borrow and idle timeout count from here. */
  lastUsedAt: number;
  /**
   * Current database as far as the session layer knows (null: none or
   * unknown); set by the session after COM_INIT_DB / USE. Pooled connections
   * log in without one. COM_RESET_CONNECTION keeps it on MariaDB, so a reset
   * leaves this as it is.
   */
  schema: string | null;
  /** Session variables the session layer SET on it: name → value text; cleared on reset. */
  readonly settings: Map<string, string>;
  /** Backend prepared statements owned by the session layer (key: SQL text); cleared on reset. */
  readonly statements: Map<string, unknown>;
  /** Session state a client left on it: the pool resets it (COM_RESET_CONNECTION) before lending it again. */
  dirty: boolean;
  /** @internal */
  state: ConnState;

  /** @internal */
  constructor(id: number, link: BackendLink, now: number) {
    this.id = id;
    this.link = link;
    this.threadId = link.greeting.connectionId;
    this.createdAt = now;
    this.lastUsedAt = now;
    this.schema = null;
    this.settings = new Map();
    this.statements = new Map();
    this.dirty = false;
    this.state = ConnState.Lent;
  }
}

export interface PoolStats {
  /** Connections open or being opened. */
  total: number;
  idle: number;
  /** Lent, or being checked / reset by the pool. */
  inUse: number;
  /** acquire() calls waiting for a connection. */
  waiting: number;
  /** Since the pool was made: logins that succeeded. */
  created: number;
  /** Since the pool was made: connections closed (lifetime, idle timeout, discard, failed check or reset, close). */
  closed: number;
  /** acquire() calls that failed with PoolTimeoutError. */
  timeouts: number;
  /** Idle connections found broken by the check on borrow. */
  checkFailures: number;
  /** COM_RESET_CONNECTIONs that succeeded. */
  resets: number;
}

export interface BackendPoolOptions {
  /** Clock in ms (tests); default Date.now. Timers still run on real time. */
  now?: () => number;
}

interface Waiter {
  resolve(c: PooledConnection): void;
  reject(err: MgwError): void;
  timer: NodeJS.Timeout | null;
  settled: boolean;
}

/**
 * The connections of one worker to one backend as one backend user, with one
 * set of capabilities, collation and TLS mode (see poolKey).
 *
 * - acquire(): an idle connection first, most recently released first (LIFO,
 *   so the rest can time out); one idle for longer than checkAfterIdleMs is
 *   checked with COM_PING first and discarded if the check fails (the next is
 *   tried). Else a new login if fewer than maxConnections are open or opening.
 *   Else (or when a released connection is being reset, which is soon idle)
 *   the caller waits, first come first served, up to acquireTimeoutMs:
 *   then PoolTimeoutError (ERR 1040). A failed login rejects with the
 *   BackendHandshake error (BackendConnectError, BackendRejectedError, …).
 * - release(): the borrower gives the connection back at a packet boundary,
 *   its socket paused with no 'data' listener (else it is closed: its state
 *   is unknown). A dirty connection is reset with COM_RESET_CONNECTION first
 *   (a failed reset closes it); one older than maxLifetimeMs, or beyond a
 *   lowered maxConnections, is closed; otherwise the longest waiter gets it
 *   directly, or it goes idle.
 * - discard(): the borrower found it broken or left it in an unknown state
 *   (mid-result, after an error): it is destroyed and its slot freed (a
 *   waiter gets a new login).
 *
 * Every connection is in one state at a time; release and discard are
 * accepted once per lending (a second call is ignored and logged).
 */
export class BackendPool {
  readonly key: string;
  private login: PoolLogin;
  private settings: PoolSettings;
  private readonly logger: pino.Logger;
  private readonly now: () => number;
  /** Idle connections, least recently released first (acquire pops the end). */
  private readonly idle: PooledConnection[];
  /** Every open connection (idle, lent, busy). */
  private readonly live: Set<PooledConnection>;
  /** Logins in flight. */
  private readonly logins: Set<BackendHandshake>;
  private readonly waiters: RingQueue<Waiter>;
  /** Waiters not yet settled (the queue may still hold settled ones). */
  private waiting: number;
  /** Released dirty connections being reset (each soon idle or closed). */
  private resetting: number;
  private isClosed: boolean;
  private nextId: number;
  private created: number;
  private closedCount: number;
  private timeouts: number;
  private checkFailures: number;
  private resets: number;
  /** Last warm-up login error logged (each distinct one is logged once). */
  private lastWarmupError: string;

  constructor(login: PoolLogin, settings: PoolSettings, logger: pino.Logger, options: BackendPoolOptions = {}) {
    this.key = poolKey(login);
    this.login = login;
    this.settings = { ...settings };
    this.logger = logger;
    this.now = options.now ?? Date.now;
    this.idle = [];
    this.live = new Set();
    this.logins = new Set();
    this.waiters = new RingQueue();
    this.waiting = 0;
    this.resetting = 0;
    this.isClosed = false;
    this.nextId = 1;
    this.created = 0;
    this.closedCount = 0;
    this.timeouts = 0;
    this.checkFailures = 0;
    this.resets = 0;
    this.lastWarmupError = "";
  }

  /** True after close(). */
  get closed(): boolean {
    return this.isClosed;
  }

  /** Who this pool's connections are: cluster, backend and backend user (for metrics; never the password). */
  get identity(): { cluster: string; backend: string; user: string } {
    return { cluster: this.login.clusterName, backend: this.login.target.name, user: this.login.user };
  }

  /** acquire() calls waiting now. */
  get waiterCount(): number {
    return this.waiting;
  }

  /** An acquire() now would have to wait: nothing idle and no room for another connection. */
  get exhausted(): boolean {
    return this.idle.length === 0 && this.live.size + this.logins.size >= this.settings.maxConnections;
  }

  /** The settings in force (a copy). */
  currentSettings(): PoolSettings {
    return { ...this.settings };
  }

  /**
   * A connection for the caller's exclusive use until release() or discard().
   * Waits at most `timeoutMs` (default: the pool's acquireTimeoutMs) when all
   * connections are in use; a check or a login in progress is bounded by the
   * login's connectTimeoutMs instead.
   */
  async acquire(timeoutMs?: number): Promise<PooledConnection> {
    const s = this.settings;
    for (let guard = 0; guard <= s.maxConnections; guard++) {
      if (this.isClosed) throw new ServerShutdownError();
      const c = this.idle.pop();
      if (c === undefined) break;
      const now = this.now();
      if (now - c.createdAt >= s.maxLifetimeMs) {
        this.retire(c);
        continue;
      }
      if (now - c.lastUsedAt > s.checkAfterIdleMs) {
        c.state = ConnState.Busy;
        if (!(await this.check(c))) continue;
        if (this.isClosed) {
          this.retire(c);
          throw new ServerShutdownError();
        }
      }
      c.state = ConnState.Lent;
      return c;
    }
    if (this.isClosed) throw new ServerShutdownError();
    // a connection being reset is idle in a moment (a reset is far cheaper than a login): wait for it
    if (this.resetting > this.waiting) return this.enqueue(timeoutMs ?? s.acquireTimeoutMs);
    if (this.live.size + this.logins.size < s.maxConnections) {
      const c = await this.open();
      c.state = ConnState.Lent;
      return c;
    }
    return this.enqueue(timeoutMs ?? s.acquireTimeoutMs);
  }

  /**
   * Gives a lent connection back. Its socket must be paused with no 'data'
   * listener, at a packet boundary (no command in flight). Set `dirty` first
   * if the borrower left session state on it.
   */
  release(conn: PooledConnection): void {
    if (conn.state !== ConnState.Lent || !this.live.has(conn)) {
      this.logger.warn({ pool: this.key, conn: conn.id }, "backend pool: release of a connection that is not lent (ignored)");
      return;
    }
    const now = this.now();
    conn.lastUsedAt = now;
    const s = conn.link.socket;
    if (s.destroyed || s.listenerCount("data") > 0 || s.readableLength > 0) {
      // broken, still read by someone, or released with unread bytes (mid-response): unknown state
      if (!s.destroyed) this.logger.warn({ pool: this.key, thread: conn.threadId }, "backend pool: connection released with a data listener or unread bytes; closing it");
      this.destroy(conn);
      this.fillWaiters();
      return;
    }
    if (this.isClosed || now - conn.createdAt >= this.settings.maxLifetimeMs || this.live.size + this.logins.size > this.settings.maxConnections) {
      // closing, too old, or over a lowered maxConnections
      this.retire(conn);
      this.fillWaiters();
      return;
    }
    if (!conn.dirty) {
      this.hand(conn);
      return;
    }
    conn.state = ConnState.Busy;
    this.resetting++;
    void this.reset(conn).then((ok) => {
      this.resetting--;
      if (!ok) return this.fillWaiters();
      if (this.isClosed) return this.retire(conn);
      this.hand(conn);
    });
  }

  /** Closes a lent connection that is broken or in an unknown state and frees its slot. */
  discard(conn: PooledConnection): void {
    if (conn.state !== ConnState.Lent || !this.live.has(conn)) {
      if (conn.state !== ConnState.Closed) this.logger.warn({ pool: this.key, conn: conn.id }, "backend pool: discard of a connection that is not lent (ignored)");
      return;
    }
    this.destroy(conn);
    this.fillWaiters();
  }

  /** New login (e.g. a rotated password) for connections opened from now on; open ones stay. Same key expected. */
  updateLogin(login: PoolLogin): void {
    this.login = login;
  }

  /** New limits, effective at once for new decisions (nothing open is closed here: sweep() and release() apply them). */
  updateSettings(settings: PoolSettings): void {
    if (samePoolSettings(this.settings, settings)) return;
    this.settings = { ...settings };
    this.fillWaiters();
  }

  stats(): PoolStats {
    return {
      total: this.live.size + this.logins.size,
      idle: this.idle.length,
      inUse: this.live.size - this.idle.length,
      waiting: this.waiting,
      created: this.created,
      closed: this.closedCount,
      timeouts: this.timeouts,
      checkFailures: this.checkFailures,
      resets: this.resets,
    };
  }

  /**
   * Housekeeping, called periodically: closes idle connections past their
   * max lifetime, those unused for idleTimeoutMs while more than minIdle are
   * idle, and those beyond a lowered maxConnections (least recently used
   * first); then opens connections until minIdle are idle (or maxConnections
   * are open).
   */
  sweep(now: number = this.now()): void {
    if (this.isClosed) return;
    const s = this.settings;
    for (let i = 0; i < this.idle.length; ) {
      const c = this.idle[i];
      if (
        now - c.createdAt >= s.maxLifetimeMs ||
        (now - c.lastUsedAt >= s.idleTimeoutMs && this.idle.length > s.minIdle) ||
        this.live.size + this.logins.size > s.maxConnections
      ) {
        this.idle.splice(i, 1);
        this.retire(c);
      } else {
        i++;
      }
    }
    while (this.idle.length + this.logins.size < s.minIdle && this.live.size + this.logins.size < s.maxConnections) {
      this.open().then(
        (c) => {
          this.lastWarmupError = "";
          this.hand(c);
        },
        (err: Error) => {
          if (err.message === this.lastWarmupError || this.isClosed) return;
          this.lastWarmupError = err.message;
          this.logger.warn({ pool: this.key, err: err.message }, "backend pool: opening an idle connection (minIdle) failed; retried at the next sweep");
        },
      );
    }
  }

  /** Closes idle connections and logins in flight, rejects waiters; lent connections are closed when released. */
  close(): void {
    if (this.isClosed) return;
    this.isClosed = true;
    this.waiters.drain((w) => this.settle(w, null, new ServerShutdownError()));
    for (const hs of this.logins) hs.abort();
    for (const c of this.idle.splice(0)) this.retire(c);
  }

  // --- internals ---

  private describe(): string {
    const t = this.login.target;
    return `backend '${t.name}' (${t.host}:${t.port}) of cluster '${this.login.clusterName}'`;
  }

  /** Logs in one new connection (counted in `logins` until it resolves). */
  private open(): Promise<PooledConnection> {
    const l = this.login;
    const hs = new BackendHandshake(l.target, {
      user: l.user,
      password: l.password,
      clientCapabilities: l.capabilities,
      mariadbCapabilities: l.mariadbCapabilities,
      maxPacketSize: l.maxPacketSize,
      characterSet: l.characterSet,
      database: null,
      connectAttributes: POOL_ATTRIBUTES,
      clientAddress: "pool",
      timeoutMs: l.connectTimeoutMs,
      maxPacketSize4Handshake: l.maxHandshakePacketSize,
      tls: l.tls,
      proxyHeader: l.proxyHeader ?? null,
    });
    this.logins.add(hs);
    return hs.result.then(
      (link) => {
        this.logins.delete(hs);
        if (hs.takeLeftover() !== null) {
          link.socket.destroy();
          throw new BackendProtocolError(`${this.describe()}: the server sent data after its login OK; the connection is closed`);
        }
        if (this.isClosed) {
          link.socket.destroy();
          throw new ServerShutdownError();
        }
        const c = new PooledConnection(this.nextId++, link, this.now());
        this.live.add(c);
        this.created++;
        return c;
      },
      (err: unknown) => {
        this.logins.delete(hs);
        throw err;
      },
    );
  }

  /** COM_PING; false (and the connection destroyed) when it fails. */
  private async check(c: PooledConnection): Promise<boolean> {
    try {
      const o = await runBackendCommand(c.link.socket, COM_PING, this.login.connectTimeoutMs);
      if (o.ok && o.leftover === null) return true;
      this.logger.info({ pool: this.key, thread: c.threadId, errno: o.errno, err: o.message }, "backend pool: check (COM_PING) of an idle connection failed; closing it");
    } catch (err) {
      this.logger.info({ pool: this.key, thread: c.threadId, err: (err as Error).message }, "backend pool: check (COM_PING) of an idle connection failed; closing it");
    }
    this.checkFailures++;
    this.destroy(c);
    return false;
  }

  /** COM_RESET_CONNECTION; false (and the connection destroyed) when it fails. */
  private async reset(c: PooledConnection): Promise<boolean> {
    try {
      const o = await runBackendCommand(c.link.socket, COM_RESET_CONNECTION, this.login.connectTimeoutMs);
      if (o.ok && o.leftover === null) {
        c.settings.clear();
        c.statements.clear();
        c.dirty = false;
        this.resets++;
        return true;
      }
      this.logger.warn({ pool: this.key, thread: c.threadId, errno: o.errno, err: o.message }, "backend pool: COM_RESET_CONNECTION failed; closing the connection");
    } catch (err) {
      this.logger.warn({ pool: this.key, thread: c.threadId, err: (err as Error).message }, "backend pool: COM_RESET_CONNECTION failed; closing the connection");
    }
    this.destroy(c);
    return false;
  }

  /** A clean connection: to the longest waiter, else idle. */
  private hand(c: PooledConnection): void {
    const w = this.nextWaiter();
    if (w !== null) {
      c.state = ConnState.Lent;
      c.lastUsedAt = this.now();
      this.settle(w, c, null);
      return;
    }
    c.state = ConnState.Idle;
    this.idle.push(c);
  }

  private enqueue(timeoutMs: number): Promise<PooledConnection> {
    return new Promise<PooledConnection>((resolve, reject) => {
      const w: Waiter = { resolve, reject, timer: null, settled: false };
      w.timer = setTimeout(() => {
        if (w.settled) return;
        this.timeouts++;
        const t = this.login.target;
        this.settle(w, null, new PoolTimeoutError(`backend '${t.name}' (${t.host}:${t.port})`, this.login.user, this.settings.maxConnections, timeoutMs));
      }, Math.min(Math.max(timeoutMs, 0), MAX_TIMER_MS));
      this.waiters.push(w);
      this.waiting++;
    });
  }

  private nextWaiter(): Waiter | null {
    for (let w = this.waiters.shift(); w !== undefined; w = this.waiters.shift()) {
      if (!w.settled) return w;
    }
    return null;
  }

  private settle(w: Waiter, c: PooledConnection | null, err: MgwError | null): void {
    if (w.settled) return;
    w.settled = true;
    this.waiting--;
    if (w.timer !== null) clearTimeout(w.timer);
    if (c !== null) w.resolve(c);
    else w.reject(err as MgwError);
  }

  /** Opens connections for waiters while slots are free (one login per waiter not yet served by one). */
  private fillWaiters(): void {
    while (!this.isClosed && this.waiting > this.logins.size && this.live.size + this.logins.size < this.settings.maxConnections) {
      this.open().then(
        (c) => this.hand(c),
        (err: MgwError) => {
          const w = this.nextWaiter();
          if (w !== null) this.settle(w, null, err);
        },
      );
    }
  }

  /** Closes politely (COM_QUIT) a connection nobody uses. */
  private retire(c: PooledConnection): void {
    if (!this.forget(c)) return;
    const s = c.link.socket;
    if (s.destroyed) return;
    const t = setTimeout(() => s.destroy(), QUIT_GRACE_MS);
    t.unref();
    s.once("close", () => clearTimeout(t));
    s.end(QUIT_FRAME);
    s.resume(); // read (and drop) until the server's close
  }

  /** Closes a connection at once. */
  private destroy(c: PooledConnection): void {
    if (this.forget(c)) c.link.socket.destroy();
  }

  private forget(c: PooledConnection): boolean {
    if (c.state === ConnState.Closed) return false;
    if (c.state === ConnState.Idle) {
      const i = this.idle.indexOf(c);
      if (i >= 0) this.idle.splice(i, 1);
    }
    c.state = ConnState.Closed;
    this.live.delete(c);
    this.closedCount++;
    return true;
  }
}

/**
 * The pools of one worker, by poolKey. Pools live as long as the worker (or
 * until closePool); a new config version reaches a pool through pool(),
 * which updates its settings and login in place.
 */
export class PoolManager {
  private readonly logger: pino.Logger;
  private readonly pools: Map<string, BackendPool>;
  private timer: NodeJS.Timeout | null;

  constructor(logger: pino.Logger) {
    this.logger = logger;
    this.pools = new Map();
    this.timer = null;
  }

  /** The pool for `login` (made on first use); its settings and login are updated when they changed. */
  pool(login: PoolLogin, settings: PoolSettings): BackendPool {
    const key = poolKey(login);
    const p = this.pools.get(key);
    if (p !== undefined && !p.closed) {
      p.updateSettings(settings);
      p.updateLogin(login);
      return p;
    }
    const fresh = new BackendPool(login, settings, this.logger);
    this.pools.set(key, fresh);
    return fresh;
  }

  forEach(fn: (key: string, pool: BackendPool) => void): void {
    for (const [k, p] of this.pools) fn(k, p);
  }

  /** Closes and forgets one pool (its cluster or backend left the configuration). */
  closePool(key: string): void {
    const p = this.pools.get(key);
    if (p === undefined) return;
    this.pools.delete(key);
    p.close();
  }

  /** Sweeps every pool each `intervalMs` (default 1 s); the timer does not keep the process alive. */
  startSweeping(intervalMs = 1000): void {
    if (this.timer !== null) return;
    this.timer = setInterval(() => {
      const now = Date.now();
      for (const p of this.pools.values()) p.sweep(now);
    }, intervalMs);
    this.timer.unref();
  }

  close(): void {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
    for (const p of this.pools.values()) p.close();
    this.pools.clear();
  }
}

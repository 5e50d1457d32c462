import { Buffer } from "node:buffer";
import type { Logger } from "pino";
import { PoolTimeoutError } from "../errors";
import { Capability, Command, ServerStatus } from "../protocol/constants";
import { buildInitDb } from "../protocol/packets/commands";
import { ResponseShape, ResponseTracker } from "../protocol/response-tracker";
import { runBackendCommand } from "../pool/backend-command";
import type { BackendPool, PooledConnection, PoolLogin, PoolManager } from "../pool/backend-pool";
import type { PoolSettings } from "../pool/pool-settings";
import { classify } from "../routing/classify";
import { createClassification, StatementFlags as F, StatementKind as K } from "../routing/statement-kind";
import type { BackendTarget, ClusterSnapshot } from "./config-snapshot";

/**
 * The query rules' `mirror` action: a statement the client sent is also run
 * on another cluster (a shadow, a new version under test), its result read
 * and thrown away. One Mirror per worker, shared by every session.
 *
 * Guarantees:
 * - the client never waits for it: send() copies the packet and returns (a
 *   few µs); everything else happens later on the event loop, and nothing the
 *   mirror does can fail, delay or change the client's statement;
 * - bounded: at most `maxInFlight` mirrored statements under way per worker,
 *   each bounded by `timeoutMs` from send() to the end of its response (then
 *   its connection is discarded); a packet over `maxPacketBytes`, a full
 *   in-flight budget or a pool with no free connection (none idle and
 *   maxConnections open, or sessions already waiting; a wait for one is
 *   bounded by `acquireTimeoutMs`) drops the statement — counted in `dropped`, never queued;
 * - never throws (send() included); failures (no login, lost connection,
 *   timeout, a response it cannot read) are counted in `failed` and logged at
 *   most once per `logIntervalMs`;
 * - it leaves no session state behind on the shared pool: a connection is
 *   marked dirty (COM_RESET_CONNECTION before its next use) unless the
 *   statement is one that cannot change session state (a plain SELECT,
 *   INSERT, UPDATE, DELETE, REPLACE, SHOW, EXPLAIN without user variables,
 *   named locks, temporary tables, several statements) and the server's final
 *   status shows no open transaction.
 *
 * Not guaranteed: order between mirrored statements (two sent back to back
 * may run on two connections in either order), that a mirrored statement runs
 * at all (drops), or the session's state on the mirror (settings, user
 * variables, transactions are not carried; the schema is).
 */

export interface MirrorOptions {
  /** Mirrored statements under way at once per worker; more are dropped. */
  maxInFlight: number;
  /** Bound on one mirrored statement, from send() to the end of its response (acquire, COM_INIT_DB and the statement). */
  timeoutMs: number;
  /** Longest wait for a pooled connection when all are lent (then dropped). Addition to the interface. */
  acquireTimeoutMs: number;
  /** Larger client packets are not mirrored (dropped): the copy would cost the client's path. Addition. */
  maxPacketBytes: number;
  /** At most one warning per this interval (with the counters). Addition. */
  logIntervalMs: number;
}

export const DEFAULT_MIRROR_OPTIONS: Readonly<MirrorOptions> = Object.freeze({
  maxInFlight: 64,
  timeoutMs: 5000,
  acquireTimeoutMs: 50,
  maxPacketBytes: 4 * 1024 * 1024,
  logIntervalMs: 10_000,
});

export interface MirrorStats {
  /** Statements written to a mirror backend. */
  sent: number;
  /** Statements not mirrored: over maxInFlight, over maxPacketBytes, no free pooled connection. */
  dropped: number;
  /** Mirrors that went wrong after they were accepted: login failed, connection lost, timeout, unreadable response, COM_INIT_DB refused. */
  failed: number;
  /** Accepted and not yet finished. */
  inFlight: number;
  /** Addition: sent and answered in full (the answer read and discarded), OK or ERR. */
  completed: number;
  /** Addition: of those, answered with an ERR packet (the statement failed on the mirror; not a mirror failure). */
  errors: number;
}

/** Why a mirrored statement failed (for the log). */
type Failure = string;

/** Kinds that cannot change session state by themselves (flags are checked too). */
function statelessKind(kind: K): boolean {
  switch (kind) {
    case K.Select:
    case K.Insert:
    case K.Update:
    case K.Delete:
    case K.Replace:
    case K.Show:
    case K.Explain:
      return true;
    default:
      return false;
  }
}

/** Flags of statements that leave state on the connection (or whose later statements we cannot see). */
const STATEFUL_FLAGS =
  F.UsesUserVariableAssignment | F.UsesGetLock | F.TemporaryTable | F.SetAutocommit | F.SetTransaction | F.SetNames | F.MultiStatement | F.SelectInto;

/**
 * The backend a cluster's mirrored statements go to: its primary (the
 * monitor's view, else the policy's expectedRole), else any usable backend
 * (per the cluster's load balancing); null when none is usable (the caller
 * drops the mirror).
 */
export function mirrorTarget(cluster: ClusterSnapshot, now = Date.now()): BackendTarget | null {
  const state = cluster.runtime.state;
  return state.primary(now) ?? state.pickAny(now);
}

/** Whether to mirror one matching statement under a rule's `ratio` (0..1; the compiled rule already turned 0 into 1). Addition. */
export function mirrorSampled(ratio: number, random: () => number = Math.random): boolean {
  return ratio >= 1 || (ratio > 0 && random() < ratio);
}

/**
 * The pool login for mirroring to `target` of `cluster`, from the login the
 * session's own pool uses (same backend user, password, capabilities and
 * character set; the mirror cluster's TLS). Addition to the interface.
 */
export function mirrorLogin(session: PoolLogin, cluster: ClusterSnapshot, target: BackendTarget): PoolLogin {
  return { ...session, clusterName: cluster.name, target, tls: cluster.tls, proxyHeader: null };
}

export class Mirror {
  private readonly pools: PoolManager;
  private readonly logger: Logger;
  private readonly options: MirrorOptions;
  private sent = 0;
  private dropped = 0;
  private failed = 0;
  private inFlight = 0;
  private completed = 0;
  private errors = 0;
  private closed = false;
  private lastLogAt = -Infinity;
  /** Failures since the last warning. */
  private unlogged = 0;
  private readonly cls = createClassification();

  constructor(pools: PoolManager, logger: Logger, options: Partial<MirrorOptions> = {}) {
    this.pools = pools;
    this.logger = logger;
    this.options = { ...DEFAULT_MIRROR_OPTIONS, ...options };
  }

  /**
   * Mirrors one COM_QUERY: `packet` is the packet as the client sent it
   * (header included; copied here, so the caller may reuse it at once),
   * `login`/`settings` the mirror cluster's pool (see mirrorTarget,
   * mirrorLogin), `schema` the client session's current schema (the mirror
   * connection is brought to it; null: left as it is). The 5th argument
   * (the client's CLIENT_DEPRECATE_EOF) is accepted for the interface but not
   * needed: the response is read by the mirror connection's own negotiated
   * CLIENT_DEPRECATE_EOF, which is what its server really uses.
   * Returns at once; never throws.
   */
  send(login: PoolLogin, settings: PoolSettings, packet: Buffer, schema: string | null, _deprecateEof: boolean): void {
    try {
      const o = this.options;
      if (this.closed || this.inFlight >= o.maxInFlight || packet.length > o.maxPacketBytes || packet.length < 5) {
        this.dropped++;
        return;
      }
      const pool = this.pools.pool(login, settings);
      if (pool.exhausted || pool.waiterCount > 0) {
        // nothing free and nothing to open, or others already wait: a mirror never queues behind the cluster's own traffic
        this.dropped++;
        return;
      }
      const copy = Buffer.allocUnsafe(packet.length);
      packet.copy(copy);
      copy[3] = 0; // a command starts at sequence id 0
      this.inFlight++;
      void this.run(pool, copy, schema);
    } catch (err) {
      this.fail(`could not start: ${(err as Error).message}`);
    }
  }

  stats(): MirrorStats {
    return { sent: this.sent, dropped: this.dropped, failed: this.failed, inFlight: this.inFlight, completed: this.completed, errors: this.errors };
  }

  /** From now on every send() is dropped (worker shutdown); statements under way finish or time out. */
  close(): void {
    this.closed = true;
  }

  // ---- one mirrored statement ----------------------------------------------

  private async run(pool: BackendPool, packet: Buffer, schema: string | null): Promise<void> {
    const o = this.options;
    const deadline = Date.now() + o.timeoutMs;
    let conn: PooledConnection | null = null;
    try {
      try {
        conn = await pool.acquire(Math.min(o.acquireTimeoutMs, o.timeoutMs));
      } catch (err) {
        if (err instanceof PoolTimeoutError) this.dropped++;
        else this.fail(`no connection to the mirror: ${(err as Error).message}`);
        return;
      }
      if (Date.now() >= deadline) {
        // the login took the whole budget: the connection is fine, the statement is late
        pool.release(conn);
        this.fail(`no connection within ${o.timeoutMs} ms`);
        return;
      }
      const sock = conn.link.socket;
      if (schema !== null && conn.schema !== schema) {
        const r = await runBackendCommand(sock, buildInitDb(schema), Math.max(deadline - Date.now(), 1));
        if (!r.ok || r.leftover !== null) {
          if (r.leftover !== null) pool.discard(conn);
          else pool.release(conn);
          this.fail(`COM_INIT_DB ${schema} refused by the mirror: ${r.errno} ${r.message}`);
          return;
        }
        conn.schema = schema;
      }
      // the mirror connection's own negotiation decides the format (its server may not grant CLIENT_DEPRECATE_EOF)
      const eof = (conn.link.capabilities & Capability.DeprecateEof) !== 0;
      this.sent++;
      const outcome = await exchange(conn, packet, eof, Math.max(deadline - Date.now(), 1));
      if (typeof outcome === "string") {
        pool.discard(conn);
        this.fail(outcome);
        return;
      }
      this.completed++;
      if (outcome.error) this.errors++;
      if (outcome.inTransaction || !this.stateless(packet)) conn.dirty = true;
      pool.release(conn);
    } catch (err) {
      // runBackendCommand rejects with the socket destroyed; anything else is ours
      if (conn !== null) pool.discard(conn);
      this.fail((err as Error).message);
    } finally {
      this.inFlight--;
    }
  }

  /** The statement cannot have left session state on the connection. */
  private stateless(packet: Buffer): boolean {
    if (packet[4] !== Command.Query) return false;
    const c = classify(packet, 5, packet.length, this.cls);
    return statelessKind(c.kind) && (c.flags & STATEFUL_FLAGS) === 0;
  }

  private fail(why: Failure): void {
    this.failed++;
    this.unlogged++;
    const now = Date.now();
    if (now - this.lastLogAt < this.options.logIntervalMs) return;
    this.lastLogAt = now;
    this.logger.warn(
      { err: why, failedSinceLastWarning: this.unlogged, ...this.stats() },
      "query mirror: a mirrored statement failed (the client is not affected); check the mirror cluster",
    );
    this.unlogged = 0;
  }
}

interface Answer {
  /** The (last) result was an ERR packet. */
  error: boolean;
  /** The server's final status says a transaction is open (or autocommit is off). */
  inTransaction: boolean;
}

/**
 * Writes `packet` on a lent connection and reads its whole response
 * (ResponseShape.ResultSets), discarding it; resolves with what the response
 * said, or a string saying why the connection must be discarded (lost, timed
 * out, a LOCAL INFILE request, bytes after the response). Never rejects.
 * Leaves the socket paused without our listeners.
 */
function exchange(conn: PooledConnection, packet: Buffer, deprecateEof: boolean, timeoutMs: number): Promise<Answer | Failure> {
  const s = conn.link.socket;
  const tracker = new ResponseTracker(deprecateEof);
  tracker.begin(ResponseShape.ResultSets);
  return new Promise<Answer | Failure>((resolve) => {
    let settled = false;
    const finish = (r: Answer | Failure): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      s.removeListener("data", onData);
      s.removeListener("close", onClose);
      s.removeListener("error", onError);
      s.pause();
      resolve(r);
    };
    const onData = (chunk: Buffer): void => {
      const end = tracker.push(chunk);
      if (end < 0) return;
      if (tracker.localInfile) return finish("the mirror asked for a LOCAL INFILE upload (not mirrored)");
      if (end < chunk.length) return finish(`the mirror sent ${chunk.length - end} bytes after its response`);
      // an ERR carries no status: the statement failed, so it opened nothing (the connection was lent clean, autocommit on)
      const f = tracker.statusFlags;
      const inTransaction = tracker.statusKnown && ((f & ServerStatus.InTrans) !== 0 || (f & ServerStatus.Autocommit) === 0);
      finish({ error: tracker.error, inTransaction });
    };
    const onClose = (): void => finish("the mirror connection closed before the response ended");
    const onError = (err: NodeJS.ErrnoException): void => finish(`the mirror connection failed: ${err.code ?? err.message}`);
    const timer = setTimeout(() => finish(`no complete response within the mirror's timeout (${timeoutMs} ms)`), timeoutMs);
    if (s.destroyed || !s.writable) {
      finish("the mirror connection is closed");
      return;
    }
    s.on("data", onData);
    s.on("close", onClose);
    s.on("error", onError);
    s.write(packet);
    s.resume();
  });
}

import { fromJsonString } from "@bufbuild/protobuf";
import { timestampMs } from "@bufbuild/protobuf/wkt";
import { SwitchoverHold_Phase, SwitchoverHoldSchema } from "@mysqlgw/proto";
import type { Logger } from "pino";
import { SwitchoverHoldTimeoutError, SwitchoverTransactionEndedError, toSqlError, type SqlError } from "../errors";
import { BackendRole, type ClusterState } from "../routing/backend-state";

/**
 * A worker's side of a planned switchover (docs/monitor.md, "Planned
 * switchover"). The control plane running it writes the cluster's
 * SwitchoverHold; the supervisor relays it here (switchover-relay.ts). While
 * a hold for cluster C exists:
 *
 * - routed sessions of C wait, before borrowing a connection to the primary
 *   when they do not already hold one for a transaction (or pins), in
 *   `gate(C)`: new writes and new transactions are held, reads to replicas
 *   and statements of open transactions go on;
 * - at drain_until, sessions still holding an open transaction (or pinned
 *   state) on the old primary are ended: the backend connection is closed
 *   (the server rolls back) and the client gets ERR 1927 at its next command,
 *   then the connection closes;
 * - PHASE_RELEASE: held statements go on once this worker's ClusterState
 *   shows the new primary as PRIMARY (the monitor's health or the epoch) and
 *   the old one not; PHASE_ABORT or the key deleted during PHASE_HOLD: they go
 *   on at once (to whichever primary the state names); hold_until passed:
 *   they fail with ERR 1205 (not run; retry);
 * - once released and routing to the new primary: pass-through sessions of
 *   READ_WRITE listeners still on the old primary (read_only now) are closed
 *   between commands, so that their clients reconnect to the new primary.
 *
 * The worker reports per cluster (open transactions, held statements,
 * transactions ended) to the supervisor, which writes one SwitchoverAck per
 * data plane. Single-threaded; nothing here runs unless a hold exists:
 * routed sessions check `switchoverHolds.size` first.
 */

/** A client session as the switchover sees it (implemented by FrontendSession). */
export interface HoldableFrontend {
  /** Its routed command phase; null for a pass-through session (or before the login finished). */
  routedSession(): HoldableSession | null;
  /** A pass-through session of a READ_WRITE listener: its cluster and backend; null otherwise. */
  writableBackend(): { cluster: string; backend: string } | null;
  /** Closes it if it is between commands (as wait_timeout: no packet); true when it did. */
  closeIfIdle(reason: string): boolean;
}

/** What a routed session exposes to the switchover (implemented by RoutedSession). */
export interface HoldableSession {
  /** True while it holds an open transaction (or pinned state) on `backend` of `cluster`. */
  switchoverOpen(cluster: string, backend: string): boolean;
  /** Ends that transaction: the backend connection goes now (or after the command under way), `err` answers the next command, then the connection closes. */
  endForSwitchover(err: SqlError): void;
}

/** One worker's report of one cluster's hold. */
export interface HoldReport {
  cluster: string;
  /** The hold's epoch, decimal. */
  epoch: string;
  open: number;
  held: number;
  ended: number;
}

/** The hold of one cluster, as this worker follows it. */
export class ClusterHold {
  readonly cluster: string;
  epoch = 0n;
  oldPrimary = "";
  newPrimary = "";
  phase = SwitchoverHold_Phase.HOLD;
  holdUntil = 0;
  drainUntil = 0;
  /** The key was deleted (the hold stays only to finish a release). */
  deleted = false;
  /** Sessions whose transaction was ended at drain_until. */
  ended = 0;
  /** Pass-through sessions on the old primary closed after the release; still open (busy) at the last scan. */
  passThroughClosed = 0;
  passThroughLeft = 0;
  passThroughLogged = false;
  drained = false;
  private readonly waiters = new Set<{ resolve(): void; reject(err: Error): void; state: ClusterState }>();
  private timer: NodeJS.Timeout | null = null;
  /** When this worker first saw the hold (ms). */
  startedAt = Date.now();

  constructor(cluster: string) {
    this.cluster = cluster;
  }

  get heldStatements(): number {
    return this.waiters.size;
  }

  /** May a statement needing the primary go on now? */
  passes(state: ClusterState): boolean {
    if (this.phase === SwitchoverHold_Phase.ABORT) return true;
    if (this.phase === SwitchoverHold_Phase.RELEASE) return state.roleOf(this.newPrimary) === BackendRole.Primary && state.roleOf(this.oldPrimary) !== BackendRole.Primary;
    return this.deleted;
  }

  /** Resolves when a statement of a session of this cluster (its ClusterState) may borrow a primary connection; rejects at hold_until. */
  wait(state: ClusterState): Promise<void> {
    if (this.passes(state)) return Promise.resolve();
    if (Date.now() >= this.holdUntil) return Promise.reject(new SwitchoverHoldTimeoutError(this.cluster, this.holdUntil - this.startedAt));
    return new Promise<void>((resolve, reject) => {
      this.waiters.add({ resolve, reject, state });
      this.arm();
    });
  }

  /** Re-checks the waiters (a phase or the roles changed); at hold_until the rest fail. */
  check(now = Date.now()): void {
    for (const w of this.waiters) {
      if (this.passes(w.state)) {
        this.waiters.delete(w);
        w.resolve();
      } else if (now >= this.holdUntil) {
        this.waiters.delete(w);
        w.reject(new SwitchoverHoldTimeoutError(this.cluster, this.holdUntil - this.startedAt));
      }
    }
    if (this.waiters.size === 0 && this.timer !== null) {
      clearInterval(this.timer);
      this.timer = null;
    }
  }

  /** Every waiter goes on now (the hold is gone for good). */
  releaseAll(): void {
    for (const w of this.waiters) w.resolve();
    this.waiters.clear();
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
  }

  private arm(): void {
    // roles arrive through applyHealth/applyEpoch, which know nothing of holds: waiters re-check every 5 ms
    if (this.timer === null) this.timer = setInterval(() => this.check(), 5);
  }

  update(h: { epoch: bigint; oldPrimary: string; newPrimary: string; phase: SwitchoverHold_Phase; holdUntil: number; drainUntil: number }): void {
    if (h.epoch !== this.epoch) {
      this.startedAt = Date.now();
      this.ended = 0;
      this.drained = false;
      this.passThroughClosed = 0;
      this.passThroughLeft = 0;
      this.passThroughLogged = false;
    }
    this.epoch = h.epoch;
    this.oldPrimary = h.oldPrimary;
    this.newPrimary = h.newPrimary;
    this.phase = h.phase;
    this.holdUntil = h.holdUntil;
    this.drainUntil = h.drainUntil;
    this.deleted = false;
    this.check();
  }
}

/** Holds by cluster name, in this worker. Routed sessions look here only when it is not empty. */
export const switchoverHolds = new Map<string, ClusterHold>();

let sessionsProvider: () => Iterable<HoldableFrontend> = () => [];
let stateProvider: (cluster: string) => ClusterState | null = () => null;

/** The ListenerManager's open client sessions and its clusters' routing state (called once per worker). */
export function setSwitchoverSessions(sessions: () => Iterable<HoldableFrontend>, state: (cluster: string) => ClusterState | null): void {
  sessionsProvider = sessions;
  stateProvider = state;
}

/** A released hold is kept (deleted) at most this long past hold_until for pass-through sessions still busy on the old primary. */
const PASS_THROUGH_GRACE_MS = 30_000;

/** Between two counts of open transactions while a hold is in PHASE_HOLD. */
const SCAN_MS = 10;
/** A report is re-sent this often even when unchanged. */
const REPORT_REFRESH_MS = 250;

export interface SwitchoverHoldsOptions {
  logger: Logger;
  /** Sends a report to the supervisor (or, with one process, to the ack writer). */
  report(r: HoldReport): void;
}

export interface SwitchoverHoldsReceiver {
  /** A hold's value changed (proto3 JSON of SwitchoverHold), or its key was deleted (null). */
  apply(cluster: string, json: string | null): void;
  stop(): void;
}

/**
 * Follows the relayed holds: updates `switchoverHolds`, counts open
 * transactions, ends them at drain_until, and reports.
 */
export function createSwitchoverHolds(options: SwitchoverHoldsOptions): SwitchoverHoldsReceiver {
  const log = options.logger;
  let timer: NodeJS.Timeout | null = null;
  const lastSent = new Map<string, { text: string; at: number }>();

  function scan(): void {
    const now = Date.now();
    for (const h of switchoverHolds.values()) {
      if (h.deleted) {
        h.check(now);
        if (h.phase === SwitchoverHold_Phase.RELEASE) closePassThrough(h);
        if ((h.heldStatements === 0 && h.passThroughLeft === 0) || now >= h.holdUntil + PASS_THROUGH_GRACE_MS) {
          h.releaseAll();
          switchoverHolds.delete(h.cluster);
        }
        continue;
      }
      let open = 0;
      if (h.phase === SwitchoverHold_Phase.HOLD) {
        const endNow = !h.drained && now >= h.drainUntil;
        const err = endNow ? toSqlError(new SwitchoverTransactionEndedError(h.cluster, Math.max(0, h.drainUntil - h.startedAt))) : null;
        for (const f of sessionsProvider()) {
          const s = f.routedSession();
          if (s === null || !s.switchoverOpen(h.cluster, h.oldPrimary)) continue;
          if (err !== null) {
            s.endForSwitchover(err);
            h.ended++;
          } else open++;
        }
        if (endNow) {
          h.drained = true;
          if (h.ended > 0) log.warn({ cluster: h.cluster, ended: h.ended, epoch: String(h.epoch) }, `switchover of ${h.cluster}: ended ${h.ended} transaction(s) still open on ${h.oldPrimary} at the end of the drain window (ERR 1927 to their clients)`);
        } else if (open === 0) h.drained = true;
      }
      h.check(now);
      if (h.phase === SwitchoverHold_Phase.RELEASE) closePassThrough(h);
      send({ cluster: h.cluster, epoch: String(h.epoch), open, held: h.heldStatements, ended: h.ended }, now);
    }
    if (switchoverHolds.size === 0 && timer !== null) {
      clearInterval(timer);
      timer = null;
    }
  }

  /**
   * Once this worker routes to the new primary: pass-through sessions of
   * READ_WRITE listeners still on the old primary (read_only now: every write
   * of theirs would fail with 1290) are closed between commands, so that
   * their clients reconnect — to the new primary.
   */
  function closePassThrough(h: ClusterHold): void {
    const state = stateProvider(h.cluster);
    if (state === null || !h.passes(state)) return;
    let left = 0;
    for (const f of sessionsProvider()) {
      const w = f.writableBackend();
      if (w === null || w.cluster !== h.cluster || w.backend !== h.oldPrimary) continue;
      if (f.closeIfIdle("planned switchover")) h.passThroughClosed++;
      else left++;
    }
    h.passThroughLeft = left;
    if (left === 0 && h.passThroughClosed > 0 && !h.passThroughLogged) {
      h.passThroughLogged = true;
      log.info({ cluster: h.cluster, closed: h.passThroughClosed }, `switchover of ${h.cluster}: closed ${h.passThroughClosed} pass-through session(s) of READ_WRITE listeners on ${h.oldPrimary} (read_only now); their clients reconnect to ${h.newPrimary}`);
    }
  }

  function send(r: HoldReport, now: number): void {
    const text = `${r.epoch}/${r.open}/${r.held}/${r.ended}`;
    const prev = lastSent.get(r.cluster);
    if (prev !== undefined && prev.text === text && now - prev.at < REPORT_REFRESH_MS) return;
    lastSent.set(r.cluster, { text, at: now });
    options.report(r);
  }

  return {
    apply(cluster, json) {
      let h = switchoverHolds.get(cluster);
      if (json === null) {
        if (h === undefined) return;
        h.deleted = true;
        lastSent.delete(cluster);
        h.check();
        if ((h.heldStatements === 0 && h.passThroughLeft === 0) || h.phase !== SwitchoverHold_Phase.RELEASE) {
          h.releaseAll();
          switchoverHolds.delete(cluster);
        }
        return;
      }
      let v;
      try {
        v = fromJsonString(SwitchoverHoldSchema, json, { ignoreUnknownFields: true });
      } catch (err) {
        log.warn({ cluster, err: (err as Error).message }, "ignoring a switchover hold that is not a SwitchoverHold (proto3 JSON); control planes write these");
        return;
      }
      if (h === undefined) {
        h = new ClusterHold(cluster);
        switchoverHolds.set(cluster, h);
        log.warn({ cluster, epoch: String(v.epoch), oldPrimary: v.oldPrimary, newPrimary: v.newPrimary }, `planned switchover of ${cluster}: ${v.oldPrimary} → ${v.newPrimary}; holding new writes and transactions`);
      } else if (v.phase !== h.phase) {
        log.info({ cluster, epoch: String(v.epoch), phase: SwitchoverHold_Phase[v.phase], held: h.heldStatements }, `planned switchover of ${cluster}: ${v.phase === SwitchoverHold_Phase.RELEASE ? `releasing held statements to ${v.newPrimary}` : v.phase === SwitchoverHold_Phase.ABORT ? `aborted; held statements go to ${v.oldPrimary}` : "holding"}`);
      }
      h.update({
        epoch: v.epoch,
        oldPrimary: v.oldPrimary,
        newPrimary: v.newPrimary,
        phase: v.phase,
        holdUntil: v.holdUntil === undefined ? Date.now() : timestampMs(v.holdUntil),
        drainUntil: v.drainUntil === undefined ? Date.now() : timestampMs(v.drainUntil),
      });
      lastSent.delete(cluster);
      scan();
      if (timer === null) timer = setInterval(scan, SCAN_MS);
    },
    stop() {
      if (timer !== null) clearInterval(timer);
      timer = null;
      for (const h of switchoverHolds.values()) h.releaseAll();
      switchoverHolds.clear();
    },
  };
}

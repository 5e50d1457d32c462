import type { Duration } from "@bufbuild/protobuf/wkt";
import { TrustedPeers } from "./proxy-intake";

/**
 * Access control and connection limits of one worker process.
 *
 * IP lists: a deny match refuses; a non-empty allow list refuses every
 * address it does not match; an empty allow list allows all. IPv4-mapped IPv6
 * addresses (::ffff:a.b.c.d) are matched as IPv4.
 *
 * Limits are counted PER WORKER PROCESS: each configured figure is divided by
 * the number of workers (rounded up, see `perWorker`), so that a data plane as
 * a whole keeps to it (within N-1 connections). Every counter is held by a
 * `SessionSlots` and given back exactly once by its release().
 */

/** A compiled pair of allow/deny CIDR lists; null when both are empty (allows all). */
export class CidrAccess {
  private readonly allow: TrustedPeers | null;
  private readonly deny: TrustedPeers | null;
  /** Entries that are not CIDRs (validation refuses them; skipped here). */
  readonly invalid: readonly string[];

  constructor(allow: readonly string[], deny: readonly string[]) {
    this.allow = allow.length > 0 ? new TrustedPeers(allow) : null;
    this.deny = deny.length > 0 ? new TrustedPeers(deny) : null;
    this.invalid = [...(this.allow?.invalid ?? []), ...(this.deny?.invalid ?? [])];
  }

  /** True when `address` (IPv4, IPv6 or IPv4-mapped) may connect. */
  permits(address: string): boolean {
    if (this.deny !== null && this.deny.has(address)) return false;
    return this.allow === null || this.allow.has(address);
  }
}

export function compileCidrAccess(allow: readonly string[], deny: readonly string[]): CidrAccess | null {
  return allow.length === 0 && deny.length === 0 ? null : new CidrAccess(allow, deny);
}

/** A limit for one worker of `workers`: ceil(limit / workers); 0 stays 0 (no limit). */
export function perWorker(limit: number, workers: number): number {
  if (limit <= 0) return 0;
  return Math.ceil(limit / Math.max(1, workers));
}

/** Milliseconds of a Duration; 0 when absent or not positive. */
export function durationMs(d: Duration | undefined): number {
  if (d === undefined) return 0;
  const ms = Number(d.seconds) * 1000 + Math.floor(d.nanos / 1e6);
  return ms > 0 ? ms : 0;
}

/** The gateway-wide settings of a config version. */
export interface GatewaySnapshot {
  readonly access: CidrAccess | null;
  /** As configured (whole data plane); 0: no limit. */
  readonly maxConnections: number;
}

export const NO_GATEWAY: GatewaySnapshot = { access: null, maxConnections: 0 };

/** Refusals and closes counted by reason (logged; exported as metrics later). */
export interface AccessCounters {
  /** 1130 at accept: the gateway's or the listener's IP lists. */
  hostNotAllowed: number;
  /** 1040 at accept: the gateway-wide limit. */
  gatewayFull: number;
  /** 1040 at accept: the listener's limit. */
  listenerFull: number;
  /** 1045 at auth: the user's IP lists. */
  userHostDenied: number;
  /** 1203 at auth: the user's limit. */
  userFull: number;
  /** A backend skipped because it was full. */
  backendSkipped: number;
  /** 1040 after auth: every backend of the cluster full. */
  clusterFull: number;
  /** Sessions closed by the listener's idle_timeout. */
  idleClosed: number;
}

export function newAccessCounters(): AccessCounters {
  return { hostNotAllowed: 0, gatewayFull: 0, listenerFull: 0, userHostDenied: 0, userFull: 0, backendSkipped: 0, clusterFull: 0, idleClosed: 0 };
}

/** Connection counts of one worker, by scope. */
export class ConnectionLimits {
  readonly workers: number;
  readonly counters: AccessCounters = newAccessCounters();
  total = 0;
  readonly byListener = new Map<string, number>();
  readonly byUser = new Map<string, number>();
  /** Keyed "cluster/backend". */
  readonly byBackend = new Map<string, number>();

  constructor(workers: number) {
    this.workers = Math.max(1, Math.floor(workers) || 1);
  }

  /** Takes a slot if `current < perWorker(limit)`; the caller records it. */
  tryTake(map: Map<string, number>, key: string, limit: number): boolean {
    const n = map.get(key) ?? 0;
    const max = perWorker(limit, this.workers);
    if (max > 0 && n >= max) return false;
    map.set(key, n + 1);
    return true;
  }

  /** Slots held now, by scope (for tests and diagnostics). */
  inUse(): { total: number; listeners: Record<string, number>; users: Record<string, number>; backends: Record<string, number> } {
    return {
      total: this.total,
      listeners: Object.fromEntries(this.byListener),
      users: Object.fromEntries(this.byUser),
      backends: Object.fromEntries(this.byBackend),
    };
  }

  give(map: Map<string, number>, key: string): void {
    const n = (map.get(key) ?? 0) - 1;
    if (n > 0) map.set(key, n);
    else map.delete(key);
  }
}

/**
 * The slots one session holds. Taken at accept (gateway, listener), at auth
 * (user) and at backend login (backend); release() gives all back, once.
 */
export class SessionSlots {
  private readonly limits: ConnectionLimits;
  private gateway: boolean;
  private listener: string | null;
  private user: string | null;
  private backend: string | null;

  private constructor(limits: ConnectionLimits) {
    this.limits = limits;
    this.gateway = false;
    this.listener = null;
    this.user = null;
    this.backend = null;
  }

  get counters(): AccessCounters {
    return this.limits.counters;
  }

  /**
   * At accept: the gateway-wide and the listener's limits. Returns the slots,
   * or which limit refused (nothing is held then).
   */
  static admit(limits: ConnectionLimits, gatewayMax: number, listener: string, listenerMax: number): SessionSlots | "gateway" | "listener" {
    const gmax = perWorker(gatewayMax, limits.workers);
    if (gmax > 0 && limits.total >= gmax) {
      limits.counters.gatewayFull++;
      return "gateway";
    }
    if (!limits.tryTake(limits.byListener, listener, listenerMax)) {
      limits.counters.listenerFull++;
      return "listener";
    }
    limits.total++;
    const s = new SessionSlots(limits);
    s.gateway = true;
    s.listener = listener;
    return s;
  }

  /** At auth; false (and counted) when the user is at its limit. Replaces a user slot held before. */
  takeUser(user: string, max: number): boolean {
    this.releaseUser();
    if (!this.limits.tryTake(this.limits.byUser, user, max)) {
      this.limits.counters.userFull++;
      return false;
    }
    this.user = user;
    return true;
  }

  releaseUser(): void {
    if (this.user === null) return;
    this.limits.give(this.limits.byUser, this.user);
    this.user = null;
  }

  /** Before a backend login; false (and counted) when that backend is at its limit. */
  takeBackend(key: string, max: number): boolean {
    this.releaseBackend();
    if (!this.limits.tryTake(this.limits.byBackend, key, max)) {
      this.limits.counters.backendSkipped++;
      return false;
    }
    this.backend = key;
    return true;
  }

  /** After a failed backend login. */
  releaseBackend(): void {
    if (this.backend === null) return;
    this.limits.give(this.limits.byBackend, this.backend);
    this.backend = null;
  }

  /** Gives back every slot held; idempotent. */
  release(): void {
    this.releaseUser();
    this.releaseBackend();
    if (this.listener !== null) {
      this.limits.give(this.limits.byListener, this.listener);
      this.listener = null;
    }
    if (this.gateway) {
      this.gateway = false;
      this.limits.total--;
    }
  }
}

/**
 * A session's idle_timeout with one interval timer that looks a few times per
 * period: `probe` returns -1 while a command or its response is under way, else
 * a figure that changes with any traffic. The session is idle once the figure
 * stayed the same, not busy, for `timeoutMs` (closed 1× to 1.5× of it after the last byte).
 * Nothing runs per packet.
 */
export class IdleWatch {
  private readonly timer: NodeJS.Timeout;
  private last = -2;
  private since = 0;

  constructor(
    private readonly timeoutMs: number,
    private readonly probe: () => number,
    private readonly onIdle: () => void,
  ) {
    this.since = Date.now();
    this.timer = setInterval(this.check, Math.max(50, Math.floor(timeoutMs / 4)));
  }

  private readonly check = (): void => {
    const v = this.probe();
    const now = Date.now();
    if (v < 0 || v !== this.last) {
      this.last = v;
      this.since = now;
      return;
    }
    if (now - this.since >= this.timeoutMs) {
      this.stop();
      this.onIdle();
    }
  };

  stop(): void {
    clearInterval(this.timer);
  }
}

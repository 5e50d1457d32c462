import type { BackendPool } from "@mysqlgw/proto";
import { durationMs } from "../session/access";

/** The limits of one backend pool (one per worker, backend and backend user), in milliseconds. */
export interface PoolSettings {
  /** Idle connections kept open (and opened ahead of demand by sweep()). */
  minIdle: number;
  /** Connections open or opening, idle and in use together. */
  maxConnections: number;
  /** A connection older than this is closed instead of being lent again. */
  maxLifetimeMs: number;
  /** An idle connection unused this long is closed by sweep() (down to minIdle). */
  idleTimeoutMs: number;
  /** A connection idle longer than this is checked with COM_PING before it is lent. */
  checkAfterIdleMs: number;
  /** Longest acquire() waits when all maxConnections are in use (then PoolTimeoutError). */
  acquireTimeoutMs: number;
}

/** The proto's defaults (config.proto, message BackendPool). */
export const DEFAULT_POOL_SETTINGS: Readonly<PoolSettings> = Object.freeze({
  minIdle: 0,
  maxConnections: 100,
  maxLifetimeMs: 3_600_000,
  idleTimeoutMs: 300_000,
  checkAfterIdleMs: 5_000,
  acquireTimeoutMs: 2_000,
});

/**
 * A cluster's `pool` as the pool uses it: absent fields (and zero or negative
 * durations, which validation refuses) take the defaults; minIdle is capped
 * at maxConnections.
 */
export function compilePoolSettings(p: BackendPool | undefined): PoolSettings {
  const d = DEFAULT_POOL_SETTINGS;
  if (p === undefined) return { ...d };
  const maxConnections = p.maxConnections > 0 ? p.maxConnections : d.maxConnections;
  const ms = (v: Parameters<typeof durationMs>[0], dflt: number): number => {
    const x = durationMs(v);
    return x > 0 ? x : dflt;
  };
  return {
    minIdle: Math.min(p.minIdle, maxConnections),
    maxConnections,
    maxLifetimeMs: ms(p.maxLifetime, d.maxLifetimeMs),
    idleTimeoutMs: ms(p.idleTimeout, d.idleTimeoutMs),
    checkAfterIdleMs: ms(p.checkAfterIdle, d.checkAfterIdleMs),
    acquireTimeoutMs: ms(p.acquireTimeout, d.acquireTimeoutMs),
  };
}

/** True when two settings are the same (the pool manager updates a pool in place otherwise). */
export function samePoolSettings(a: PoolSettings, b: PoolSettings): boolean {
  return (
    a.minIdle === b.minIdle &&
    a.maxConnections === b.maxConnections &&
    a.maxLifetimeMs === b.maxLifetimeMs &&
    a.idleTimeoutMs === b.idleTimeoutMs &&
    a.checkAfterIdleMs === b.checkAfterIdleMs &&
    a.acquireTimeoutMs === b.acquireTimeoutMs
  );
}

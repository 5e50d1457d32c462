import { BackendHealth_Role, BackendHealth_State, type BackendHealth, type Cluster, type ClusterEpoch } from "@mysqlgw/proto";
import { chooseCandidate, sameAddress, splitAddress } from "../monitor/failover";

/**
 * The pure half of a planned switchover (switchover.ts runs it): from what
 * each backend answered, which one is the primary, which replica is promoted,
 * which replicas are re-pointed — or why the switchover is refused. No I/O.
 */

/** What one backend answered (or that it did not). */
export interface BackendState {
  name: string;
  /** host:port from the policy. */
  address: string;
  /** Null when it answered; else why not. */
  error: string | null;
  readOnly: boolean;
  /** SHOW SLAVE STATUS has a row with a Master_Host. */
  replicating: boolean;
  /** Master_Host:Master_Port, "" when not replicating. */
  sourceAddress: string;
  ioRunning: boolean;
  sqlRunning: boolean;
  /** Seconds_Behind_Master; null when NULL (threads stopped) or not replicating. */
  lagSeconds: number | null;
  gtidBinlogPos: string;
  gtidSlavePos: string;
  /** Gtid_IO_Pos: what it received. */
  gtidIoPos: string;
  semiSyncSlave: boolean;
}

export interface SwitchoverPlan {
  oldPrimary: BackendState;
  target: BackendState;
  /** Replicas of the old primary that answered, re-pointed to the target (policy order). */
  others: BackendState[];
  /** Backends left alone, each with why ("db3: does not answer (…)"). */
  skipped: string[];
  /** "db2 received=… applied=… lag=0s", per usable replica. */
  candidates: string[];
}

export type PlanResult = { ok: true; plan: SwitchoverPlan } | { ok: false; reason: string };

export { sameAddress, splitAddress };

/**
 * Decides the switchover of `cluster` to `to` ("" = the best replica) from
 * the backends' answers, the monitor's health (by backend name) and the
 * cluster's epoch. Refused, with a reason that says what to do, when:
 * the primary does not answer (use failover), no or several writable
 * servers, `to` unknown / the primary / not answering / down in the
 * monitor's view / fenced / not replicating from the primary with both
 * threads running / lagging `maxLagSeconds` or more.
 */
export function planSwitchover(
  cluster: Cluster,
  states: readonly BackendState[],
  health: ReadonlyMap<string, BackendHealth>,
  epoch: ClusterEpoch | null,
  to: string,
  maxLagSeconds: number,
): PlanResult {
  const names = cluster.backends.map((b) => b.name);
  if (to !== "" && !names.includes(to)) {
    return { ok: false, reason: `cluster ${cluster.name} has no backend '${to}' (backends: ${names.join(", ")}); pass one of them with --to, or leave --to out to pick the most advanced replica` };
  }
  const byName = new Map(states.map((s) => [s.name, s]));
  const writable = states.filter((s) => s.error === null && !s.readOnly && !s.replicating);
  if (writable.length > 1) {
    return { ok: false, reason: `cluster ${cluster.name} has several writable servers that replicate from nobody (${writable.map((s) => s.name).join(", ")}); fix replication by hand before a switchover` };
  }
  if (writable.length === 0) {
    const expected = epoch?.primary || [...health.values()].find((h) => h.role === BackendHealth_Role.PRIMARY)?.backend || "";
    const down = expected !== "" ? byName.get(expected) : undefined;
    if (down !== undefined && down.error !== null) {
      return { ok: false, reason: `the primary ${cluster.name}/${down.name} does not answer (${down.error}); a planned switchover needs it up — use failover (mysqlgw-control-plane --failover) for a primary that is down` };
    }
    return { ok: false, reason: `cluster ${cluster.name} has no writable primary (every server that answered is read_only or replicates); nothing to switch over from — check the cluster (mysqlgw backends)` };
  }
  const old = writable[0]!;
  if (to === old.name) return { ok: false, reason: `${cluster.name}/${to} is already the primary; pass another backend with --to` };
  const fenced = new Set(epoch?.fenced ?? []);
  const candidates: string[] = [];
  const skipped: string[] = [];
  /** Why `s` cannot be promoted, or null. */
  const unfit = (s: BackendState): string | null => {
    if (s.error !== null) return `does not answer (${s.error})`;
    if (fenced.has(s.name)) return `is fenced (a former primary, epoch ${epoch?.epoch ?? 0n}); rejoin it first`;
    if (health.get(s.name)?.state === BackendHealth_State.DOWN) return `is DOWN in the monitor's view (${health.get(s.name)?.lastError ?? ""})`;
    if (!s.replicating || !sameAddress(s.sourceAddress, old.address)) return `does not replicate from the primary ${old.name} (${s.replicating ? `its source is ${s.sourceAddress}` : "it replicates from nobody"})`;
    if (!s.ioRunning || !s.sqlRunning) return `is not replicating (IO thread ${s.ioRunning ? "running" : "stopped"}, SQL thread ${s.sqlRunning ? "running" : "stopped"}); START SLAVE on it first`;
    if (s.lagSeconds === null) return "reports no replication lag (Seconds_Behind_Master NULL)";
    if (s.lagSeconds >= maxLagSeconds) return `lags ${s.lagSeconds} s behind ${old.name}, as long as the hold window (${maxLagSeconds} s) or more; wait for it to catch up or raise --hold-timeout`;
    return null;
  };
  const usable: BackendState[] = [];
  for (const name of names) {
    const s = byName.get(name);
    if (s === undefined || s === old) continue;
    const why = unfit(s);
    if (why === null) {
      usable.push(s);
      candidates.push(`${s.name} received=${s.gtidIoPos} applied=${s.gtidSlavePos} lag=${s.lagSeconds ?? "?"}s`);
    } else if (name === to) {
      return { ok: false, reason: `${cluster.name}/${to} cannot be promoted: it ${why}` };
    }
  }
  let target: BackendState | undefined;
  if (to !== "") target = byName.get(to);
  else {
    const best = chooseCandidate(usable.map((s) => ({ backend: s.name, received: s.gtidIoPos, applied: s.gtidSlavePos })));
    target = best === null ? undefined : byName.get(best.backend);
  }
  if (target === undefined) {
    const why = names
      .filter((n) => n !== old.name)
      .map((n) => {
        const s = byName.get(n);
        return `${n} ${s === undefined ? "was not read" : (unfit(s) ?? "is usable")}`;
      });
    return { ok: false, reason: `no replica of ${cluster.name} can be promoted: ${why.join("; ") || "it has no replica"}` };
  }
  const others: BackendState[] = [];
  for (const name of names) {
    const s = byName.get(name);
    if (s === undefined || s === old || s === target) continue;
    if (s.error !== null) skipped.push(`${name}: does not answer (${s.error}); re-point it by hand`);
    else if (!s.replicating || !sameAddress(s.sourceAddress, old.address)) skipped.push(`${name}: does not replicate from ${old.name}; left as it is`);
    else others.push(s);
  }
  return { ok: true, plan: { oldPrimary: old, target, others, skipped, candidates } };
}

/** The hold and drain windows of a request (defaults 5 s and 3 s), or why they are refused. */
export function switchoverWindows(holdMs: number | null, drainMs: number | null): { ok: true; holdMs: number; drainMs: number } | { ok: false; reason: string } {
  const hold = holdMs ?? 5000;
  const drain = drainMs ?? 3000;
  if (!(hold >= 1000 && hold <= 120_000)) return { ok: false, reason: `hold_timeout ${hold / 1000}s is out of range; use 1s to 120s` };
  if (!(drain >= 0 && drain <= hold - 500)) return { ok: false, reason: `drain_timeout ${drain / 1000}s must be at most hold_timeout − 0.5s (${(hold - 500) / 1000}s): the catch-up and promotion happen inside the hold window` };
  return { ok: true, holdMs: hold, drainMs: drain };
}

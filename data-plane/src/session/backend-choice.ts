import { ListenerRole, ReplicaFallback } from "@mysqlgw/proto";
import { RouteTarget } from "../routing/decide";
import type { BackendTarget, ClusterSnapshot, ListenerSnapshot } from "./config-snapshot";

export interface BackendChoice {
  backend: BackendTarget;
  /** Where the statement really goes (a replica read falls back to the primary). */
  target: RouteTarget;
}

/**
 * The backend for a statement routed to `target`: a usable replica chosen by
 * the cluster's load balancing, or the primary (the monitor's view, else the
 * policy's expectedRole). A read finds no replica → the primary, unless the
 * listener's replicaFallback is NONE. Null: nothing usable.
 */
export function chooseBackend(cluster: ClusterSnapshot, target: RouteTarget, listener: ListenerSnapshot, now = Date.now()): BackendChoice | null {
  const state = cluster.runtime.state;
  if (target === RouteTarget.Replica) {
    const r = state.pickReplica(now);
    if (r !== null) return { backend: r, target: RouteTarget.Replica };
    if (listener.replicaFallback === ReplicaFallback.NONE) return null;
  }
  const p = state.primary(now);
  return p === null ? null : { backend: p, target: RouteTarget.Primary };
}

/**
 * Backends to try, in order, for a pass-through session (one backend
 * connection for the session's life) on a READ_WRITE or READ_ONLY listener:
 * - READ_WRITE: the primary; a cluster without any role information (no
 *   monitor report, no expectedRole) keeps the plain round robin over all
 *   backends; a cluster with roles but no usable primary gets none.
 * - READ_ONLY: a replica chosen by the cluster's load balancing, then the
 *   primary unless replicaFallback is NONE.
 */
export function passthroughOrder(cluster: ClusterSnapshot, listener: ListenerSnapshot, roundRobin: () => BackendTarget[], now = Date.now()): BackendTarget[] {
  const state = cluster.runtime.state;
  const rolesKnown = cluster.backends.some((b) => state.roleOf(b.name) !== 0);
  if (!rolesKnown && cluster.backends.length !== 1) return roundRobin();
  const out: BackendTarget[] = [];
  if (listener.role === ListenerRole.READ_ONLY) {
    const r = state.pickReplica(now);
    if (r !== null) out.push(r);
    if (listener.replicaFallback === ReplicaFallback.NONE) return out;
  }
  const p = state.primary(now);
  if (p !== null && !out.includes(p)) out.push(p);
  return out;
}

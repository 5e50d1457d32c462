import cluster from "node:cluster";
import type { Logger } from "pino";
import type { EtcdKeys } from "@mysqlgw/proto";
import { createEtcdHealthSource } from "../config/etcd-health-source";
import type { QuotaRegistry } from "./quota-registry";

/**
 * The fleet as quotas see it: the data planes live in etcd's registry
 * (`<prefix>/v1/dataplanes/<id>`, each under its lease), watched by the
 * supervisor (the only process talking to etcd) the way backend health is
 * (etcd-health-source.ts: a read, then a watch; a broken watch re-reads, so
 * data planes that left meanwhile count as gone; while etcd is unreachable the
 * last count is kept). Each change of the count or of this data plane's rank
 * among the sorted ids is logged ("quota fleet changed") and sent to every
 * worker:
 *
 * - supervisor → worker `mgw:fleet` {dataPlanes, rank};
 * - worker → supervisor `mgw:fleet-sync` at start, answered with the current one.
 *
 * With `--workers 0` the supervisor's own QuotaRegistry gets it directly.
 * This data plane always counts itself, registered yet or not.
 */
export interface FleetMessage {
  t: "mgw:fleet";
  dataPlanes: number;
  rank: number;
}

/** The count (self included) and this data plane's 0-based rank among the sorted ids. */
export function fleetPosition(ids: Iterable<string>, self: string): { dataPlanes: number; rank: number } {
  const all = new Set(ids);
  all.add(self);
  const sorted = [...all].sort();
  return { dataPlanes: sorted.length, rank: sorted.indexOf(self) };
}

/** "<id>" after the registry prefix (as a HealthMirror key: cluster id, backend "dp"); null for any other shape. */
export function parseDataPlaneKey(key: string, prefix: string): { cluster: string; backend: string } | null {
  if (!key.startsWith(prefix)) return null;
  const id = key.slice(prefix.length);
  return id === "" || id.includes("/") ? null : { cluster: id, backend: "dp" };
}

export function readFleetMessage(m: unknown): FleetMessage | null {
  if (typeof m !== "object" || m === null) return null;
  const r = m as Record<string, unknown>;
  if (r.t !== "mgw:fleet" || typeof r.dataPlanes !== "number" || typeof r.rank !== "number") return null;
  return { t: "mgw:fleet", dataPlanes: r.dataPlanes, rank: r.rank };
}

export interface FleetWatch {
  start(): void;
  stop(): Promise<void>;
}

/** Supervisor side. `local`: the in-process registry of `--workers 0` (else null: relayed to the workers). */
export function createFleetWatch(options: { endpoints: string[]; keys: EtcdKeys; timeoutMs: number; logger: Logger; selfId: string; local: QuotaRegistry | null }): FleetWatch {
  const log = options.logger;
  const ids = new Set<string>();
  let current = fleetPosition([], options.selfId);
  const send = (w: { isConnected(): boolean; send(m: FleetMessage): boolean }): void => {
    try {
      if (w.isConnected()) w.send({ t: "mgw:fleet", ...current });
    } catch {
      // the worker is going away; its replacement asks for a sync
    }
  };
  if (options.local === null) {
    cluster.on("message", (worker, m: unknown) => {
      if (typeof m === "object" && m !== null && (m as Record<string, unknown>).t === "mgw:fleet-sync") send(worker);
    });
  }
  const source = createEtcdHealthSource({
    endpoints: options.endpoints,
    keys: options.keys,
    timeoutMs: options.timeoutMs,
    logger: log,
    prefix: options.keys.dataPlanesPrefix,
    parseKey: parseDataPlaneKey,
    what: "data-plane registry",
    onHealth: (id, _b, json) => {
      if (json === null) ids.delete(id);
      else ids.add(id);
      const next = fleetPosition(ids, options.selfId);
      if (next.dataPlanes === current.dataPlanes && next.rank === current.rank) return;
      current = next;
      log.info({ dataPlanes: next.dataPlanes, rank: next.rank }, "quota fleet changed");
      if (options.local !== null) options.local.setFleet(next.dataPlanes, next.rank);
      else for (const w of Object.values(cluster.workers ?? {})) if (w !== undefined) send(w);
    },
  });
  return { start: () => source.start(), stop: () => source.stop() };
}

/** Worker side: applies the relayed fleet to `registry` and asks for the current one. */
export function attachFleetReceiver(registry: QuotaRegistry): void {
  process.on("message", (m: unknown) => {
    const f = readFleetMessage(m);
    if (f !== null) registry.setFleet(f.dataPlanes, f.rank);
  });
  if (process.connected && process.send !== undefined) process.send({ t: "mgw:fleet-sync" });
}

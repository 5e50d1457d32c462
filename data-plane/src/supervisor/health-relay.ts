import cluster from "node:cluster";
import { fromJsonString } from "@bufbuild/protobuf";
import { BackendHealthSchema, ClusterEpochSchema, type BackendHealth, type ClusterEpoch } from "@mysqlgw/proto";
import type { Logger } from "pino";
import type { HealthEntry } from "../config/etcd-health-source";

/**
 * Backend health from the supervisor (the only process watching etcd) to
 * every worker, at once and not queued behind config applies. Its own IPC
 * messages, beside those of ipc-protocol.ts (whose readers ignore them, as
 * these readers ignore theirs):
 *
 * - supervisor → worker `mgw:health`: one key's value (BackendHealth as
 *   proto3 JSON) or null for a deleted key; sent to every live worker.
 * - worker → supervisor `mgw:health-sync`: sent once by a worker at start;
 *   answered with one `mgw:health` per key known. The channel is ordered, so a
 *   change broadcast after the answer is applied after it.
 *
 * A cluster's failover epoch (ClusterEpoch as proto3 JSON, from
 * `<prefix>/v1/failover/epoch/<cluster>`) travels the same way, as backend ""
 * (no backend has an empty name), so that it is ordered with the health and
 * part of the sync.
 *
 * With `--workers 0` the supervisor's own ListenerManager gets the values directly.
 */
export interface HealthMessage {
  t: "mgw:health";
  cluster: string;
  backend: string;
  health: string | null;
}
export interface HealthSyncMessage {
  t: "mgw:health-sync";
}

/** What a worker does with health (ListenerManager.applyHealth). */
export type HealthSink = (cluster: string, backend: string, health: BackendHealth | null) => void;
/** What a worker does with a cluster's failover epoch (ListenerManager.applyEpoch). */
export type EpochSink = (cluster: string, epoch: ClusterEpoch | null) => void;

export function readHealthMessage(m: unknown): HealthMessage | null {
  if (typeof m !== "object" || m === null) return null;
  const r = m as Record<string, unknown>;
  if (r.t !== "mgw:health" || typeof r.cluster !== "string" || typeof r.backend !== "string") return null;
  if (r.health !== null && typeof r.health !== "string") return null;
  return { t: "mgw:health", cluster: r.cluster, backend: r.backend, health: r.health };
}

const isSync = (m: unknown): boolean => typeof m === "object" && m !== null && (m as Record<string, unknown>).t === "mgw:health-sync";

/** BackendHealth from its proto3 JSON; undefined (and a warning) for a value that is not one. */
export function decodeHealth(json: string, log: Logger, key: string): BackendHealth | undefined {
  try {
    return fromJsonString(BackendHealthSchema, json, { ignoreUnknownFields: true });
  } catch (err) {
    log.warn({ key, err: (err as Error).message }, "ignoring a backend health value that is not a BackendHealth (proto3 JSON); the monitor writes these");
    return undefined;
  }
}

/** Decodes one relayed value and hands it to `sink` (an epoch, backend "", to `epochSink`); an undecodable value changes nothing. */
function deliver(sink: HealthSink, epochSink: EpochSink | undefined, log: Logger, c: string, b: string, json: string | null): void {
  if (b === "") {
    if (epochSink === undefined) return;
    if (json === null) return epochSink(c, null);
    try {
      epochSink(c, fromJsonString(ClusterEpochSchema, json, { ignoreUnknownFields: true }));
    } catch (err) {
      log.warn({ cluster: c, err: (err as Error).message }, "ignoring a failover epoch that is not a ClusterEpoch (proto3 JSON); the monitor writes these");
    }
    return;
  }
  if (json === null) {
    sink(c, b, null);
    return;
  }
  const h = decodeHealth(json, log, `${c}/${b}`);
  if (h !== undefined) sink(c, b, h);
}

/**
 * Supervisor side. Returns the function to call with each change (wire it to
 * EtcdHealthSource.onHealth); `current` lists every known value for a worker
 * that asks. `local` is the in-process sink of `--workers 0` (else null).
 */
export function createHealthBroadcaster(options: { logger: Logger; current: () => Iterable<HealthEntry>; local: HealthSink | null; localEpoch?: EpochSink }): (cluster: string, backend: string, json: string | null) => void {
  const log = options.logger;
  const send = (w: { isConnected(): boolean; send(m: HealthMessage): boolean }, m: HealthMessage): void => {
    try {
      if (w.isConnected()) w.send(m);
    } catch {
      // the worker is going away; its replacement asks for a sync
    }
  };
  if (options.local === null) {
    cluster.on("message", (worker, m: unknown) => {
      if (!isSync(m)) return;
      let n = 0;
      for (const e of options.current()) {
        send(worker, { t: "mgw:health", cluster: e.cluster, backend: e.backend, health: e.json });
        n++;
      }
      log.debug({ worker: worker.id, keys: n }, "sent the backend health known to a starting worker");
    });
  }
  return (c, b, json) => {
    if (options.local !== null) {
      deliver(options.local, options.localEpoch, log, c, b, json);
      return;
    }
    const m: HealthMessage = { t: "mgw:health", cluster: c, backend: b, health: json };
    for (const w of Object.values(cluster.workers ?? {})) if (w !== undefined) send(w, m);
  };
}

/** Worker side: applies relayed health through `sink` and asks the supervisor for what it already knows. */
export function attachHealthReceiver(options: { logger: Logger; sink: HealthSink; epochSink?: EpochSink }): void {
  process.on("message", (m: unknown) => {
    const h = readHealthMessage(m);
    if (h !== null) deliver(options.sink, options.epochSink, options.logger, h.cluster, h.backend, h.health);
  });
  if (process.connected && process.send !== undefined) process.send({ t: "mgw:health-sync" } satisfies HealthSyncMessage);
}

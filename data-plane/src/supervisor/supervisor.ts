import type { Logger } from "pino";
import type { ConfigDoc } from "../config/config-codec";
import type { DiskConfigCache } from "../config/disk-cache";
import { withTimeout } from "../config/with-timeout";
import type { ConfigSource, RegistryEntry } from "../registry/registry-entry";
import { errorCode } from "./errors";
import type { WorkerHandle } from "./worker-handle";

/**
 * The supervisor's core: decides which config the workers serve and moves
 * them there, with no I/O of its own besides the disk cache.
 *
 * It keeps one *desired* config (the newest accepted) and reconciles every
 * worker to it, one round at a time (rounds never overlap, so each worker sees
 * serialized apply() calls). When every known worker is ready and acked the
 * desired version, that version is *served*: logged ("serving config"),
 * written to the disk cache (when it came from etcd) and published to the
 * registry. If any worker rejects it, the version is marked failed (never
 * retried) and the workers are moved back to the version served before.
 */
export interface Supervisor {
  /** A config read from etcd or the disk cache. Older or already-seen versions are ignored. */
  offer(doc: ConfigDoc, source: Exclude<ConfigSource, "">): void;
  /** A worker process was started; it gets configs once it is ready. */
  addWorker(worker: WorkerHandle): void;
  /** The worker announced itself ready: give it the desired config. */
  workerReady(worker: WorkerHandle): void;
  /** The worker exited; forget it (its replacement is added anew). */
  removeWorker(worker: WorkerHandle): void;
  /** What is served now: version, listeners and source; null before the first config. */
  serving(): Serving | null;
  /** "config version 7 (etcd)" or "nothing (no config yet)", for log lines. */
  describeServing(): string;
  /** Stops taking configs, waits for the round in progress, then drains every worker. */
  shutdown(drainTimeoutMs: number): Promise<void>;
  /** Settles when no round is running (tests). */
  idle(): Promise<void>;
}

export interface Serving {
  doc: ConfigDoc;
  source: Exclude<ConfigSource, "">;
  listening: string[];
}

export interface SupervisorOptions {
  logger: Logger;
  /** Where served etcd configs are kept; null to keep none. */
  cache: DiskConfigCache | null;
  registry: RegistryEntry;
  /** Called after the registry entry changed, to publish it (e.g. EtcdConfigSource.publish). */
  onServed(): void;
  /** Called once for each version a worker rejected (metrics). */
  onRejected?(version: bigint): void;
}

interface WorkerState {
  handle: WorkerHandle;
  ready: boolean;
  /** Version this worker acked last; null before its first. */
  version: bigint | null;
  listening: string[];
}

interface Desired {
  doc: ConfigDoc;
  source: Exclude<ConfigSource, "">;
}

export function createSupervisor(options: SupervisorOptions): Supervisor {
  const log = options.logger;
  const workers = new Map<WorkerHandle, WorkerState>();
  const failed = new Set<bigint>();
  let desired: Desired | null = null;
  let served: Serving | null = null;
  let running: Promise<void> | null = null;
  let again = false;
  let stopping = false;
  let warnedOlder: bigint | null = null;

  function describe(): string {
    if (served !== null) return `config version ${served.doc.version} (${served.source})`;
    return "nothing (no config yet)";
  }

  function kick(): void {
    if (stopping) return;
    if (running !== null) {
      again = true;
      return;
    }
    running = loop().finally(() => {
      running = null;
    });
  }

  async function loop(): Promise<void> {
    do {
      again = false;
      await round();
    } while (again && !stopping);
  }

  async function round(): Promise<void> {
    const d = desired;
    if (d === null) return;
    const targets = [...workers.values()].filter((w) => w.ready && w.version !== d.doc.version);
    const results = await Promise.allSettled(targets.map((w) => w.handle.apply(d.doc)));
    const failures: string[] = [];
    results.forEach((r, i) => {
      const w = targets[i]!;
      if (r.status === "fulfilled") {
        w.version = r.value.version;
        w.listening = r.value.listening;
        if (served !== null && served.doc.version === d.doc.version) {
          // A replacement (or rolled-back) worker caught up with what the others serve.
          log.info(
            { worker: w.handle.index, version: d.doc.version.toString(), listeners: r.value.listening },
            `worker ${w.handle.index} now serves config version ${d.doc.version}`,
          );
        }
      } else if (errorCode(r.reason, "") === "MGW_ERR_WORKER_EXITED") {
        // removeWorker() takes care of it; its replacement gets the desired config.
      } else {
        w.version = null; // unknown: it keeps its previous config, but re-apply to be sure
        failures.push(`worker ${w.handle.index}: ${(r.reason as Error)?.message ?? String(r.reason)}`);
      }
    });

    if (failures.length > 0) {
      const rollback = served !== null && served.doc.version === d.doc.version;
      if (rollback) {
        // Moving back to the served version failed too: report it, and do not
        // loop; the next config or worker event tries again.
        log.error(
          { version: d.doc.version.toString(), failures },
          `could not return every worker to config version ${d.doc.version}; the workers listed keep what they had`,
        );
        return;
      }
      failed.add(d.doc.version);
      options.onRejected?.(d.doc.version);
      log.error(
        { version: d.doc.version.toString(), failures },
        `config version ${d.doc.version} was rejected; it will not be retried; still serving ${describe()}`,
      );
      if (desired === d) {
        desired = served === null ? null : { doc: served.doc, source: served.source };
        again = served !== null; // move the workers that took it back to the served version
      }
      return;
    }
    if (desired !== d) {
      again = true;
      return;
    }

    const all = [...workers.values()];
    if (all.length === 0 || !all.every((w) => w.ready && w.version === d.doc.version)) return;
    if (served !== null && served.doc.version === d.doc.version && served.source === d.source) return;

    const first = all.reduce((a, b) => (b.handle.index < a.handle.index ? b : a));
    const previous = served;
    served = { doc: d.doc, source: d.source, listening: [...first.listening] };
    // Disk first, then the log line and the registry: once "serving config" is
    // out, a restart without etcd serves this version again.
    if (d.source === "etcd" && options.cache !== null && previous?.doc.json !== d.doc.json) {
      try {
        await options.cache.save(d.doc);
        log.debug({ file: options.cache.file, version: d.doc.version.toString() }, "saved the last good config");
      } catch (err) {
        log.error(
          { file: options.cache.file, err: (err as Error).message },
          "could not save the last good config to disk; check --state-dir is writable",
        );
      }
    }
    log.info(
      { version: d.doc.version.toString(), listeners: served.listening, source: d.source, workers: all.length },
      "serving config",
    );
    options.registry.setServing(d.doc.version, served.listening, d.source);
    options.onServed();
  }

  return {
    offer(doc, source) {
      if (stopping) return;
      const cur: Desired | null = desired ?? served;
      if (failed.has(doc.version)) {
        log.debug({ version: doc.version.toString() }, "ignoring a config version that was rejected before");
        return;
      }
      if (cur !== null && doc.version < cur.doc.version) {
        if (warnedOlder !== doc.version) {
          warnedOlder = doc.version;
          log.warn(
            { offered: doc.version.toString(), source, current: cur.doc.version.toString() },
            `${source} holds config version ${doc.version}, older than version ${cur.doc.version}; keeping version ${cur.doc.version}`,
          );
        }
        return;
      }
      if (cur !== null && doc.version === cur.doc.version) {
        // Same version: only an upgrade of its source (disk → etcd) matters.
        if (!(source === "etcd" && cur.source === "disk")) return;
      }
      desired = { doc, source };
      kick();
    },

    addWorker(worker) {
      workers.set(worker, { handle: worker, ready: false, version: null, listening: [] });
    },

    workerReady(worker) {
      const w = workers.get(worker);
      if (w === undefined) return;
      w.ready = true;
      kick();
    },

    removeWorker(worker) {
      workers.delete(worker);
      // A round may be waiting only for this worker; re-check.
      kick();
    },

    serving: () => served,
    describeServing: describe,

    async shutdown(drainTimeoutMs) {
      stopping = true;
      if (running !== null) await running.catch(() => undefined);
      const handles = [...workers.keys()];
      await withTimeout(
        Promise.allSettled(handles.map((h) => h.drain(drainTimeoutMs))),
        drainTimeoutMs + 5000,
        "draining workers",
      ).catch((err) => log.warn({ err: (err as Error).message }, "workers did not finish draining in time"));
    },

    idle: async () => {
      while (running !== null) await running;
    },
  };
}

import cluster from "node:cluster";
import * as fs from "node:fs";
import * as os from "node:os";
import pino, { type Logger } from "pino";
import { etcdKeys } from "@mysqlgw/proto";
import type { DataPlaneOptions, ListenerManager } from "../types";
import type { DataPlaneFlags } from "../config/flags";
import { createDiskConfigCache, ensureDir } from "../config/disk-cache";
import { createEtcdConfigSource } from "../config/etcd-config-source";
import { createEtcdHealthSource, parseEpochKey } from "../config/etcd-health-source";
import { createBackendViewReporter } from "../config/backend-views";
import { attachHealthReceiver, createHealthBroadcaster } from "./health-relay";
import { attachSwitchoverReceiver, createSwitchoverRelay } from "./switchover-relay";
import { sleep } from "../config/with-timeout";
import { createRegistryEntry } from "../registry/registry-entry";
import { createSupervisor } from "./supervisor";
import { createLocalWorkerHandle } from "./worker-handle";
import { createClusterWorkerPool, WORKER_INDEX_ENV, type WorkerPool } from "./worker-pool";
import { createWorkerRuntime } from "./worker-runtime";
import type { FromWorkerMessage } from "./ipc-protocol";
import type { IpcWorkerHandle } from "./worker-handle";
import { enableProcessMetrics, metrics } from "../metrics";
import { startDataPlaneMetricsServer } from "../metrics/data-plane-endpoint";
import { answerObserveRequests, startWorkerObservation, type WorkerObservation } from "../observe/worker-observation";
import { openAppend } from "../observe/log-writer";
import { startWorkerTracing } from "../observe/worker-tracing";
import { createDigestPublisher, createFiguresGatherer, startAdminPort } from "../admin";
import { quotas } from "../quota";
import { attachFleetReceiver, createFleetWatch } from "../quota/fleet-relay";

export type ListenerManagerFactory = (options: DataPlaneOptions & { logger: Logger }) => ListenerManager;

/**
 * One JSON line per event on stdout. The supervisor writes synchronously (few
 * lines, and none may be lost at exit); workers write asynchronously so that a
 * slow reader of stdout never stalls the proxy's event loop (pino flushes the
 * buffer on process exit).
 */
export function createLogger(level: string, base: Record<string, unknown>, sync = true): Logger {
  return pino({ level, base: { pid: process.pid, hostname: os.hostname(), ...base } }, pino.destination({ dest: 1, sync }));
}

function dataPlaneOptions(flags: DataPlaneFlags, workerIndex: number): DataPlaneOptions {
  return {
    handshakeTimeoutMs: flags.handshakeTimeoutMs,
    backendConnectTimeoutMs: flags.backendConnectTimeoutMs,
    maxPacketSize: flags.maxPacketSize,
    workerIndex,
    workerCount: Math.max(1, flags.workers),
    tlsCertFile: flags.tlsCertFile,
    tlsKeyFile: flags.tlsKeyFile,
    tlsCaFile: flags.tlsCaFile,
    rsaPrivateKeyFile: flags.rsaPrivateKeyFile,
    rsaPublicKeyFile: flags.rsaPublicKeyFile,
    pluginFile: flags.pluginFile,
    pluginBudgetMs: flags.pluginBudgetMs,
    bindAddress: flags.bindAddress,
  };
}

/** Logs one line that says what to do and exits 1. */
export function exitWithError(log: Logger, message: string, fields: Record<string, unknown> = {}): never {
  log.fatal(fields, message);
  process.exit(1);
}

/**
 * Entry point of a node:cluster worker: builds its ListenerManager and obeys
 * the supervisor. Ignores SIGINT/SIGTERM (the supervisor coordinates the
 * drain); if the supervisor disappears, drains and exits on its own.
 */
export function runWorker(flags: DataPlaneFlags, createListenerManager: ListenerManagerFactory): void {
  const index = Number(process.env[WORKER_INDEX_ENV] ?? "0");
  const log = createLogger(flags.logLevel, { id: flags.id, role: "worker", worker: index }, false);
  let manager: ListenerManager;
  try {
    // KILLs of another worker's connections go through the supervisor (runtime is set below, before any session runs)
    manager = createListenerManager({ ...dataPlaneOptions(flags, index), logger: log, remoteKill: (req) => runtime.remoteKill(req) });
  } catch (err) {
    exitWithError(log, `worker ${index} could not start: ${(err as Error).message}`);
  }
  const exitSoon = () => {
    setTimeout(() => process.exit(0), 1000).unref();
  };
  const send = (m: FromWorkerMessage): void => {
    if (!process.connected || process.send === undefined) {
      if (m.t === "mgw:drained") process.exit(0);
      return;
    }
    process.send(m, undefined, {}, () => {
      // the request log's last lines (sessions closed by the drain) go out first
      if (m.t === "mgw:drained") void observation.close().finally(() => process.exit(0));
    });
  };
  if (flags.metricsListen !== null) enableProcessMetrics(metrics.registry, String(index));
  // request log, digests, open connections (docs/observability.md); the admin port asks for them over IPC
  const observation = observe(flags, index, log);
  answerObserveRequests(observation);
  const runtime = createWorkerRuntime({ manager, send, logger: log, onDrained: exitSoon, metrics: () => metrics.registry.getMetricsAsJSON() });
  process.on("message", (m: unknown) => runtime.handleMessage(m));
  // backend health from etcd, relayed by the supervisor (not queued behind applies)
  attachHealthReceiver({ logger: log, sink: (c, b, h) => manager.applyHealth?.(c, b, h), epochSink: (c, e) => manager.applyEpoch?.(c, e) });
  // planned switchovers: holds relayed by the supervisor, open transactions reported back (supervisor/switchover-relay.ts)
  attachSwitchoverReceiver(log);
  // quota shares: this worker's place in the fleet (live data planes from etcd's registry, relayed by the supervisor)
  quotas.setLogger(log);
  quotas.setWorker(index, flags.workers);
  attachFleetReceiver(quotas);
  process.on("disconnect", () => {
    log.warn("supervisor is gone; draining and exiting");
    void runtime.drain(flags.drainTimeoutMs).then(() => process.exit(0));
  });
  for (const sig of ["SIGINT", "SIGTERM"] as const) {
    process.on(sig, () => log.debug({ signal: sig }, "signal ignored by worker; the supervisor coordinates shutdown"));
  }
  runtime.ready();
}

/** Starts this process's request log, digest and connection tables, or exits saying why not. */
function observe(flags: DataPlaneFlags, index: number, log: Logger): WorkerObservation {
  try {
    // OpenTelemetry traces (--otlp-endpoint), registered first so that the request log sees the trace ids; flushed when the observation closes
    const tracing = startWorkerTracing({ flags: flags.tracing, id: flags.id, worker: index, logger: log, registry: metrics.registry });
    const o = startWorkerObservation({ flags: flags.observe, worker: index, logger: log, registry: metrics.registry });
    return tracing === null ? o : { ...o, close: () => Promise.all([o.close(), tracing.close()]).then(() => undefined) };
  } catch (err) {
    exitWithError(log, (err as Error).message);
  }
}

/**
 * Entry point of the supervisor: the only process that talks to etcd. With
 * `flags.workers` ≥ 1 it is the node:cluster primary and forks the workers;
 * with 0 it also serves the listeners itself.
 */
export async function runSupervisor(flags: DataPlaneFlags, createListenerManager: ListenerManagerFactory): Promise<void> {
  const log = createLogger(flags.logLevel, { id: flags.id, role: "supervisor" });
  process.on("uncaughtException", (err) => exitWithError(log, `internal error: ${err.stack ?? err.message}`));

  try {
    ensureDir(flags.stateDir);
    fs.accessSync(flags.stateDir, fs.constants.W_OK);
  } catch (err) {
    exitWithError(
      log,
      `cannot use --state-dir ${flags.stateDir} (${(err as Error).message}); pass a writable directory with --state-dir`,
    );
  }
  // every worker appends to the request log: check it once here rather than have each worker fail
  const requestLog = flags.observe.requestLog;
  if (requestLog !== "" && requestLog !== "stdout") {
    try {
      fs.closeSync(openAppend(requestLog));
    } catch (err) {
      exitWithError(log, `cannot open the request log ${requestLog} (${(err as Error).message}); pass a writable file or "stdout" with --request-log`);
    }
  }

  const keys = etcdKeys(flags.etcdPrefix);
  const cache = createDiskConfigCache({ dir: flags.stateDir, logger: log });
  const registry = createRegistryEntry({
    id: flags.id,
    hostname: os.hostname(),
    pid: process.pid,
    // --workers 0 still serves from one process.
    workers: Math.max(1, flags.workers),
  });
  // `etcd` is created below; onServed only runs after a config was applied.
  let publish = (): void => undefined;
  let served = (): void => undefined;
  const supervisor = createSupervisor({
    logger: log,
    cache,
    registry,
    onServed: () => {
      publish();
      served();
    },
    onRejected: () => endpoint?.rejected(),
  });
  const etcd = createEtcdConfigSource({
    endpoints: flags.etcdEndpoints,
    keys,
    id: flags.id,
    timeoutMs: flags.etcdTimeoutMs,
    logger: log,
    onConfig: (doc) => {
      supervisor.offer(doc, "etcd");
      views.setConfig(doc.config);
    },
    registryValue: () => registry.toJson(),
    describeServing: () => supervisor.describeServing(),
  });
  publish = () => etcd.publish();

  // GET /metrics and /healthz (--metrics-listen): the supervisor's figures plus every worker's, over IPC
  let shuttingDown = false;
  const workerHandles = new Set<IpcWorkerHandle>();
  const endpoint =
    flags.metricsListen === null
      ? null
      : await startDataPlaneMetricsServer({
          listen: flags.metricsListen,
          logger: log,
          supervisor,
          workers: () => [...workerHandles],
          // --workers 0: this process serves the listeners too, its sessions count here
          local: flags.workers === 0 ? metrics.registry : null,
          shuttingDown: () => shuttingDown,
        }).catch((err: unknown) =>
          exitWithError(
            log,
            `cannot serve metrics on ${flags.metricsListen?.host}:${flags.metricsListen?.port} (${(err as Error).message}); pass a free address with --metrics-listen or leave it out`,
          ),
        );
  served = () => endpoint?.served();

  let pool: WorkerPool | null = null;
  let localManager: ListenerManager | null = null;
  let localObservation: WorkerObservation | null = null;
  if (flags.workers === 0) {
    let manager: ListenerManager;
    try {
      manager = createListenerManager({ ...dataPlaneOptions(flags, 0), logger: log.child({ worker: 0 }) });
    } catch (err) {
      exitWithError(log, `could not start the listener manager: ${(err as Error).message}`);
    }
    localManager = manager;
    localObservation = observe(flags, 0, log);
    const handle = createLocalWorkerHandle(manager);
    supervisor.addWorker(handle);
    supervisor.workerReady(handle);
  } else {
    pool = createClusterWorkerPool({
      count: flags.workers,
      logger: log,
      onFork: (h) => {
        workerHandles.add(h);
        supervisor.addWorker(h);
      },
      onReady: (h) => supervisor.workerReady(h),
      onExit: (h) => {
        workerHandles.delete(h);
        supervisor.removeWorker(h);
      },
    });
    pool.start();
  }

  // --admin-listen: the admin SQL port; --digests-publish-interval: the top digests to etcd (GET /v1/digests); both read every worker's figures over IPC
  const gatherer = createFiguresGatherer({ local: localObservation, logger: log });
  const adminListen = flags.observe.adminListen;
  const admin =
    adminListen === null
      ? null
      : await startAdminPort({ flags: { ...flags.observe, adminListen }, supervisor, gatherer, logger: log, id: flags.id, workers: flags.workers }).catch((err: unknown) =>
          exitWithError(log, `cannot serve the admin port on ${adminListen.host}:${adminListen.port} (${(err as Error).message}); pass a free address with --admin-listen or leave it out`),
        );

  // The monitor's backend health: read and watched in etcd, relayed to every worker at once.
  const lm = localManager;
  const relayHealth = createHealthBroadcaster({
    logger: log,
    current: () => [...health.current(), ...epochs.current()],
    local: lm === null ? null : (c, b, h) => lm.applyHealth?.(c, b, h),
    localEpoch: lm === null ? undefined : (c, e) => lm.applyEpoch?.(c, e),
  });
  const health = createEtcdHealthSource({ endpoints: flags.etcdEndpoints, keys, timeoutMs: flags.etcdTimeoutMs, logger: log, onHealth: relayHealth });
  // The clusters' failover epochs (fenced former primaries), relayed with the health as backend "".
  const epochs = createEtcdHealthSource({ endpoints: flags.etcdEndpoints, keys, timeoutMs: flags.etcdTimeoutMs, logger: log, onHealth: relayHealth, prefix: keys.epochPrefix, parseKey: parseEpochKey, what: "failover epochs" });
  // Planned switchovers: holds from etcd to the workers, this data plane's ack back (docs/monitor.md).
  const switchovers = createSwitchoverRelay({ endpoints: flags.etcdEndpoints, keys, id: flags.id, timeoutMs: flags.etcdTimeoutMs, logger: log, local: flags.workers === 0 });
  // This data plane's own view of each backend, for the monitor's failover confirmation (docs/monitor.md).
  const views = createBackendViewReporter({ endpoints: flags.etcdEndpoints, keys, id: flags.id, timeoutMs: flags.etcdTimeoutMs, logger: log });
  // The live data planes in etcd's registry, for the quotas' fleet shares (quota/fleet-relay.ts).
  if (flags.workers === 0) quotas.setLogger(log);
  const fleet = createFleetWatch({ endpoints: flags.etcdEndpoints, keys, timeoutMs: flags.etcdTimeoutMs, logger: log, selfId: flags.id, local: flags.workers === 0 ? quotas : null });
  // The top query digests, for the control plane's GET /v1/digests (docs/observability.md).
  const o = flags.observe;
  const digestPublisher =
    o.digestsMax > 0 && o.digestsPublishIntervalMs > 0
      ? createDigestPublisher({ endpoints: flags.etcdEndpoints, prefix: flags.etcdPrefix, id: flags.id, intervalMs: o.digestsPublishIntervalMs, top: o.digestsPublishTop, timeoutMs: flags.etcdTimeoutMs, figures: () => gatherer.figures(), logger: log })
      : null;

  log.info(
    {
      workers: flags.workers,
      etcd: flags.etcdEndpoints,
      prefix: flags.etcdPrefix,
      stateDir: flags.stateDir,
      registryKey: keys.dataPlane(flags.id),
    },
    "data plane starting",
  );

  // Shutdown: the first signal drains and deregisters; a second one exits at once.
  const shutdown = async (signal: string): Promise<void> => {
    if (shuttingDown) {
      log.warn({ signal }, "second signal: exiting now without draining");
      pool?.killAll();
      process.exit(1);
    }
    shuttingDown = true;
    log.info({ signal, drainTimeoutMs: flags.drainTimeoutMs }, "shutting down: stopped accepting, draining connections");
    pool?.stop();
    await supervisor.shutdown(flags.drainTimeoutMs);
    await pool?.waitForExit(5000);
    pool?.killAll();
    await etcd.stop({ deregister: true });
    await health.stop();
    await epochs.stop();
    await switchovers.stop();
    await views.stop();
    await fleet.stop();
    await endpoint?.close();
    await admin?.close();
    await digestPublisher?.stop();
    gatherer.close();
    await localObservation?.close();
    log.info({ signal }, "data plane stopped");
    process.exit(0);
  };
  process.on("SIGTERM", () => void shutdown("SIGTERM"));
  process.on("SIGINT", () => void shutdown("SIGINT"));

  etcd.start();
  health.start();
  epochs.start();
  switchovers.start();
  views.start();
  fleet.start();
  digestPublisher?.start();
  const connected = await Promise.race([etcd.firstAttempt, sleep(flags.etcdTimeoutMs).then(() => false)]);
  if (connected || shuttingDown) return;

  const disk = cache.load();
  if (disk !== null) {
    log.warn(
      { version: disk.version.toString(), file: cache.file, etcd: flags.etcdEndpoints },
      `etcd is unreachable; the data plane serves the last good config version ${disk.version} from ${cache.file} and keeps retrying etcd`,
    );
    supervisor.offer(disk, "disk");
    views.setConfig(disk.config);
  } else {
    log.error(
      { file: cache.file, etcd: flags.etcdEndpoints },
      `etcd is unreachable and there is no last good config at ${cache.file}; serving nothing until etcd (--etcd) is reachable and holds a config; retrying`,
    );
  }
}

/** True in a process forked by runSupervisor's worker pool. */
export function isClusterWorker(): boolean {
  return cluster.isWorker;
}

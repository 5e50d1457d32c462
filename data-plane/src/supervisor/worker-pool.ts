import cluster, { type Worker } from "node:cluster";
import type { Logger } from "pino";
import { createIpcWorkerHandle, type IpcWorkerHandle } from "./worker-handle";

/** Name of the environment variable that gives a forked worker its slot. */
export const WORKER_INDEX_ENV = "MYSQLGW_WORKER_INDEX";

/**
 * Forks and keeps `count` node:cluster workers (the listeners are shared
 * through the cluster module). A worker that exits while the pool is not
 * stopping is replaced in the same slot; restarts are rate-limited to
 * `maxRestarts` per `restartWindowMs` across the pool, further ones wait.
 */
export interface WorkerPool {
  start(): void;
  /** From now on exits are expected: no replacement is forked. */
  stop(): void;
  /** SIGKILLs every live worker (second signal, fatal error). */
  killAll(): void;
  /** Resolves when every worker process has exited, or after `timeoutMs`. */
  waitForExit(timeoutMs: number): Promise<void>;
}

export interface WorkerPoolEvents {
  /** A worker process was forked. */
  onFork(handle: IpcWorkerHandle): void;
  /** The worker sent "mgw:ready". */
  onReady(handle: IpcWorkerHandle): void;
  /** The worker exited (expectedly or not); its pending requests were rejected. */
  onExit(handle: IpcWorkerHandle): void;
}

export interface WorkerPoolOptions extends WorkerPoolEvents {
  count: number;
  logger: Logger;
  /** Default max(5, 2 × count). */
  maxRestarts?: number;
  /** Default 60000 ms. */
  restartWindowMs?: number;
  /** Per-apply bound, see IpcWorkerHandleOptions; default 60000 ms. */
  applyTimeoutMs?: number;
}

export function createClusterWorkerPool(options: WorkerPoolOptions): WorkerPool {
  const log = options.logger;
  const maxRestarts = options.maxRestarts ?? Math.max(5, 2 * options.count);
  const windowMs = options.restartWindowMs ?? 60000;
  const live = new Map<Worker, IpcWorkerHandle>();
  const limiter = createRestartLimiter(maxRestarts, windowMs);
  const timers = new Set<NodeJS.Timeout>();
  let stopping = false;
  let throttled = false;

  function fork(index: number): void {
    const worker = cluster.fork({ [WORKER_INDEX_ENV]: String(index) });
    const handle = createIpcWorkerHandle({
      index,
      send: (m) => (worker.isConnected() ? worker.send(m) : false),
      applyTimeoutMs: options.applyTimeoutMs,
      onKill: (m) => {
        // the connection id's top 8 bits name the worker owning it
        const index = m.target >>> 24;
        const owner = [...live.values()].find((h) => h.index === index && !h.exited);
        const req = { target: m.target, user: m.user, query: m.query };
        const answer = owner !== undefined ? owner.kill(req) : Promise.resolve({ errno: 1094, sqlState: "HY000", message: `Unknown thread id: ${m.target}` });
        void answer.then((r) => handle.sendKillResult(m.seq, r));
      },
    });
    live.set(worker, handle);
    options.onFork(handle);
    worker.on("message", (m: unknown) => {
      if (handle.handleMessage(m)) {
        log.debug({ worker: index, workerPid: worker.process.pid }, "worker ready");
        options.onReady(handle);
      }
    });
    worker.on("error", (err: Error) => log.warn({ worker: index, err: err.message }, "worker IPC error"));
    worker.on("exit", (code: number | null, signal: string | null) => {
      live.delete(worker);
      const how = signal !== null ? `signal ${signal}` : `code ${code}`;
      handle.handleExit(how);
      options.onExit(handle);
      if (stopping) {
        log.debug({ worker: index, workerPid: worker.process.pid, code, signal }, "worker exited");
        return;
      }
      log.error(
        { worker: index, workerPid: worker.process.pid, code, signal },
        `worker ${index} exited unexpectedly (${how}); starting a replacement`,
      );
      scheduleRestart(index);
    });
  }

  function scheduleRestart(index: number): void {
    const delay = limiter.take(Date.now());
    if (delay === 0) {
      if (throttled) {
        throttled = false;
        log.info("worker restarts are no longer rate-limited");
      }
      fork(index);
      return;
    }
    if (!throttled) {
      throttled = true;
      log.warn(
        { maxRestarts, windowMs, delayMs: delay },
        `workers restarted ${maxRestarts} times within ${windowMs} ms; delaying further restarts`,
      );
    }
    const t = setTimeout(() => {
      timers.delete(t);
      if (!stopping) scheduleRestart(index);
    }, delay);
    timers.add(t);
  }

  return {
    start() {
      for (let i = 0; i < options.count; i++) fork(i);
    },
    stop() {
      stopping = true;
      for (const t of timers) clearTimeout(t);
      timers.clear();
    },
    killAll() {
      stopping = true;
      for (const w of live.keys()) {
        try {
          w.process.kill("SIGKILL");
        } catch {
          // already gone
        }
      }
    },
    async waitForExit(timeoutMs) {
      const deadline = Date.now() + timeoutMs;
      while (live.size > 0 && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 20));
      }
    },
  };
}

/**
 * At most `max` restarts in any sliding window of `windowMs`. take(now)
 * returns 0 and records a restart when one is allowed now, else how long to
 * wait before asking again (nothing recorded).
 */
export function createRestartLimiter(max: number, windowMs: number): { take(now: number): number } {
  const times: number[] = [];
  return {
    take(now) {
      while (times.length > 0 && times[0]! <= now - windowMs) times.shift();
      if (times.length < max) {
        times.push(now);
        return 0;
      }
      return Math.max(1, times[0]! + windowMs - now + 1);
    },
  };
}

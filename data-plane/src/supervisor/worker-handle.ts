import type { ApplyResult, KillRequest, KillResult, ListenerManager } from "../types";
import type { ConfigDoc } from "../config/config-codec";
import { SupervisorError } from "./errors";
import { readFromWorkerMessage, type KillMessage, type ToWorkerMessage } from "./ipc-protocol";

/**
 * The supervisor's view of one worker. Calls are serialized by the supervisor
 * (one apply at a time per worker; drain is the last call).
 */
export interface WorkerHandle {
  /** 0-based slot on this host; a replacement worker takes the slot of the one it replaces. */
  readonly index: number;
  /** Resolves with the worker's ApplyResult; rejects with SupervisorError (APPLY_FAILED, APPLY_TIMEOUT, EXITED). */
  apply(doc: ConfigDoc): Promise<ApplyResult>;
  /** Resolves when the worker drained (or exited). */
  drain(timeoutMs: number): Promise<void>;
}

/** A worker in another process, reached over the cluster IPC channel. */
export interface IpcWorkerHandle extends WorkerHandle {
  /** Feed every message the worker sent. Returns true for "mgw:ready". */
  handleMessage(message: unknown): boolean;
  /** Call when the worker process exited: every pending request is rejected. */
  handleExit(description: string): void;
  readonly exited: boolean;
  /** Asks this worker to KILL one of its connections; resolves with its answer (1094 if it exited or timed out). */
  kill(req: KillRequest): Promise<KillResult>;
  /** Answers a "mgw:kill" this worker sent. */
  sendKillResult(seq: number, result: KillResult): void;
  /** The worker's metrics registry as JSON; rejects when it exited, errs or does not answer within `timeoutMs`. */
  metrics(timeoutMs: number): Promise<unknown[]>;
}

/** Sent when a KILL cannot reach the worker owning the connection. */
function noSuchThread(id: number): KillResult {
  return { errno: 1094, sqlState: "HY000", message: `Unknown thread id: ${id}` };
}

export interface IpcWorkerHandleOptions {
  index: number;
  /** Sends one message; returns false (or throws) when the channel is closed. */
  send(message: ToWorkerMessage): boolean;
  /** A worker that does not answer an apply within this is treated as failed; default 60000 ms. */
  applyTimeoutMs?: number;
  /** The worker asks for a KILL of a connection of another worker; answer with sendKillResult(). */
  onKill?(message: KillMessage): void;
  /** Bound on a forwarded KILL; default 15000 ms. */
  killTimeoutMs?: number;
}

interface Pending {
  resolve(r: ApplyResult): void;
  reject(e: Error): void;
  timer: NodeJS.Timeout;
}

export function createIpcWorkerHandle(options: IpcWorkerHandleOptions): IpcWorkerHandle {
  const applyTimeoutMs = options.applyTimeoutMs ?? 60000;
  const pending = new Map<number, Pending>();
  const pendingKills = new Map<number, { resolve(r: KillResult): void; timer: NodeJS.Timeout; target: number }>();
  const pendingMetrics = new Map<number, { resolve(m: unknown[]): void; reject(e: Error): void; timer: NodeJS.Timeout }>();
  let seq = 0;
  let exited = false;
  let drained: (() => void) | null = null;

  function trySend(m: ToWorkerMessage): boolean {
    try {
      return options.send(m);
    } catch {
      return false;
    }
  }

  return {
    index: options.index,
    get exited() {
      return exited;
    },

    apply(doc) {
      if (exited) {
        return Promise.reject(new SupervisorError("MGW_ERR_WORKER_EXITED", `worker ${options.index} has exited`));
      }
      const id = ++seq;
      return new Promise<ApplyResult>((resolve, reject) => {
        const timer = setTimeout(() => {
          pending.delete(id);
          reject(
            new SupervisorError(
              "MGW_ERR_WORKER_APPLY_TIMEOUT",
              `worker ${options.index} did not apply config version ${doc.version} within ${applyTimeoutMs} ms`,
            ),
          );
        }, applyTimeoutMs);
        pending.set(id, { resolve, reject, timer });
        if (!trySend({ t: "mgw:apply", seq: id, config: doc.json })) {
          clearTimeout(timer);
          pending.delete(id);
          reject(new SupervisorError("MGW_ERR_WORKER_EXITED", `worker ${options.index} IPC channel is closed`));
        }
      });
    },

    drain(timeoutMs) {
      if (exited) return Promise.resolve();
      return new Promise<void>((resolve) => {
        drained = resolve;
        if (!trySend({ t: "mgw:drain", timeoutMs })) resolve();
      });
    },

    handleMessage(message) {
      const m = readFromWorkerMessage(message);
      if (m === null) return false;
      switch (m.t) {
        case "mgw:ready":
          return true;
        case "mgw:applied":
        case "mgw:apply-failed": {
          const p = pending.get(m.seq);
          if (p === undefined) return false; // late answer after a timeout
          pending.delete(m.seq);
          clearTimeout(p.timer);
          if (m.t === "mgw:applied") p.resolve({ version: BigInt(m.version), listening: m.listening });
          else
            p.reject(
              new SupervisorError("MGW_ERR_WORKER_APPLY_FAILED", `worker ${options.index}: ${m.error}`, {
                cause: { code: m.code, message: m.error },
              }),
            );
          return false;
        }
        case "mgw:drained":
          drained?.();
          drained = null;
          return false;
        case "mgw:kill":
          if (options.onKill !== undefined) options.onKill(m);
          else trySend({ t: "mgw:kill-result", seq: m.seq, ...noSuchThread(m.target) });
          return false;
        case "mgw:metrics-result": {
          const p = pendingMetrics.get(m.seq);
          if (p !== undefined) {
            pendingMetrics.delete(m.seq);
            clearTimeout(p.timer);
            if (m.error === "") p.resolve(m.metrics);
            else p.reject(new SupervisorError("MGW_ERR_WORKER_METRICS", `worker ${options.index}: ${m.error}`));
          }
          return false;
        }
        case "mgw:kill-result": {
          const k = pendingKills.get(m.seq);
          if (k !== undefined) {
            pendingKills.delete(m.seq);
            clearTimeout(k.timer);
            k.resolve({ errno: m.errno, sqlState: m.sqlState, message: m.message });
          }
          return false;
        }
      }
    },

    handleExit(description) {
      exited = true;
      for (const [id, p] of pending) {
        clearTimeout(p.timer);
        p.reject(new SupervisorError("MGW_ERR_WORKER_EXITED", `worker ${options.index} exited (${description})`));
        pending.delete(id);
      }
      drained?.();
      drained = null;
      for (const [id, k] of pendingKills) {
        clearTimeout(k.timer);
        k.resolve(noSuchThread(k.target));
        pendingKills.delete(id);
      }
      for (const [id, p] of pendingMetrics) {
        clearTimeout(p.timer);
        p.reject(new SupervisorError("MGW_ERR_WORKER_EXITED", `worker ${options.index} exited (${description})`));
        pendingMetrics.delete(id);
      }
    },

    kill(req) {
      if (exited) return Promise.resolve(noSuchThread(req.target));
      const id = ++seq;
      return new Promise<KillResult>((resolve) => {
        const timer = setTimeout(() => {
          pendingKills.delete(id);
          resolve({ errno: 1105, sqlState: "HY000", message: `mysqlgw: worker ${options.index} did not answer the KILL in time` });
        }, options.killTimeoutMs ?? 15000);
        pendingKills.set(id, { resolve, timer, target: req.target });
        if (!trySend({ t: "mgw:kill", seq: id, target: req.target, user: req.user, query: req.query })) {
          clearTimeout(timer);
          pendingKills.delete(id);
          resolve(noSuchThread(req.target));
        }
      });
    },

    sendKillResult(killSeq, result) {
      trySend({ t: "mgw:kill-result", seq: killSeq, ...result });
    },

    metrics(timeoutMs) {
      if (exited) return Promise.reject(new SupervisorError("MGW_ERR_WORKER_EXITED", `worker ${options.index} has exited`));
      const id = ++seq;
      return new Promise<unknown[]>((resolve, reject) => {
        const timer = setTimeout(() => {
          pendingMetrics.delete(id);
          reject(new SupervisorError("MGW_ERR_WORKER_METRICS", `worker ${options.index} did not send its metrics within ${timeoutMs} ms`));
        }, timeoutMs);
        pendingMetrics.set(id, { resolve, reject, timer });
        if (!trySend({ t: "mgw:metrics", seq: id })) {
          clearTimeout(timer);
          pendingMetrics.delete(id);
          reject(new SupervisorError("MGW_ERR_WORKER_EXITED", `worker ${options.index} IPC channel is closed`));
        }
      });
    },
  };
}

/** The single in-process "worker" of --workers 0: the ListenerManager itself. */
export function createLocalWorkerHandle(manager: ListenerManager): WorkerHandle {
  return {
    index: 0,
    apply: (doc) => manager.apply(doc.config),
    drain: (timeoutMs) => manager.drain(timeoutMs),
  };
}

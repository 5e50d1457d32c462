import type { Logger } from "pino";
import type { KillRequest, KillResult, ListenerManager } from "../types";
import { decodeConfig } from "../config/config-codec";
import { errorCode } from "./errors";
import { readToWorkerMessage, type FromWorkerMessage } from "./ipc-protocol";

/**
 * The worker side of the supervisor IPC: turns supervisor messages into calls
 * on this worker's ListenerManager and answers each one. Calls to the manager
 * are serialized (its contract), in the order the messages arrived; after a
 * drain request every later apply is refused.
 */
export interface WorkerRuntime {
  /** Tells the supervisor this worker is ready for its config. */
  ready(): void;
  /** Handles one IPC message; ignores anything that is not ours. */
  handleMessage(message: unknown): void;
  /** Drains (as if asked by the supervisor), e.g. when the supervisor is gone. Idempotent. */
  drain(timeoutMs: number): Promise<void>;
  /** Settles when the queue of pending work is empty (tests). */
  idle(): Promise<void>;
  /**
   * KILL of a connection of another worker, through the supervisor. Never
   * rejects: no answer within `killTimeoutMs` gives 1105.
   */
  remoteKill(req: KillRequest): Promise<KillResult>;
}

export interface WorkerRuntimeOptions {
  manager: ListenerManager;
  /** Sends one message to the supervisor; must not throw (drop when the channel is gone). */
  send(message: FromWorkerMessage): void;
  logger: Logger;
  /** Called once after the drain finished and "mgw:drained" was sent; typically exits. */
  onDrained(): void;
  /** Bound on a KILL routed through the supervisor; default 20000 ms. */
  killTimeoutMs?: number;
  /** This worker's metrics registry as JSON (prom-client getMetricsAsJSON), for "mgw:metrics"; absent: answered with an error. */
  metrics?: () => Promise<unknown[]>;
}

export function createWorkerRuntime(options: WorkerRuntimeOptions): WorkerRuntime {
  const { manager, send, logger: log } = options;
  let chain: Promise<void> = Promise.resolve();
  let draining: Promise<void> | null = null;
  let killSeq = 0;
  const pendingKills = new Map<number, { resolve(r: KillResult): void; timer: NodeJS.Timeout }>();

  /** A KILL the supervisor routed here (not serialized with applies: it must not wait for one). */
  function killHere(seq: number, req: KillRequest): void {
    const run = manager.killLocal?.(req) ?? Promise.resolve({ errno: 1094, sqlState: "HY000", message: `Unknown thread id: ${req.target}` });
    run.then(
      (r) => send({ t: "mgw:kill-result", seq, ...r }),
      (err: unknown) => send({ t: "mgw:kill-result", seq, errno: 1105, sqlState: "HY000", message: `mysqlgw: ${(err as Error)?.message ?? String(err)}` }),
    );
  }

  /** A metrics scrape (not serialized with applies: a scrape must not wait for one). */
  function sendMetrics(seq: number): void {
    const collect = options.metrics ?? (() => Promise.reject(new Error("this worker has no metrics")));
    collect().then(
      (metrics) => send({ t: "mgw:metrics-result", seq, metrics, error: "" }),
      (err: unknown) => send({ t: "mgw:metrics-result", seq, metrics: [], error: (err as Error)?.message ?? String(err) }),
    );
  }

  function enqueue(job: () => Promise<void>): Promise<void> {
    chain = chain.then(job, job);
    return chain;
  }

  function apply(seq: number, json: string): void {
    void enqueue(async () => {
      if (draining !== null) {
        send({ t: "mgw:apply-failed", seq, error: "worker is draining", code: "MGW_ERR_WORKER_DRAINING" });
        return;
      }
      const res = decodeConfig(json);
      if (!res.ok) {
        send({ t: "mgw:apply-failed", seq, error: res.reason, code: "MGW_ERR_WORKER_APPLY_FAILED" });
        return;
      }
      try {
        const result = await manager.apply(res.doc.config);
        send({ t: "mgw:applied", seq, version: result.version.toString(), listening: [...result.listening] });
      } catch (err) {
        log.error(
          { version: res.doc.version.toString(), err: (err as Error).message, code: errorCode(err, "") },
          "could not apply config; this worker keeps serving its previous config",
        );
        send({
          t: "mgw:apply-failed",
          seq,
          error: (err as Error)?.message ?? String(err),
          code: errorCode(err, "MGW_ERR_WORKER_APPLY_FAILED"),
        });
      }
    });
  }

  function drain(timeoutMs: number): Promise<void> {
    if (draining === null) {
      draining = enqueue(async () => {
        try {
          await manager.drain(timeoutMs);
        } catch (err) {
          log.error({ err: (err as Error).message }, "drain failed");
        }
        send({ t: "mgw:drained" });
        options.onDrained();
      });
    }
    return draining;
  }

  return {
    ready: () => send({ t: "mgw:ready" }),
    handleMessage(message) {
      const m = readToWorkerMessage(message);
      if (m === null) return;
      if (m.t === "mgw:apply") apply(m.seq, m.config);
      else if (m.t === "mgw:drain") void drain(m.timeoutMs);
      else if (m.t === "mgw:kill") killHere(m.seq, { target: m.target, user: m.user, query: m.query });
      else if (m.t === "mgw:metrics") sendMetrics(m.seq);
      else {
        const k = pendingKills.get(m.seq);
        if (k === undefined) return;
        pendingKills.delete(m.seq);
        clearTimeout(k.timer);
        k.resolve({ errno: m.errno, sqlState: m.sqlState, message: m.message });
      }
    },
    remoteKill(req) {
      const seq = ++killSeq;
      return new Promise<KillResult>((resolve) => {
        const timer = setTimeout(() => {
          pendingKills.delete(seq);
          resolve({ errno: 1105, sqlState: "HY000", message: "mysqlgw: the KILL got no answer from the supervisor in time" });
        }, options.killTimeoutMs ?? 20000);
        pendingKills.set(seq, { resolve, timer });
        send({ t: "mgw:kill", seq, target: req.target, user: req.user, query: req.query });
      });
    },
    drain,
    idle: () => chain,
  };
}

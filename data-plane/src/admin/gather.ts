/**
 * The supervisor side of "mgw:observe": asks every live worker for its
 * figures (request log, digests, connections, backends) over the cluster IPC
 * channel, in parallel, each bounded by `timeoutMs`; a worker that does not
 * answer in time is left out of that answer (and logged).
 */
import cluster, { type Worker } from "node:cluster";
import type { Logger } from "pino";
import type { ObserveRequest, ObserveResult, WorkerFigures, WorkerObservation } from "../observe/worker-observation";

export const DEFAULT_GATHER_TIMEOUT_MS = 3000;

export interface FiguresGatherer {
  figures(): Promise<WorkerFigures[]>;
  close(): void;
}

/**
 * `local`: with --workers 0 the supervisor serves the listeners itself and
 * its own observation is read directly; otherwise the node:cluster workers are asked.
 */
export function createFiguresGatherer(options: { local: WorkerObservation | null; logger: Logger; timeoutMs?: number }): FiguresGatherer {
  const timeoutMs = options.timeoutMs ?? DEFAULT_GATHER_TIMEOUT_MS;
  let seq = 0;
  const pending = new Map<number, (f: WorkerFigures) => void>();
  const onMessage = (_w: Worker, m: unknown): void => {
    if (typeof m !== "object" || m === null) return;
    const r = m as Partial<ObserveResult>;
    if (r.t !== "mgw:observe-result" || typeof r.seq !== "number" || typeof r.figures !== "object") return;
    const p = pending.get(r.seq);
    if (p === undefined) return;
    pending.delete(r.seq);
    p(r.figures);
  };
  const local = options.local;
  if (local === null) cluster.on("message", onMessage);

  function ask(w: Worker): Promise<WorkerFigures | null> {
    const id = ++seq;
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        pending.delete(id);
        options.logger.warn({ worker: w.id, timeoutMs }, "a worker did not send its figures to the admin port in time; this answer lacks them");
        resolve(null);
      }, timeoutMs);
      pending.set(id, (f) => {
        clearTimeout(timer);
        resolve(f);
      });
      const req: ObserveRequest = { t: "mgw:observe", seq: id };
      try {
        w.send(req);
      } catch {
        clearTimeout(timer);
        pending.delete(id);
        resolve(null);
      }
    });
  }

  return {
    async figures() {
      if (local !== null) return [local.figures()];
      const workers = Object.values(cluster.workers ?? {}).filter((w): w is Worker => w !== undefined && w.isConnected());
      const got = await Promise.all(workers.map(ask));
      return got.filter((f): f is WorkerFigures => f !== null).sort((a, b) => a.worker - b.worker);
    },
    close() {
      if (local === null) cluster.off("message", onMessage);
    },
  };
}

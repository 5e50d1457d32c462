/**
 * What one worker process observes for the request log, the digest table and
 * the admin port: registers those observers on `observers` at startup and
 * answers the supervisor's "mgw:observe" requests with its figures (over the
 * cluster IPC channel; the supervisor's own IPC code ignores these messages,
 * see supervisor/ipc-protocol.ts).
 */
import type { Logger } from "pino";
import { Counter, type Registry } from "prom-client";
import type { BackendStateView } from "../routing/backend-state";
import { ConnectionTable, type ConnectionRow } from "./connection-table";
import { DigestTable, type DigestStats } from "./digest-table";
import type { ObserveFlags } from "./flags";
import { LineWriter, openAppend, PIPE_WRITE_BYTES } from "./log-writer";
import { observers, type Observers } from "./observer";
import { createRequestLog } from "./request-log";

/** One cluster's backends as this worker routes on them. */
export interface ClusterBackends {
  cluster: string;
  backends: BackendStateView[];
}

/** A worker's figures, as the admin port reads them (plain JSON). */
export interface WorkerFigures {
  worker: number;
  digests: DigestStats[];
  digestEvictions: number;
  connections: ConnectionRow[];
  backends: ClusterBackends[];
  requestLog: { written: number; dropped: number };
}

let backendProvider: (() => ClusterBackends[]) | null = null;

/** The listener manager tells where its clusters' backend state is (called once per process). */
export function setBackendViewsProvider(fn: () => ClusterBackends[]): void {
  backendProvider = fn;
}

export interface WorkerObservation {
  readonly digests: DigestTable | null;
  readonly connections: ConnectionTable;
  readonly requestLog: LineWriter | null;
  figures(): WorkerFigures;
  /** Flushes and closes the request log, unregisters the observers. */
  close(): Promise<void>;
}

export interface WorkerObservationOptions {
  flags: ObserveFlags;
  worker: number;
  logger: Logger;
  /** Where mysqlgw_request_log_* and mysqlgw_digest_* counters go (the worker's metrics registry). */
  registry: Registry;
  /** Default: the process's `observers`. */
  observers?: Observers;
}

/** Sets up this process's request log, digest table and connection table from the flags. */
export function startWorkerObservation(options: WorkerObservationOptions): WorkerObservation {
  const { flags, logger } = options;
  const obs = options.observers ?? observers;
  const registers = [options.registry];
  const dropped = new Counter({ name: "mysqlgw_request_log_dropped_total", help: "Request-log lines dropped because the log could not keep up (buffer full) or a write failed.", registers });
  let digests: DigestTable | null = null;
  let evictionsSeen = 0;
  // the table counts its evictions; the counter catches up at each scrape
  new Counter({
    name: "mysqlgw_digest_evictions_total",
    help: "Query digests evicted from a worker's digest table to make room (see --digests-max).",
    registers,
    collect() {
      const n = digests?.evictions ?? 0;
      if (n > evictionsSeen) this.inc(n - evictionsSeen);
      evictionsSeen = n;
    },
  });

  const connections = new ConnectionTable(obs.epochOffsetMs);
  const registered = [connections.observer()];
  if (flags.digestsMax > 0) {
    digests = new DigestTable({ maxEntries: flags.digestsMax });
    registered.push(digests.observer());
  }

  let writer: LineWriter | null = null;
  if (flags.requestLog !== "") {
    const toStdout = flags.requestLog === "stdout";
    let fd: number;
    try {
      fd = toStdout ? 1 : openAppend(flags.requestLog);
    } catch (err) {
      throw new Error(`cannot open the request log ${flags.requestLog} (${(err as Error).message}); pass a writable file or "stdout" with --request-log`);
    }
    writer = new LineWriter({
      fd,
      ownsFd: !toStdout,
      maxWriteBytes: toStdout ? PIPE_WRITE_BYTES : undefined,
      onDrop: (n) => dropped.inc(n),
      onError: (err) => logger.warn({ err: err.message, file: flags.requestLog }, "request log write failed; lines are dropped (mysqlgw_request_log_dropped_total)"),
    });
    registered.push(
      createRequestLog(writer, {
        sample: flags.requestLogSample,
        slowMs: flags.requestLogSlowMs,
        rawSql: flags.requestLogRawSql,
        sessions: flags.requestLogSessions,
        epochOffsetMs: obs.epochOffsetMs,
      }),
    );
  }
  for (const o of registered) obs.add(o);

  const w = writer;
  return {
    digests,
    connections,
    requestLog: writer,
    figures: () => ({
      worker: options.worker,
      digests: digests?.snapshot() ?? [],
      digestEvictions: digests?.evictions ?? 0,
      connections: connections.snapshot(),
      backends: backendProvider?.() ?? [],
      requestLog: { written: w?.written ?? 0, dropped: w?.dropped ?? 0 },
    }),
    async close() {
      for (const o of registered) obs.remove(o);
      await w?.close();
    },
  };
}

/** Supervisor → worker: send your figures. */
export interface ObserveRequest {
  t: "mgw:observe";
  seq: number;
}
/** Worker → supervisor: the answer to "mgw:observe" `seq`. */
export interface ObserveResult {
  t: "mgw:observe-result";
  seq: number;
  figures: WorkerFigures;
}

/** Answers the supervisor's "mgw:observe" requests in this worker. */
export function answerObserveRequests(observation: WorkerObservation): void {
  process.on("message", (m: unknown) => {
    if (typeof m !== "object" || m === null) return;
    const r = m as Partial<ObserveRequest>;
    if (r.t !== "mgw:observe" || typeof r.seq !== "number") return;
    if (!process.connected || process.send === undefined) return;
    const answer: ObserveResult = { t: "mgw:observe-result", seq: r.seq, figures: observation.figures() };
    process.send(answer);
  });
}

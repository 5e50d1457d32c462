/**
 * Messages between the supervisor (node:cluster primary) and its workers over
 * the cluster IPC channel. Every message is a plain JSON object tagged by `t`;
 * the config travels as its proto3 JSON text (what etcd holds), parsed once in
 * each worker. Anything not recognised here is ignored by the receiver (other
 * libraries may share the channel).
 */

/** Supervisor → worker: serve this config (`seq` pairs the reply). */
export interface ApplyMessage {
  t: "mgw:apply";
  seq: number;
  config: string;
}
/** Supervisor → worker: stop accepting, drain, reply "mgw:drained", then exit. */
export interface DrainMessage {
  t: "mgw:drain";
  timeoutMs: number;
}
/**
 * KILL of connection `target` for mysqlgw user `user`. Worker → supervisor
 * when the target's worker bits name another worker; supervisor → that
 * worker (with the supervisor's own `seq`). Answered by "mgw:kill-result".
 */
export interface KillMessage {
  t: "mgw:kill";
  seq: number;
  target: number;
  user: string;
  query: boolean;
}
/** The answer to "mgw:kill" `seq`: errno 0 for done, else the ERR packet's fields. Both directions. */
export interface KillResultMessage {
  t: "mgw:kill-result";
  seq: number;
  errno: number;
  sqlState: string;
  message: string;
}
/** Supervisor → worker: send your metrics registry (prom-client getMetricsAsJSON), answered by "mgw:metrics-result". */
export interface MetricsRequestMessage {
  t: "mgw:metrics";
  seq: number;
}
export type ToWorkerMessage = ApplyMessage | DrainMessage | KillMessage | KillResultMessage | MetricsRequestMessage;

/** Worker → supervisor: ready for its first config. */
export interface ReadyMessage {
  t: "mgw:ready";
}
/** Worker → supervisor: the ApplyResult of apply `seq` (version as a decimal string). */
export interface AppliedMessage {
  t: "mgw:applied";
  seq: number;
  version: string;
  listening: string[];
}
/** Worker → supervisor: apply `seq` failed; the worker still serves its previous config. */
export interface ApplyFailedMessage {
  t: "mgw:apply-failed";
  seq: number;
  error: string;
  code: string;
}
/** Worker → supervisor: drain finished; the worker exits next. */
export interface DrainedMessage {
  t: "mgw:drained";
}
/** Worker → supervisor: the answer to "mgw:metrics" `seq`; `error` is "" when `metrics` holds the registry. */
export interface MetricsResultMessage {
  t: "mgw:metrics-result";
  seq: number;
  metrics: unknown[];
  error: string;
}
export type FromWorkerMessage =
  | ReadyMessage
  | AppliedMessage
  | ApplyFailedMessage
  | DrainedMessage
  | KillMessage
  | KillResultMessage
  | MetricsResultMessage;

const isU32 = (v: unknown): v is number => typeof v === "number" && Number.isInteger(v) && v >= 0 && v <= 0xffffffff;

/** Narrows "mgw:kill" / "mgw:kill-result" (either direction); null otherwise. */
function readKillMessage(m: Record<string, unknown>): KillMessage | KillResultMessage | null {
  if (m.t === "mgw:kill") {
    return isSeq(m.seq) && isU32(m.target) && typeof m.user === "string" && typeof m.query === "boolean"
      ? { t: m.t, seq: m.seq, target: m.target, user: m.user, query: m.query }
      : null;
  }
  if (m.t === "mgw:kill-result") {
    return isSeq(m.seq) && isU32(m.errno) && typeof m.sqlState === "string" && typeof m.message === "string"
      ? { t: m.t, seq: m.seq, errno: m.errno, sqlState: m.sqlState, message: m.message }
      : null;
  }
  return null;
}

function isObject(m: unknown): m is Record<string, unknown> {
  return typeof m === "object" && m !== null;
}
const isSeq = (v: unknown): v is number => typeof v === "number" && Number.isSafeInteger(v) && v >= 0;
const isStringArray = (v: unknown): v is string[] => Array.isArray(v) && v.every((x) => typeof x === "string");

/** Narrows a message received by a worker; null if it is not one of ours or is malformed. */
export function readToWorkerMessage(m: unknown): ToWorkerMessage | null {
  if (!isObject(m)) return null;
  switch (m.t) {
    case "mgw:apply":
      return isSeq(m.seq) && typeof m.config === "string" ? { t: m.t, seq: m.seq, config: m.config } : null;
    case "mgw:drain":
      return isSeq(m.timeoutMs) ? { t: m.t, timeoutMs: m.timeoutMs } : null;
    case "mgw:metrics":
      return isSeq(m.seq) ? { t: m.t, seq: m.seq } : null;
    case "mgw:kill":
    case "mgw:kill-result":
      return readKillMessage(m);
    default:
      return null;
  }
}

/** Narrows a message received by the supervisor; null if it is not one of ours or is malformed. */
export function readFromWorkerMessage(m: unknown): FromWorkerMessage | null {
  if (!isObject(m)) return null;
  switch (m.t) {
    case "mgw:ready":
      return { t: m.t };
    case "mgw:applied":
      return isSeq(m.seq) && typeof m.version === "string" && /^\d+$/.test(m.version) && isStringArray(m.listening)
        ? { t: m.t, seq: m.seq, version: m.version, listening: m.listening }
        : null;
    case "mgw:apply-failed":
      return isSeq(m.seq) && typeof m.error === "string" && typeof m.code === "string"
        ? { t: m.t, seq: m.seq, error: m.error, code: m.code }
        : null;
    case "mgw:drained":
      return { t: m.t };
    case "mgw:metrics-result":
      return isSeq(m.seq) && Array.isArray(m.metrics) && typeof m.error === "string"
        ? { t: m.t, seq: m.seq, metrics: m.metrics as unknown[], error: m.error }
        : null;
    case "mgw:kill":
    case "mgw:kill-result":
      return readKillMessage(m);
    default:
      return null;
  }
}

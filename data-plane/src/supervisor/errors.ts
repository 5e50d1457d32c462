import { MgwError } from "../errors";

/**
 * Errors of the data plane's process side (flags, etcd link, supervisor ↔
 * worker IPC): members of the package's MgwError family, with these codes.
 */
export type SupervisorErrorCode =
  /** A flag or environment value cannot be used. */
  | "MGW_ERR_FLAGS_INVALID"
  /** An etcd call (or another bounded step) outlived its timeout. */
  | "MGW_ERR_ETCD_TIMEOUT"
  /** A worker rejected a config (its ListenerManager.apply failed). */
  | "MGW_ERR_WORKER_APPLY_FAILED"
  /** A worker did not answer an apply within the bound. */
  | "MGW_ERR_WORKER_APPLY_TIMEOUT"
  /** A worker exited while a request to it was pending. */
  | "MGW_ERR_WORKER_EXITED"
  /** A worker was asked to apply while draining. */
  | "MGW_ERR_WORKER_DRAINING"
  /** A worker did not send its metrics (error or no answer in time). */
  | "MGW_ERR_WORKER_METRICS";

export class SupervisorError extends MgwError {
  declare readonly code: SupervisorErrorCode;
  constructor(code: SupervisorErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options?.cause === undefined ? undefined : { cause: options.cause });
  }
}

/** The stable code of any error: its own `code` when it is a string, else a generic one. */
export function errorCode(err: unknown, fallback: string): string {
  const c = (err as { code?: unknown } | null)?.code;
  return typeof c === "string" && c !== "" ? c : fallback;
}

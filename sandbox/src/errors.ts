/**
 * The sandbox's error family. Every failure to start, wait for or stop a real
 * server is one of these, with the tail of the server's own log in the message
 * so that a failing test says why without a rerun.
 */
export type SandboxErrorCode =
  | "MGW_ERR_SANDBOX_BINARY_MISSING"
  | "MGW_ERR_SANDBOX_START_FAILED"
  | "MGW_ERR_SANDBOX_EXITED"
  | "MGW_ERR_SANDBOX_TIMEOUT"
  | "MGW_ERR_SANDBOX_NOT_RUNNING"
  | "MGW_ERR_SANDBOX_BAD_STATE"
  | "MGW_ERR_SANDBOX_REPLICATION"
  | "MGW_ERR_SANDBOX_COMMAND_FAILED"
  | "MGW_ERR_SANDBOX_NO_FREE_PORT";

export class MgwError extends Error {
  override readonly name = "MgwError";
  readonly code: SandboxErrorCode;

  constructor(code: SandboxErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
  }
}

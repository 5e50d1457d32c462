import { Code, ConnectError } from "@connectrpc/connect";

/**
 * The CLI's one error family. `what` and `todo` are printed as
 * `error: <what> — <todo>`; `lines`, when set, replaces that single line
 * (one line per problem, e.g. policy violations mapped to files).
 */
export class CliError extends Error {
  readonly code: CliErrorCode;
  readonly todo: string;
  readonly lines: readonly string[];
  /** Process exit code: 1 for failures, 2 for usage errors. */
  readonly exitCode: number;

  constructor(code: CliErrorCode, what: string, todo: string, options?: { lines?: readonly string[]; exitCode?: number; cause?: unknown }) {
    super(what, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = "CliError";
    this.code = code;
    this.todo = todo;
    this.lines = options?.lines ?? [];
    this.exitCode = options?.exitCode ?? 1;
  }

  /** What goes to stderr, each entry one line starting with "error: ". */
  render(): string[] {
    if (this.lines.length > 0) return this.lines.map((l) => `error: ${l}`);
    return [`error: ${this.message}${this.todo === "" ? "" : ` — ${this.todo}`}`];
  }
}

export type CliErrorCode =
  | "MGW_ERR_CLI_USAGE"
  | "MGW_ERR_CLI_FILE"
  | "MGW_ERR_CLI_POLICY_INVALID"
  | "MGW_ERR_CLI_API_UNREACHABLE"
  | "MGW_ERR_CLI_API"
  | "MGW_ERR_CLI_API_AUTH"
  | "MGW_ERR_CLI_API_TLS"
  | "MGW_ERR_CLI_NOT_FOUND";

/** TLS failures (OpenSSL verify codes and Node's), told apart from "nothing listening". */
const TLS_CODES = new Set([
  "DEPTH_ZERO_SELF_SIGNED_CERT", "SELF_SIGNED_CERT_IN_CHAIN", "UNABLE_TO_VERIFY_LEAF_SIGNATURE", "UNABLE_TO_GET_ISSUER_CERT_LOCALLY",
  "CERT_HAS_EXPIRED", "CERT_NOT_YET_VALID", "ERR_TLS_CERT_ALTNAME_INVALID", "CERT_SIGNATURE_FAILURE", "EPROTO",
  "ERR_SSL_WRONG_VERSION_NUMBER", "ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED", "ERR_SSL_SSLV3_ALERT_BAD_CERTIFICATE", "ERR_SSL_TLSV1_ALERT_UNKNOWN_CA",
]);

/** The first TLS error code in `err`'s cause chain. */
function tlsCode(err: unknown): string | undefined {
  for (let e: unknown = err, depth = 0; typeof e === "object" && e !== null && depth < 8; e = (e as { cause?: unknown }).cause, depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === "string" && (TLS_CODES.has(code) || code.startsWith("ERR_SSL_") || code.startsWith("ERR_TLS_"))) return code;
  }
  return undefined;
}

/** What to do about a TLS failure talking to `api`. */
function tlsTodo(code: string, api: string): string {
  if (code === "ERR_SSL_WRONG_VERSION_NUMBER" || code === "EPROTO") {
    return api.startsWith("https:") ? "the control plane does not speak TLS on that port; use http:// in --api, or start it with --tls-cert/--tls-key" : "check --api";
  }
  if (/CERTIFICATE_REQUIRED|BAD_CERTIFICATE|UNKNOWN_CA/.test(code)) return "the control plane wants a client certificate signed by its --tls-client-ca; pass --cert FILE --key FILE";
  if (code === "ERR_TLS_CERT_ALTNAME_INVALID") return "the control plane's certificate does not name the host in --api; use a name or address the certificate lists";
  return "pass the CA that signed the control plane's certificate with --ca-file (or MYSQLGW_CA_FILE)";
}

const NETWORK_CODES = new Set(["ECONNREFUSED", "ECONNRESET", "ENOTFOUND", "EHOSTUNREACH", "ENETUNREACH", "EAI_AGAIN", "EADDRNOTAVAIL", "EPIPE", "ETIMEDOUT", "UND_ERR_SOCKET"]);

/** Walks `cause` for a Node system error code (like connect-node's node-error.ts). */
function syscallCode(err: unknown): string | undefined {
  // Not `instanceof Error`: errors from another realm (jest, vm) must match too.
  for (let e: unknown = err, depth = 0; typeof e === "object" && e !== null && depth < 8; e = (e as { cause?: unknown }).cause, depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === "string" && NETWORK_CODES.has(code)) return code;
  }
  return undefined;
}

/** What to do for a server error code, when the server's message does not say. */
const TODO_OF: Partial<Record<Code, string>> = {
  [Code.Unavailable]: "check the control plane's log and that etcd is running",
  [Code.Aborted]: "another apply ran at the same time; run the command again",
  [Code.FailedPrecondition]: "review `mysqlgw diff` and apply again",
  [Code.NotFound]: "check the name or version (mysqlgw get policy)",
  [Code.Unimplemented]: "check that --api points at a mysqlgw control plane of a matching version",
  [Code.DeadlineExceeded]: "check that the control plane is healthy (curl <api>/v1/health) or raise --timeout",
};

/**
 * Converts an error from an API call into a CliError, once, at the client
 * boundary. A transport failure (nothing listening, DNS) is told apart from an
 * Unavailable the server itself sent (etcd down) by walking `cause`.
 */
export function fromApiError(err: unknown, api: string): CliError {
  if (err instanceof CliError) return err;
  const tls = tlsCode(err);
  if (tls !== undefined) {
    return new CliError("MGW_ERR_CLI_API_TLS", `TLS with the control plane at ${api} failed (${tls})`, tlsTodo(tls, api), { cause: err });
  }
  const sys = syscallCode(err);
  if (sys !== undefined) {
    const hint = api.startsWith("http:") && (sys === "ECONNRESET" || sys === "EPIPE") ? "if the control plane serves TLS (--tls-cert), use https:// in --api" : "start it or pass --api";
    return new CliError("MGW_ERR_CLI_API_UNREACHABLE", `cannot reach the control plane at ${api}${sys === "ECONNREFUSED" ? "" : ` (${sys})`}`, hint, { cause: err });
  }
  if (err instanceof ConnectError && (err.code === Code.Unauthenticated || err.code === Code.PermissionDenied)) {
    // The server's message says what to do (which token, which role).
    return new CliError("MGW_ERR_CLI_API_AUTH", `${err.code === Code.Unauthenticated ? "not authenticated" : "permission denied"}: ${err.rawMessage}`, "", { cause: err });
  }
  if (err instanceof ConnectError) {
    if (err.code === Code.DeadlineExceeded) {
      return new CliError("MGW_ERR_CLI_API", `the control plane at ${api} did not answer in time`, TODO_OF[Code.DeadlineExceeded]!, { cause: err });
    }
    // The server's message already says what to do (our messages do); keep the first line.
    const first = err.rawMessage.split("\n")[0] ?? "";
    const saysWhatToDo = /;|—/.test(first);
    return new CliError("MGW_ERR_CLI_API", first === "" ? `control plane error (${Code[err.code]})` : first,
      saysWhatToDo ? "" : TODO_OF[err.code] ?? "see the control plane's log", { cause: err });
  }
  return new CliError("MGW_ERR_CLI_API", `unexpected error talking to ${api}: ${err instanceof Error ? err.message : String(err)}`, "report this with the command you ran", { cause: err });
}

/**
 * The data plane's one error family. Every error we raise is an `MgwError`
 * with a stable `code`; the session translates it once, through
 * {@link SQL_ERRORS}, into the errno/SQLSTATE of the ERR packet a client sees.
 *
 * Pure: no I/O, no Node-specific imports, so protocol/ may use it.
 */

export type MgwErrorCode =
  | "MGW_ERR_PROTOCOL_MALFORMED_PACKET"
  | "MGW_ERR_PROTOCOL_PACKET_TOO_LARGE"
  | "MGW_ERR_PROTOCOL_UNSUPPORTED"
  | "MGW_ERR_PROXY_PROTOCOL"
  | "MGW_ERR_HANDSHAKE_TIMEOUT"
  | "MGW_ERR_AUTH_ACCESS_DENIED"
  | "MGW_ERR_AUTH_UNSUPPORTED_PLUGIN"
  | "MGW_ERR_SECRET_UNRESOLVABLE"
  | "MGW_ERR_BACKEND_CONNECT"
  | "MGW_ERR_BACKEND_TIMEOUT"
  | "MGW_ERR_BACKEND_REJECTED"
  | "MGW_ERR_BACKEND_PROTOCOL"
  | "MGW_ERR_BACKEND_UNAVAILABLE"
  | "MGW_ERR_BACKEND_LOST"
  | "MGW_ERR_BACKEND_TLS"
  | "MGW_ERR_TLS_CONFIG"
  | "MGW_ERR_CONFIG_UNKNOWN_CLUSTER"
  | "MGW_ERR_LISTENER_BIND"
  | "MGW_ERR_SERVER_SHUTDOWN"
  | "MGW_ERR_KILL_NO_SUCH_THREAD"
  | "MGW_ERR_KILL_DENIED"
  | "MGW_ERR_CHANGE_USER_REFUSED"
  | "MGW_ERR_HOST_NOT_ALLOWED"
  | "MGW_ERR_TOO_MANY_CONNECTIONS"
  | "MGW_ERR_USER_TOO_MANY_CONNECTIONS"
  | "MGW_ERR_POOL_TIMEOUT"
  | "MGW_ERR_SWITCHOVER_HOLD_TIMEOUT"
  | "MGW_ERR_SWITCHOVER_TRANSACTION_ENDED"
  | "MGW_ERR_QUOTA_EXCEEDED"
  // process side (flags, etcd link, supervisor ↔ worker IPC); never sent to a client
  | "MGW_ERR_FLAGS_INVALID"
  | "MGW_ERR_ETCD_TIMEOUT"
  | "MGW_ERR_WORKER_APPLY_FAILED"
  | "MGW_ERR_WORKER_APPLY_TIMEOUT"
  | "MGW_ERR_WORKER_EXITED"
  | "MGW_ERR_WORKER_DRAINING"
  | "MGW_ERR_WORKER_METRICS";

export class MgwError extends Error {
  readonly code: MgwErrorCode;
  constructor(code: MgwErrorCode, message: string, options?: ErrorOptions) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }
}

/** Bytes on the wire do not form a valid packet (truncated, bad length, …). */
export class MalformedPacketError extends MgwError {
  constructor(message: string, options?: ErrorOptions) {
    super("MGW_ERR_PROTOCOL_MALFORMED_PACKET", message, options);
  }
}

/** A packet's (joined) payload exceeds the configured maxPacketSize. */
export class PacketTooLargeError extends MgwError {
  readonly size: number;
  readonly limit: number;
  constructor(size: number, limit: number) {
    super("MGW_ERR_PROTOCOL_PACKET_TOO_LARGE", `packet of ${size} bytes exceeds the limit of ${limit} bytes`);
    this.size = size;
    this.limit = limit;
  }
}

/** Valid protocol we do not implement (yet): SSL request, pre-4.1 clients, … */
export class UnsupportedProtocolError extends MgwError {
  constructor(message: string, options?: ErrorOptions) {
    super("MGW_ERR_PROTOCOL_UNSUPPORTED", message, options);
  }
}

/**
 * A bad or unwanted PROXY protocol header (from an untrusted peer, malformed,
 * too long), or none where a trusted peer must send one. The connection is
 * closed without a reply.
 */
export class ProxyProtocolError extends MgwError {
  constructor(message: string, options?: ErrorOptions) {
    super("MGW_ERR_PROXY_PROTOCOL", message, options);
  }
}

export class HandshakeTimeoutError extends MgwError {
  constructor(timeoutMs: number) {
    super("MGW_ERR_HANDSHAKE_TIMEOUT", `handshake not completed within ${timeoutMs} ms`);
  }
}

/** Wrong password or unknown user. The message is MySQL's, verbatim. */
export class AccessDeniedError extends MgwError {
  constructor(user: string, host: string, usingPassword: boolean) {
    super(
      "MGW_ERR_AUTH_ACCESS_DENIED",
      `Access denied for user '${user}'@'${host}' (using password: ${usingPassword ? "YES" : "NO"})`,
    );
  }
}

export class UnsupportedAuthPluginError extends MgwError {
  readonly plugin: string;
  constructor(plugin: string, side: "client" | "backend") {
    super("MGW_ERR_AUTH_UNSUPPORTED_PLUGIN", `authentication plugin '${plugin}' requested by the ${side} is not supported`);
    this.plugin = plugin;
  }
}

/** A backendCredentials.secretRef could not be turned into a password. */
export class SecretResolutionError extends MgwError {
  readonly ref: string;
  constructor(ref: string, message: string, options?: ErrorOptions) {
    super("MGW_ERR_SECRET_UNRESOLVABLE", message, options);
    this.ref = ref;
  }
}

/** One backend could not be reached (TCP level). */
export class BackendConnectError extends MgwError {
  constructor(message: string, options?: ErrorOptions) {
    super("MGW_ERR_BACKEND_CONNECT", message, options);
  }
}

/** One backend did not complete connect + authentication in time. */
export class BackendTimeoutError extends MgwError {
  constructor(message: string) {
    super("MGW_ERR_BACKEND_TIMEOUT", message);
  }
}

/** A backend answered the handshake with an ERR packet; its fields are kept as sent. */
export class BackendRejectedError extends MgwError {
  readonly errno: number;
  readonly sqlState: string;
  readonly serverMessage: string;
  constructor(errno: number, sqlState: string, serverMessage: string, backend: string) {
    super("MGW_ERR_BACKEND_REJECTED", `${backend} refused: ${errno} (${sqlState}) ${serverMessage}`);
    this.errno = errno;
    this.sqlState = sqlState;
    this.serverMessage = serverMessage;
  }
}

/** A backend sent bytes we could not understand during the handshake. */
export class BackendProtocolError extends MgwError {
  constructor(message: string, options?: ErrorOptions) {
    super("MGW_ERR_BACKEND_PROTOCOL", message, options);
  }
}

/** No backend of a cluster accepted the connection. */
export class NoBackendAvailableError extends MgwError {
  constructor(message: string, options?: ErrorOptions) {
    super("MGW_ERR_BACKEND_UNAVAILABLE", message, options);
  }
}

export class BackendLostError extends MgwError {
  constructor(message: string, options?: ErrorOptions) {
    super("MGW_ERR_BACKEND_LOST", message, options);
  }
}

/** TLS toward a backend failed: not offered, handshake or certificate verification failed. */
export class BackendTlsError extends MgwError {
  constructor(message: string, options?: ErrorOptions) {
    super("MGW_ERR_BACKEND_TLS", message, options);
  }
}

/** TLS or RSA files of the deployment cannot be used (flags); never sent to a client. */
export class TlsConfigError extends MgwError {
  constructor(message: string, options?: ErrorOptions) {
    super("MGW_ERR_TLS_CONFIG", message, options);
  }
}

export class UnknownClusterError extends MgwError {
  constructor(listener: string, cluster: string) {
    super("MGW_ERR_CONFIG_UNKNOWN_CLUSTER", `listener '${listener}' refers to cluster '${cluster}', which the current configuration does not define`);
  }
}

export class ListenerBindError extends MgwError {
  readonly listener: string;
  constructor(listener: string, address: string, port: number, options?: ErrorOptions) {
    const why = (options?.cause as { code?: string } | undefined)?.code ?? "error";
    super("MGW_ERR_LISTENER_BIND", `listener '${listener}' cannot listen on ${address}:${port} (${why})`, options);
    this.listener = listener;
  }
}

export class ServerShutdownError extends MgwError {
  constructor() {
    super("MGW_ERR_SERVER_SHUTDOWN", "Server shutdown in progress");
  }
}

/** KILL names a connection id no session of this data plane has. Message as MariaDB's. */
export class NoSuchThreadError extends MgwError {
  constructor(id: number) {
    super("MGW_ERR_KILL_NO_SUCH_THREAD", `Unknown thread id: ${id}`);
  }
}

/** KILL of another mysqlgw user's connection. Message as MariaDB's. */
export class KillDeniedError extends MgwError {
  constructor(id: number) {
    super("MGW_ERR_KILL_DENIED", `You are not owner of thread ${id}`);
  }
}

/** COM_CHANGE_USER that the gateway cannot honour on this connection (the message says why). */
export class ChangeUserRefusedError extends MgwError {
  constructor(message: string) {
    super("MGW_ERR_CHANGE_USER_REFUSED", message);
  }
}

/** The client's address is refused by the gateway's or the listener's IP lists. Message as MariaDB's. */
export class HostNotAllowedError extends MgwError {
  constructor(host: string) {
    super("MGW_ERR_HOST_NOT_ALLOWED", `Host '${host}' is not allowed to connect to this MariaDB server`);
  }
}

/** A gateway-wide, listener or cluster connection limit is reached. MariaDB's text unless `message` says more. */
export class TooManyConnectionsError extends MgwError {
  constructor(message = "Too many connections") {
    super("MGW_ERR_TOO_MANY_CONNECTIONS", message);
  }
}

/** The user's max_connections is reached. Message as MariaDB's (max_user_connections). */
export class UserTooManyConnectionsError extends MgwError {
  constructor(user: string) {
    super("MGW_ERR_USER_TOO_MANY_CONNECTIONS", `User ${user} already has more than 'max_user_connections' active connections`);
  }
}

/**
 * No pooled backend connection became free within the pool's acquire timeout
 * (every one of maxConnections in use). The message names the backend, the
 * backend user, the limit and what to change.
 */
export class PoolTimeoutError extends MgwError {
  readonly backend: string;
  readonly user: string;
  readonly maxConnections: number;
  readonly waitedMs: number;
  constructor(backend: string, user: string, maxConnections: number, waitedMs: number) {
    super(
      "MGW_ERR_POOL_TIMEOUT",
      `mysqlgw: no connection to ${backend} as backend user '${user}' became free within ${waitedMs} ms: ` +
        `all ${maxConnections} connections of its pool are in use; raise the cluster's pool.maxConnections ` +
        `(and the server's max_connections) or pool.acquireTimeout, or shorten the transactions that hold connections`,
    );
    this.backend = backend;
    this.user = user;
    this.maxConnections = maxConnections;
    this.waitedMs = waitedMs;
  }
}

/** A statement was refused by a quota (REJECT, a full queue or maxWait); the message names the quota and its figure (quota/quota-state.ts). */
export class QuotaExceededError extends MgwError {
  readonly quota: string;
  constructor(quota: string, message: string) {
    super("MGW_ERR_QUOTA_EXCEEDED", message);
    this.quota = quota;
  }
}

/**
 * A statement held for a planned switchover was not released by hold_until
 * (session/switchover-hold.ts). It did not run; the session goes on.
 */
export class SwitchoverHoldTimeoutError extends MgwError {
  constructor(cluster: string, holdMs: number) {
    super("MGW_ERR_SWITCHOVER_HOLD_TIMEOUT", `mysqlgw held this statement ${holdMs} ms for a planned switchover of cluster '${cluster}' that did not finish in time; the statement did not run — retry it (mysqlgw failovers shows what happened)`);
  }
}

/**
 * A transaction still open on the old primary when a planned switchover's
 * drain window ended: its backend connection was closed (the server rolled
 * the transaction back) and the client connection is closed after this error.
 */
export class SwitchoverTransactionEndedError extends MgwError {
  constructor(cluster: string, drainMs: number) {
    super("MGW_ERR_SWITCHOVER_TRANSACTION_ENDED", `Connection was killed: mysqlgw ended this transaction for a planned switchover of cluster '${cluster}' (it was still open ${drainMs} ms after the switchover began); it was rolled back — reconnect and retry the whole transaction`);
  }
}

export interface SqlErrorMapping {
  readonly errno: number;
  readonly sqlState: string;
}

/**
 * How each error reaches a MySQL client. Exhaustive by type: adding a code
 * without a row here does not compile.
 *
 * Server-side errnos only: libmariadb (the mariadb CLI, PHP builds on it)
 * replaces an ERR packet carrying a client-range errno (2000-2999, e.g. 2003)
 * during the handshake by "2027 Received malformed packet", losing our
 * message. Backend trouble is therefore 1105 ER_UNKNOWN_ERROR / HY000 with
 * a message that says what failed and what to check.
 */
export const SQL_ERRORS = {
  MGW_ERR_PROTOCOL_MALFORMED_PACKET: { errno: 1043, sqlState: "08S01" }, // ER_HANDSHAKE_ERROR "Bad handshake"
  MGW_ERR_PROTOCOL_PACKET_TOO_LARGE: { errno: 1153, sqlState: "08S01" }, // ER_NET_PACKET_TOO_LARGE
  MGW_ERR_PROTOCOL_UNSUPPORTED: { errno: 1043, sqlState: "08S01" },
  MGW_ERR_PROXY_PROTOCOL: { errno: 1043, sqlState: "08S01" }, // never sent: the connection is closed
  MGW_ERR_HANDSHAKE_TIMEOUT: { errno: 1043, sqlState: "08S01" },
  MGW_ERR_AUTH_ACCESS_DENIED: { errno: 1045, sqlState: "28000" }, // ER_ACCESS_DENIED_ERROR
  MGW_ERR_AUTH_UNSUPPORTED_PLUGIN: { errno: 1251, sqlState: "08004" }, // ER_NOT_SUPPORTED_AUTH_MODE
  MGW_ERR_SECRET_UNRESOLVABLE: { errno: 1105, sqlState: "HY000" },
  MGW_ERR_BACKEND_CONNECT: { errno: 1105, sqlState: "HY000" },
  MGW_ERR_BACKEND_TIMEOUT: { errno: 1105, sqlState: "HY000" },
  MGW_ERR_BACKEND_REJECTED: { errno: 1105, sqlState: "HY000" },
  MGW_ERR_BACKEND_PROTOCOL: { errno: 1105, sqlState: "HY000" },
  MGW_ERR_BACKEND_UNAVAILABLE: { errno: 1105, sqlState: "HY000" },
  MGW_ERR_BACKEND_LOST: { errno: 1105, sqlState: "HY000" }, // not sent: the client sees its own CR_SERVER_LOST (2013)
  MGW_ERR_BACKEND_TLS: { errno: 1105, sqlState: "HY000" },
  MGW_ERR_TLS_CONFIG: { errno: 1105, sqlState: "HY000" }, // never sent
  MGW_ERR_CONFIG_UNKNOWN_CLUSTER: { errno: 1105, sqlState: "HY000" },
  MGW_ERR_LISTENER_BIND: { errno: 1105, sqlState: "HY000" }, // ER_UNKNOWN_ERROR (never sent)
  MGW_ERR_SERVER_SHUTDOWN: { errno: 1053, sqlState: "08S01" }, // ER_SERVER_SHUTDOWN
  MGW_ERR_KILL_NO_SUCH_THREAD: { errno: 1094, sqlState: "HY000" }, // ER_NO_SUCH_THREAD
  MGW_ERR_KILL_DENIED: { errno: 1095, sqlState: "HY000" }, // ER_KILL_DENIED_ERROR
  MGW_ERR_CHANGE_USER_REFUSED: { errno: 1105, sqlState: "HY000" }, // ER_UNKNOWN_ERROR
  MGW_ERR_HOST_NOT_ALLOWED: { errno: 1130, sqlState: "HY000" }, // ER_HOST_NOT_PRIVILEGED
  MGW_ERR_TOO_MANY_CONNECTIONS: { errno: 1040, sqlState: "08004" }, // ER_CON_COUNT_ERROR
  MGW_ERR_USER_TOO_MANY_CONNECTIONS: { errno: 1203, sqlState: "42000" }, // ER_TOO_MANY_USER_CONNECTIONS
  MGW_ERR_POOL_TIMEOUT: { errno: 1040, sqlState: "08004" }, // ER_CON_COUNT_ERROR, with our message
  // ER_LOCK_WAIT_TIMEOUT: a wait that timed out, the statement not run, the session intact — drivers retry it as transient
  MGW_ERR_SWITCHOVER_HOLD_TIMEOUT: { errno: 1205, sqlState: "HY000" },
  // ER_CONNECTION_KILLED (MariaDB): what a killed connection reports; the transaction is rolled back and the connection closed
  MGW_ERR_SWITCHOVER_TRANSACTION_ENDED: { errno: 1927, sqlState: "70100" },
  MGW_ERR_QUOTA_EXCEEDED: { errno: 1226, sqlState: "42000" }, // ER_USER_LIMIT_REACHED, with our message
  MGW_ERR_FLAGS_INVALID: { errno: 1105, sqlState: "HY000" }, // never sent
  MGW_ERR_ETCD_TIMEOUT: { errno: 1105, sqlState: "HY000" }, // never sent
  MGW_ERR_WORKER_APPLY_FAILED: { errno: 1105, sqlState: "HY000" }, // never sent
  MGW_ERR_WORKER_APPLY_TIMEOUT: { errno: 1105, sqlState: "HY000" }, // never sent
  MGW_ERR_WORKER_EXITED: { errno: 1105, sqlState: "HY000" }, // never sent
  MGW_ERR_WORKER_DRAINING: { errno: 1105, sqlState: "HY000" }, // never sent
  MGW_ERR_WORKER_METRICS: { errno: 1105, sqlState: "HY000" }, // never sent
} as const satisfies Record<MgwErrorCode, SqlErrorMapping>;

export interface SqlError {
  errno: number;
  sqlState: string;
  message: string;
}

/** The ERR packet fields for any thrown value; unknown errors become 1105/HY000. */
export function toSqlError(err: unknown): SqlError {
  if (err instanceof MgwError) {
    const m: SqlErrorMapping = SQL_ERRORS[err.code];
    const message = err.code === "MGW_ERR_PROTOCOL_MALFORMED_PACKET" ? "Bad handshake" : err.message;
    return { errno: m.errno, sqlState: m.sqlState, message };
  }
  return { errno: 1105, sqlState: "HY000", message: "mysqlgw: internal error" };
}

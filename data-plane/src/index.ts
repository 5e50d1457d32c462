// @mysqlgw/data-plane public surface. What the process side (main.ts,
// supervisor) and tests use comes first; protocol internals are @internal.
export { createListenerManager, DEFAULT_DATA_PLANE_OPTIONS } from "./listener-manager";
export type { ListenerManager, ApplyResult, DataPlaneOptions } from "./types";
export { resolveSecretRef } from "./secrets";
export {
  MgwError,
  SQL_ERRORS,
  toSqlError,
  MalformedPacketError,
  PacketTooLargeError,
  UnsupportedProtocolError,
  HandshakeTimeoutError,
  AccessDeniedError,
  UnsupportedAuthPluginError,
  SecretResolutionError,
  BackendConnectError,
  BackendTimeoutError,
  BackendRejectedError,
  BackendProtocolError,
  NoBackendAvailableError,
  BackendLostError,
  UnknownClusterError,
  ListenerBindError,
  ServerShutdownError,
} from "./errors";
export type { MgwErrorCode, SqlError, SqlErrorMapping } from "./errors";
/** @internal The wire protocol (pure). Not a stable API. */
export * as protocol from "./protocol";

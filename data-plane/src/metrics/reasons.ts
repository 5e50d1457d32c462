import { MgwError, type MgwErrorCode } from "../errors";
import type { AuthRefusalReason, BackendConnectFailureReason, HandshakeFailureReason } from "./data-plane-metrics";

/** The reason label of a handshake that ended with `err` (see DataPlaneMetrics.handshakeFailed). */
export function handshakeFailureReason(err: unknown): HandshakeFailureReason | AuthRefusalReason {
  if (!(err instanceof MgwError)) return "other";
  return HANDSHAKE_REASONS[err.code as MgwErrorCode] ?? "other";
}

const HANDSHAKE_REASONS: Partial<Record<MgwErrorCode, HandshakeFailureReason | AuthRefusalReason>> = {
  MGW_ERR_AUTH_ACCESS_DENIED: "access_denied",
  MGW_ERR_USER_TOO_MANY_CONNECTIONS: "user_full",
  // during a handshake only every backend of the cluster being full gives 1040
  MGW_ERR_TOO_MANY_CONNECTIONS: "cluster_full",
  MGW_ERR_HANDSHAKE_TIMEOUT: "timeout",
  MGW_ERR_PROTOCOL_MALFORMED_PACKET: "bad_handshake",
  MGW_ERR_PROTOCOL_PACKET_TOO_LARGE: "bad_handshake",
  MGW_ERR_PROTOCOL_UNSUPPORTED: "bad_handshake",
  MGW_ERR_PROXY_PROTOCOL: "proxy_protocol",
  MGW_ERR_AUTH_UNSUPPORTED_PLUGIN: "unsupported_plugin",
  MGW_ERR_BACKEND_UNAVAILABLE: "no_backend",
  MGW_ERR_CONFIG_UNKNOWN_CLUSTER: "unknown_cluster",
  MGW_ERR_SERVER_SHUTDOWN: "shutdown",
};

/** The reason label of a failed backend login. */
export function backendConnectFailureReason(err: unknown): BackendConnectFailureReason {
  if (!(err instanceof MgwError)) return "other";
  switch (err.code as MgwErrorCode) {
    case "MGW_ERR_BACKEND_CONNECT":
    case "MGW_ERR_BACKEND_LOST":
      return "connect";
    case "MGW_ERR_BACKEND_TIMEOUT":
      return "timeout";
    case "MGW_ERR_BACKEND_REJECTED":
      return "rejected";
    case "MGW_ERR_BACKEND_PROTOCOL":
    case "MGW_ERR_PROTOCOL_MALFORMED_PACKET":
    case "MGW_ERR_PROTOCOL_PACKET_TOO_LARGE":
    case "MGW_ERR_AUTH_UNSUPPORTED_PLUGIN":
      return "protocol";
    case "MGW_ERR_BACKEND_TLS":
      return "tls";
    default:
      return "other";
  }
}

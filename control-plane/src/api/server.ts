import * as http from "node:http";
import * as http2 from "node:http2";
import * as net from "node:net";
import * as tls from "node:tls";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import type { Registry } from "prom-client";
import { AdminService, AuditService, HistoryService, ReplicationService } from "@mysqlgw/proto";
import { createApiSecurity, type ApiSecurityLogger } from "./api-security";
import type { AuditLog } from "./audit";
import { createAuditRestHandler } from "./audit-rest";
import { createAuditService } from "./audit-service";
import { createAuthenticator, type Authenticator } from "./tokens";
import type { AdminServiceImpl } from "./admin-service";
import { createHistoryRestHandler } from "./history-rest";
import { createReplicationRestHandler, registerReplicationService } from "../replication/replication-rest";
import type { ReplicationServiceImpl } from "../replication/replication-service";
import { createDigestsRestHandler } from "./digests-rest";
import type { DigestSource } from "../digests/published-digests";
import { createHistoryService, versionsFromAdmin, type HistoryServiceImpl, type VersionReader } from "./history-service";
import { registerReflection } from "./reflection";
import { createRestHandler, DEFAULT_MAX_BODY_BYTES, type RestHandlerOptions } from "./rest";

export interface ControlPlaneServerOptions extends RestHandlerOptions {
  service: AdminServiceImpl;
  /** The HistoryService; default: one over `versions` (else the AdminService's GetPolicy) that rolls back through `service`. */
  history?: HistoryServiceImpl;
  /** Where the default HistoryService reads versions (pass the ConfigStore); default: through `service`'s GetPolicy. */
  versions?: VersionReader;
  /** Address to listen on. Default 127.0.0.1. */
  host?: string;
  /** Port; 0 picks a free one (see `address`). Default 7070. */
  port?: number;
  /** A connection that sends nothing for this long before its first bytes is closed. Default 10000 ms. */
  firstBytesTimeoutMs?: number;
  /** The data planes' published query digests, for GET /v1/digests; absent: that route is 404. */
  digests?: DigestSource;
  /** The ReplicationService (replication operations; control-plane/src/replication), served with its REST routes; absent: not served. */
  replication?: ReplicationServiceImpl;
  /** TLS on the port (PEM): every protocol then runs over TLS (ALPN h2 → gRPC/HTTP/2, else HTTP/1.1). `clientCa`: ask for client certificates (api-security decides). */
  tls?: { cert: Buffer | string; key: Buffer | string; clientCa?: Buffer | string };
  /** Who may call (tokens, client certificates); absent: everyone, as "anonymous" with role admin. */
  authenticator?: Authenticator;
  /** Where mutating and refused calls are recorded, and what AuditService serves; absent: no audit log (and no AuditService). */
  audit?: AuditLog;
  logger?: ApiSecurityLogger;
  /** Registry of GET /metrics, for the API security counters (mysqlgw_api_refused_total, mysqlgw_audit_records_total). */
  metricsRegistry?: Registry;
}

export interface ControlPlaneServer {
  /** The bound address (the actual port when 0 was asked for). */
  readonly address: { host: string; port: number };
  /** Stops accepting, closes every open connection, resolves when done. */
  close(): Promise<void>;
}

export const DEFAULT_FIRST_BYTES_TIMEOUT_MS = 10_000;

/** What an HTTP/2 client sends first (RFC 9113 §3.4); no HTTP/1 method starts with "PRI". */
const H2_PREFACE = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "latin1");

/**
 * Serves the AdminService (and the HistoryService) on ONE port for every protocol: the first bytes of a
 * connection decide. The HTTP/2 preface goes to an h2c server (gRPC for
 * @grpc/grpc-js and grpcurl -plaintext; Connect and REST over h2 too); anything
 * else goes to an HTTP/1.1 server (Connect protocol, gRPC-Web, and REST JSON
 * under /v1/ for curl). Both servers share one request handler.
 */
export function startControlPlaneServer(options: ControlPlaneServerOptions): Promise<ControlPlaneServer> {
  const history = options.history ?? createHistoryService({ versions: options.versions ?? versionsFromAdmin(options.service), admin: options.service });
  const restCore = createHistoryRestHandler(history, createRestHandler(options.service, options));
  const restRoutes = options.replication === undefined ? restCore : createReplicationRestHandler(options.replication, restCore);
  const restWithDigests = options.digests === undefined ? restRoutes : createDigestsRestHandler(options.digests, restRoutes);
  // API security (docs/security.md): one interceptor for everything Connect routes, one wrapper around all REST routes.
  const security = createApiSecurity({
    authenticator: options.authenticator ?? createAuthenticator({ tokens: null, clientCertificates: false, mtlsRole: null }),
    audit: options.audit ?? null,
    logger: options.logger,
    maxBodyBytes: options.maxBodyBytes,
    metricsRegistry: options.metricsRegistry,
  });
  const audit = options.audit === undefined ? undefined : createAuditService(options.audit);
  const rest = audit === undefined ? restWithDigests : createAuditRestHandler(audit, restWithDigests);
  const handler = connectNodeAdapter({
    routes: (router) => {
      router.service(AdminService, options.service);
      router.service(HistoryService, history);
      registerReplicationService(router, options.replication);
      if (audit !== undefined) router.service(AuditService, audit);
      registerReflection(router, [AdminService, HistoryService, ...(audit === undefined ? [] : [AuditService]), ...(options.replication === undefined ? [] : [ReplicationService])]);
    },
    fallback: security.rest(rest),
    interceptors: [security.interceptor],
    contextValues: security.contextValues,
    readMaxBytes: options.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES,
  });
  const h1 = http.createServer(handler);
  const h2 = http2.createServer({}, handler);
  const sockets = new Set<net.Socket>();
  const firstBytesTimeoutMs = options.firstBytesTimeoutMs ?? DEFAULT_FIRST_BYTES_TIMEOUT_MS;

  const onPlainConnection = (socket: net.Socket): void => {
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
    let seen: Buffer = Buffer.alloc(0);
    const timer = setTimeout(() => socket.destroy(), firstBytesTimeoutMs);
    const onData = (chunk: Buffer): void => {
      seen = seen.length === 0 ? chunk : Buffer.concat([seen, chunk]);
      const n = Math.min(seen.length, H2_PREFACE.length);
      const maybeH2 = seen.subarray(0, n).equals(H2_PREFACE.subarray(0, n));
      if (maybeH2 && n < 4) return; // too few bytes to tell "PRI " from an HTTP/1 method
      clearTimeout(timer);
      socket.removeListener("data", onData);
      socket.removeListener("error", onEarlyError);
      socket.pause();
      socket.unshift(seen);
      if (maybeH2) {
        // The http2 session drains the socket's buffer itself (socket.read());
        // resuming here would hand the preface to nobody.
        h2.emit("connection", socket);
      } else {
        // The http1 parser needs the buffered bytes as 'data' events.
        h1.emit("connection", socket);
        socket.resume();
      }
    };
    const onEarlyError = (): void => {
      clearTimeout(timer);
      socket.destroy();
    };
    socket.on("data", onData);
    socket.on("error", onEarlyError);
  };
  let server: net.Server;
  if (options.tls === undefined) {
    server = net.createServer(onPlainConnection);
  } else {
    // Over TLS, ALPN decides: "h2" (gRPC clients, curl) → HTTP/2, anything else → HTTP/1.1.
    // Client certificates are asked for, not required, so that /v1/health and /metrics stay
    // open; api-security refuses every other call without a verified one.
    server = tls.createServer({
      cert: options.tls.cert,
      key: options.tls.key,
      ...(options.tls.clientCa === undefined ? {} : { ca: options.tls.clientCa, requestCert: true, rejectUnauthorized: false }),
      ALPNProtocols: ["h2", "http/1.1"],
      minVersion: "TLSv1.2",
      handshakeTimeout: firstBytesTimeoutMs,
    }, (socket) => {
      if (socket.alpnProtocol === "h2") {
        h2.emit("connection", socket);
      } else {
        h1.emit("connection", socket);
      }
    });
    server.on("connection", (raw: net.Socket) => {
      sockets.add(raw);
      raw.once("close", () => sockets.delete(raw));
    });
    // plain HTTP or a failed handshake: the connection is closed (nothing else to answer in)
    server.on("tlsClientError", () => undefined);
  }

  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port ?? 7070, options.host ?? "127.0.0.1", () => {
      server.removeListener("error", reject);
      const a = server.address() as net.AddressInfo;
      resolve({
        address: { host: a.address, port: a.port },
        close: () => new Promise<void>((done) => {
          server.close(() => done());
          h1.closeAllConnections();
          for (const s of sockets) s.destroy();
        }),
      });
    });
  });
}

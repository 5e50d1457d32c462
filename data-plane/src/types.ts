import type { BackendHealth, ClusterEpoch, ConfigVersion } from "@mysqlgw/proto";

/**
 * The seam between a worker process's network side (listeners, client
 * sessions, backend connections) and whatever feeds it configuration (the
 * supervisor over IPC, or a test directly).
 *
 * Calls are serialized by the caller: apply() is never called again before the
 * previous apply() settled, and drain() is the last call.
 */
export interface ListenerManager {
  /**
   * Moves to `config`: opens listeners that are new, stops accepting on listeners
   * that are gone (their open connections keep working until they end),
   * and re-targets changed listeners for new connections only. Connections
   * already open keep their backend and users until they close.
   * Resolves once every listener of `config` accepts connections; rejects
   * (and keeps serving the previous config) if a listener cannot bind.
   */
  apply(config: ConfigVersion): Promise<ApplyResult>;
  /** Stops accepting everywhere, waits for open client connections to end up to
   * `timeoutMs`, then closes the rest with an error packet and resolves. */
  drain(timeoutMs: number): Promise<void>;
  /** Client connections currently open. */
  connectionCount(): number;
  /**
   * KILL of a connection of THIS worker (the supervisor routed it here by the
   * id's worker bits); never forwards. May run concurrently with anything.
   */
  killLocal?(req: KillRequest): Promise<KillResult>;
  /**
   * The monitor's health of one backend changed in etcd (null: its key is
   * gone). Lands at once in that cluster's ClusterState (created if no config
   * named the cluster yet), whatever apply() is doing. Synchronous; never throws.
   */
  applyHealth?(cluster: string, backend: string, health: BackendHealth | null): void;
  /**
   * A cluster's failover epoch changed in etcd (null: its key is gone): its
   * fenced former primaries take nothing (ClusterState.applyEpoch). Synchronous; never throws.
   */
  applyEpoch?(cluster: string, epoch: ClusterEpoch | null): void;
}

/** A client's KILL, by the connection id it got in our handshake. */
export interface KillRequest {
  /** Connection id to kill (its top 8 bits are the worker index). */
  target: number;
  /** The mysqlgw user asking; only the same user may kill. */
  user: string;
  /** KILL QUERY (the running statement) rather than the connection. */
  query: boolean;
}

/** errno 0: done (the client gets OK); else the ERR packet's fields. */
export interface KillResult {
  errno: number;
  sqlState: string;
  message: string;
}

export interface ApplyResult {
  version: bigint;
  /** Names of listeners now accepting connections. */
  listening: string[];
}

/** Deployment settings of a data plane (flags / environment), not policy. */
export interface DataPlaneOptions {
  /** Handshake must complete within this; default 10000 ms. */
  handshakeTimeoutMs: number;
  /** Connect + authenticate to a backend within this; default 5000 ms. */
  backendConnectTimeoutMs: number;
  /** Largest client packet payload accepted; default 64 MiB. */
  maxPacketSize: number;
  /** Worker index within this host (0-based), used to make connection ids unique per host. */
  workerIndex: number;
  /**
   * Worker processes of this data plane (default 1). Connection limits are
   * counted per process; each worker keeps to ceil(limit / workerCount).
   */
  workerCount?: number;
  /** Largest packet accepted during a handshake, from clients or backends; default 128 KiB. */
  maxHandshakePacketSize?: number;
  /** PEM files of TLS toward clients (--tls-cert, --tls-key, optional --tls-ca); none: no TLS. */
  tlsCertFile?: string;
  tlsKeyFile?: string;
  tlsCaFile?: string;
  /** RSA key pair of caching_sha2_password (--rsa-private-key/--rsa-public-key); none: generated per process. */
  rsaPrivateKeyFile?: string;
  rsaPublicKeyFile?: string;
  /** Entries of the caching_sha2_password fast-path cache per worker; default 100000. */
  sha2CacheSize?: number;
  /** Phase-hook plugin module (--plugin); absent or "": none. */
  pluginFile?: string;
  /** Budget of one hook call (--plugin-budget); default 5 ms. */
  pluginBudgetMs?: number;
  /** --bind-address: every listener binds here instead of its policy bindAddress; absent or "": as the policy says. */
  bindAddress?: string;
  /** Sends a KILL for a connection of another worker (through the supervisor); absent with one process. */
  remoteKill?: (req: KillRequest) => Promise<KillResult>;
}

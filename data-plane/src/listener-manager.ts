import * as net from "node:net";
import { setBackendViewsProvider } from "./observe/worker-observation";
import { setTracingView } from "./observe/tracing-settings";
import type { Logger } from "pino";
import type { BackendHealth, ClusterEpoch, ConfigVersion } from "@mysqlgw/proto";
import { HostNotAllowedError, ListenerBindError, TooManyConnectionsError, toSqlError, type MgwError } from "./errors";
import type { ApplyResult, DataPlaneOptions, KillRequest, KillResult, ListenerManager } from "./types";
import { KillDeniedError, NoSuchThreadError } from "./errors";
import { KILL_OK, killBackendThread, killResultOf } from "./session/kill";
import type { RoutedSession } from "./session/routed-session";
import { compileConfig, createClusterRuntime, type ClusterRuntime, type ClusterSnapshot, type ListenerSnapshot } from "./session/config-snapshot";
import { learnClusterGreeting } from "./session/backend-probe";
import { PoolManager } from "./pool/backend-pool";
import { Mirror } from "./session/mirror";
import { ResultCaches } from "./session/result-cache";
import { DEFAULT_PLUGIN_BUDGET_MS, loadPhasePlugin, PhaseHooks } from "./plugins/phase-hooks";
import { createTableExtractor } from "./routing/tables";
import { FrontendSession, type SessionHost, type SessionOptions } from "./session/frontend-session";
import { CachingSha2Cache } from "./session/client-auth";
import { loadClientTls, loadRsaKeyPair } from "./session/tls";
import { ConnectionLimits, SessionSlots, type AccessCounters } from "./session/access";
import { buildErr } from "./protocol/packets/err";
import { metrics, type BackendState, type PoolStats } from "./metrics";
import { setSwitchoverSessions } from "./session/switchover-hold";
import { quotas } from "./quota";

/** Defaults of every DataPlaneOptions field. */
export const DEFAULT_DATA_PLANE_OPTIONS: Required<Omit<DataPlaneOptions, "remoteKill">> = {
  handshakeTimeoutMs: 10_000,
  backendConnectTimeoutMs: 5_000,
  maxPacketSize: 64 * 1024 * 1024,
  workerIndex: 0,
  workerCount: 1,
  maxHandshakePacketSize: 128 * 1024,
  tlsCertFile: "",
  tlsKeyFile: "",
  tlsCaFile: "",
  rsaPrivateKeyFile: "",
  rsaPublicKeyFile: "",
  sha2CacheSize: 100_000,
  pluginFile: "",
  pluginBudgetMs: 5,
  bindAddress: "",
};

/** Bound on learning a new cluster's greeting before its listeners open (see backend-probe.ts). */
const GREETING_PROBE_MAX_MS = 1000;

/** Bits of a connection id that carry the worker index (the top ones). */
const WORKER_BITS = 8;
const COUNTER_MASK = (1 << (32 - WORKER_BITS)) - 1;

interface ListenerEntry {
  /** Swapped by apply(); read once per accepted connection. */
  snapshot: ListenerSnapshot;
  readonly server: net.Server;
}

/**
 * Creates the per-worker network side: one net.Server per Listener of the
 * applied config, a FrontendSession per accepted connection.
 *
 * Works unchanged under node:cluster: listen() in a worker shares the port
 * through the primary (no `exclusive`).
 */
export function createListenerManager(options: DataPlaneOptions & { logger: Logger }): ListenerManager {
  return new ListenerManagerImpl(options);
}

class ListenerManagerImpl implements ListenerManager, SessionHost {
  readonly logger: Logger;
  private readonly sessionOptions: SessionOptions;
  /** Backend connection pools of this worker's routed listeners. */
  private readonly pools: PoolManager;
  /** Query rules' result caches of this worker, kept across config versions. */
  private readonly caches = new ResultCaches();
  private readonly workerBits: number;
  private readonly entries = new Map<string, ListenerEntry>();
  private readonly sessions = new Set<FrontendSession>();
  /** Open sessions by connection id, for KILL. */
  private readonly byId = new Map<number, FrontendSession>();
  private readonly remoteKill: ((req: KillRequest) => Promise<KillResult>) | null;
  private readonly runtimes = new Map<string, ClusterRuntime>();
  private counter = 0;
  /** Connection counts and refusal counters of this worker (see session/access.ts). */
  private readonly limits: ConnectionLimits;
  private draining = false;
  private drained: (() => void) | null = null;
  /** --bind-address ("" = each listener's own). */
  private readonly bindAddress: string;

  constructor(options: DataPlaneOptions & { logger: Logger }) {
    this.logger = options.logger;
    this.bindAddress = options.bindAddress ?? "";
    const d = DEFAULT_DATA_PLANE_OPTIONS;
    this.pools = new PoolManager(options.logger);
    const hooks = options.pluginFile ? new PhaseHooks(loadPhasePlugin(options.pluginFile), options.pluginBudgetMs || DEFAULT_PLUGIN_BUDGET_MS, options.logger) : null;
    if (hooks !== null) options.logger.info({ plugin: options.pluginFile }, "phase-hook plugin loaded");
    this.sessionOptions = {
      handshakeTimeoutMs: options.handshakeTimeoutMs || d.handshakeTimeoutMs,
      backendConnectTimeoutMs: options.backendConnectTimeoutMs || d.backendConnectTimeoutMs,
      maxPacketSize: options.maxPacketSize || d.maxPacketSize,
      maxHandshakePacketSize: options.maxHandshakePacketSize || d.maxHandshakePacketSize,
      clientTls: loadClientTls(options),
      auth: { rsa: loadRsaKeyPair(options), cache: new CachingSha2Cache(options.sha2CacheSize || d.sha2CacheSize) },
      hooks,
      routed: {
        hooks,
        mirror: new Mirror(this.pools, options.logger),
        caches: this.caches,
        pools: this.pools,
        tables: createTableExtractor(),
        backendConnectTimeoutMs: options.backendConnectTimeoutMs || d.backendConnectTimeoutMs,
        maxHandshakePacketSize: options.maxHandshakePacketSize || d.maxHandshakePacketSize,
        maxPacketSize: options.maxPacketSize || d.maxPacketSize,
      },
    };
    this.pools.startSweeping();
    // mysqlgw_backend_* gauges: read from the clusters' backend state at each scrape
    metrics.setBackendStateProvider(() => backendStateFigures(this.runtimes));
    // the admin port's `backends` table (observe/worker-observation.ts)
    setBackendViewsProvider(() => [...this.runtimes].map(([cluster, rt]) => ({ cluster, backends: rt.state.snapshot(Date.now()) })));
    // a planned switchover counts and ends the routed sessions' open transactions (session/switchover-hold.ts)
    setSwitchoverSessions(() => this.sessions, (cluster) => this.runtimes.get(cluster)?.state ?? null);
    metrics.setPoolStatsProvider(() => {
      const out: PoolStats[] = [];
      this.pools.forEach((_key, pool) => out.push({ ...pool.identity, ...pool.stats() }));
      return out;
    });
    this.remoteKill = options.remoteKill ?? null;
    this.limits = new ConnectionLimits(options.workerCount ?? d.workerCount);
    const w = options.workerIndex ?? 0;
    if (w >= 1 << WORKER_BITS) this.logger.warn({ workerIndex: w }, "worker index above 255: connection ids may collide across workers");
    this.workerBits = ((w & ((1 << WORKER_BITS) - 1)) << (32 - WORKER_BITS)) >>> 0;
  }

  applyHealth(cluster: string, backend: string, health: BackendHealth | null): void {
    let rt = this.runtimes.get(cluster);
    if (rt === undefined) {
      rt = createClusterRuntime(cluster, { logger: this.logger });
      this.runtimes.set(cluster, rt);
    }
    rt.state.applyHealth(backend, health, Date.now());
  }

  applyEpoch(cluster: string, epoch: ClusterEpoch | null): void {
    let rt = this.runtimes.get(cluster);
    if (rt === undefined) {
      rt = createClusterRuntime(cluster, { logger: this.logger });
      this.runtimes.set(cluster, rt);
    }
    rt.state.applyEpoch(epoch);
  }

  async apply(config: ConfigVersion): Promise<ApplyResult> {
    if (this.draining) throw new Error("apply() after drain()");
    const compiled = compileConfig(config, this.runtimes, { logger: this.logger }, this.bindAddress);
    this.caches.sync(compiled.listeners[0]?.rules.actions ?? [], Date.now());
    for (const u of compiled.invalidUsers) {
      this.logger.warn({ user: u, version: String(config.version) }, "user has an invalid password_hash (want *HEX40) or caching_sha2_password_hash (want $A$005$…); nobody can log in as it");
    }
    const desired = new Set<string>();
    const keep: Array<[ListenerEntry, ListenerSnapshot]> = [];
    const toOpen: ListenerSnapshot[] = [];
    const toClose: ListenerEntry[] = [];
    for (const snap of compiled.listeners) {
      desired.add(snap.name);
      const existing = this.entries.get(snap.name);
      if (existing !== undefined && existing.snapshot.bindAddress === snap.bindAddress && existing.snapshot.port === snap.port) {
        keep.push([existing, snap]);
      } else {
        toOpen.push(snap);
        if (existing !== undefined) toClose.push(existing);
      }
      if (snap.cluster === null) {
        this.logger.error({ listener: snap.name, cluster: snap.clusterName }, "listener refers to an unknown cluster; its clients will get an error");
      }
    }
    for (const [name, entry] of this.entries) if (!desired.has(name)) toClose.push(entry);

    // Greet the first client of a cluster as every later one: learn what its servers announce first.
    const unknown = new Map<string, ClusterSnapshot>();
    for (const snap of compiled.listeners) {
      if (snap.cluster !== null && snap.cluster.runtime.serverVersion === null) unknown.set(snap.cluster.name, snap.cluster);
    }
    const probeMs = Math.min(this.sessionOptions.backendConnectTimeoutMs, GREETING_PROBE_MAX_MS);
    await Promise.all([...unknown.values()].map((c) => learnClusterGreeting(c, probeMs, this.logger)));

    // A port we are about to open that a closing listener holds must be freed first.
    const openPorts = new Set(toOpen.map((s) => s.port));
    const closeFirst = toClose.filter((e) => openPorts.has(e.snapshot.port));
    const closeLater = toClose.filter((e) => !openPorts.has(e.snapshot.port));
    for (const e of closeFirst) e.server.close();

    const opened: ListenerEntry[] = [];
    try {
      for (const snap of toOpen) opened.push(await this.open(snap));
    } catch (err) {
      for (const o of opened) o.server.close();
      // best effort: give back what we closed
      const restored: ListenerEntry[] = [];
      for (const e of closeFirst) {
        try {
          restored.push(await this.open(e.snapshot));
        } catch (again) {
          this.logger.error({ listener: e.snapshot.name, err: (again as Error).message }, "could not restore listener after a failed apply");
          this.entries.delete(e.snapshot.name);
        }
      }
      for (const r of restored) this.entries.set(r.snapshot.name, r);
      throw err;
    }
    for (const e of closeLater) e.server.close();

    for (const [entry, snap] of keep) entry.snapshot = snap;
    setTracingView(compiled.tracing, compiled.clusters);
    quotas.activate(compiled.quotas);
    for (const e of toClose) {
      if (this.entries.get(e.snapshot.name) === e) this.entries.delete(e.snapshot.name);
      this.logger.info({ listener: e.snapshot.name, port: e.snapshot.port }, "listener closed");
    }
    for (const o of opened) {
      this.entries.set(o.snapshot.name, o);
      this.logger.info({ listener: o.snapshot.name, address: o.snapshot.bindAddress, port: o.snapshot.port }, "listener open");
    }
    return { version: config.version, listening: [...this.entries.keys()] };
  }

  async drain(timeoutMs: number): Promise<void> {
    this.draining = true;
    for (const e of this.entries.values()) e.server.close();
    this.entries.clear();
    if (this.sessions.size > 0) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.max(0, timeoutMs));
        this.drained = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.drained = null;
    }
    if (this.sessions.size > 0) {
      this.logger.info({ sessions: this.sessions.size }, "drain timeout: closing remaining connections");
      for (const s of [...this.sessions]) s.shutdown();
    }
    this.pools.close();
  }

  connectionCount(): number {
    return this.sessions.size;
  }

  /** Refusals by reason since start (a copy). */
  accessCounters(): AccessCounters {
    return { ...this.limits.counters };
  }

  /** Connection-limit slots held now (see session/access.ts). */
  slotsInUse(): ReturnType<ConnectionLimits["inUse"]> {
    return this.limits.inUse();
  }

  sessionClosed(session: FrontendSession): void {
    session.slots?.release();
    session.slots = null;
    if (this.sessions.delete(session)) metrics.connectionClosed(session.listener.name);
    if (this.byId.get(session.connectionId) === session) this.byId.delete(session.connectionId);
    if (this.sessions.size === 0 && this.drained !== null) this.drained();
  }

  /** A KILL from one of our sessions: here when the id's worker bits are ours, else through the supervisor. */
  killConnection(req: KillRequest): Promise<KillResult> {
    const ours = (req.target & ~COUNTER_MASK) >>> 0 === this.workerBits;
    if (ours || this.remoteKill === null) return this.killLocal(req);
    return this.remoteKill(req).catch((err: unknown) => killResultOf(err));
  }

  async killLocal(req: KillRequest): Promise<KillResult> {
    const session = this.byId.get(req.target);
    const routed = session?.routedSession() ?? null;
    if (session !== undefined && routed !== null) return this.killRouted(session, routed, req);
    const target = session?.killTarget() ?? null;
    if (target === null) return killResultOf(new NoSuchThreadError(req.target));
    if (target.user !== req.user) return killResultOf(new KillDeniedError(req.target));
    return killBackendThread(target, req.query, {
      timeoutMs: this.sessionOptions.backendConnectTimeoutMs,
      maxHandshakePacketSize: this.sessionOptions.maxHandshakePacketSize,
    });
  }

  /**
   * KILL of a session on a routed listener: its statement under way (if any)
   * is interrupted on the backend connection running it; KILL CONNECTION then
   * closes the client's connection (its backend connections go back to the pool).
   */
  private async killRouted(session: FrontendSession, routed: RoutedSession, req: KillRequest): Promise<KillResult> {
    if (routed.ownerName() !== req.user) return killResultOf(new KillDeniedError(req.target));
    const t = routed.beginKill();
    let r: KillResult = KILL_OK;
    try {
      if (t !== null) {
        r = await killBackendThread(t, true, { timeoutMs: this.sessionOptions.backendConnectTimeoutMs, maxHandshakePacketSize: this.sessionOptions.maxHandshakePacketSize });
        // the statement ended on its own meanwhile: nothing left to interrupt
        if (r.errno === 1094) r = KILL_OK;
      }
    } finally {
      routed.endKill();
    }
    if (!req.query) session.killed();
    return r;
  }

  private nextConnectionId(): number {
    this.counter = (this.counter + 1) & COUNTER_MASK;
    if (this.counter === 0) this.counter = 1;
    return (this.workerBits | this.counter) >>> 0;
  }

  private accept(entry: ListenerEntry, socket: net.Socket): void {
    if (this.draining) {
      socket.destroy();
      return;
    }
    const slots = this.admit(entry.snapshot, socket);
    if (slots === null) return;
    const session = new FrontendSession(socket, entry.snapshot, this.nextConnectionId(), this.sessionOptions, this);
    session.slots = slots;
    this.sessions.add(session);
    metrics.connectionAccepted(entry.snapshot.name);
    this.byId.set(session.connectionId, session);
    session.start();
  }

  /**
   * The gateway's and the listener's IP lists, then their connection limits,
   * before any handshake byte. The address checked is the TCP peer's: a PROXY
   * header (if any) has not been read yet, so behind a load balancer these
   * lists see the balancer (the user's lists, at auth, see the real client).
   * A refused client gets one ERR packet (sequence id 0, as MariaDB sends it)
   * and the connection is closed.
   */
  private admit(snap: ListenerSnapshot, socket: net.Socket): SessionSlots | null {
    const peer = socket.remoteAddress ?? "";
    const g = snap.gateway;
    let err: MgwError;
    if ((g.access !== null && !g.access.permits(peer)) || (snap.access !== null && !snap.access.permits(peer))) {
      this.limits.counters.hostNotAllowed++;
      metrics.connectionRefused(snap.name, "host_not_allowed");
      err = new HostNotAllowedError(peer.startsWith("::ffff:") ? peer.slice(7) : peer);
    } else {
      const r = SessionSlots.admit(this.limits, g.maxConnections, snap.name, snap.maxConnections);
      if (typeof r !== "string") return r;
      metrics.connectionRefused(snap.name, r === "gateway" ? "gateway_full" : "listener_full");
      err = new TooManyConnectionsError();
    }
    this.logger.info({ listener: snap.name, peer, err: err.message, refusals: this.limits.counters }, "connection refused at accept");
    socket.on("error", noop);
    socket.end(buildErr(toSqlError(err), 0), () => socket.destroy());
    setTimeout(destroySocket, this.sessionOptions.handshakeTimeoutMs, socket).unref();
    return null;
  }

  private open(snap: ListenerSnapshot): Promise<ListenerEntry> {
    const server = net.createServer({ noDelay: true });
    const entry: ListenerEntry = { snapshot: snap, server };
    server.on("connection", (socket: net.Socket) => this.accept(entry, socket));
    return new Promise<ListenerEntry>((resolve, reject) => {
      const onError = (err: Error): void => {
        server.removeListener("listening", onListening);
        reject(new ListenerBindError(snap.name, snap.bindAddress, snap.port, { cause: err }));
      };
      const onListening = (): void => {
        server.removeListener("error", onError);
        server.on("error", (err: Error) => this.logger.error({ listener: snap.name, err: err.message }, "listener error"));
        resolve(entry);
      };
      server.once("error", onError);
      server.once("listening", onListening);
      server.listen({ host: snap.bindAddress, port: snap.port, backlog: 511 });
    });
  }
}

function noop(): void {}

function destroySocket(s: net.Socket): void {
  s.destroy();
}

/** Every configured backend of every cluster as this worker routes on it (the mysqlgw_backend_* gauges). */
function backendStateFigures(runtimes: ReadonlyMap<string, ClusterRuntime>): BackendState[] {
  const out: BackendState[] = [];
  const now = Date.now();
  for (const [cluster, rt] of runtimes) {
    for (const v of rt.state.snapshot(now)) {
      if (!v.inConfig) continue;
      out.push({ cluster, backend: v.name, up: v.up, replicationLagSeconds: v.lagMs === null ? null : v.lagMs / 1000, outstandingStatements: v.outstanding });
    }
  }
  return out;
}

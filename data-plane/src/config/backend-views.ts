import * as net from "node:net";
import { create, fromJsonString, toJsonString } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { Etcd3, type IKeyValue, type Lease, type Watcher } from "etcd3";
import { etcdSecurityOptions } from "@mysqlgw/proto";
import type { Logger } from "pino";
import { BackendHealth_State, BackendHealthSchema, BackendViewSchema, type ConfigVersion, type EtcdKeys } from "@mysqlgw/proto";
import { PacketFramer } from "../protocol/framer";
import { buildHandshakeResponse41 } from "../protocol/packets/handshake-response41";
import { Capability } from "../protocol/constants";
import { parseBackendAddress } from "../session/config-snapshot";
import { withTimeout } from "./with-timeout";
import { parseHealthKey } from "./etcd-health-source";

/**
 * The data plane's own view of every backend of its config, written to etcd
 * (`keys.backendView(id, cluster, backend)`, BackendView as proto3 JSON) under
 * a lease of its own, so that the views vanish with the process. The monitor
 * confirms a primary down only when the data planes reporting on it cannot
 * reach it either (docs/monitor.md). Runs in the supervisor process.
 *
 * A check is a login attempt as a user that does not exist
 * (`mysqlgw_reachability`): the server's greeting and its answer (normally
 * ERR 1045) prove it is up and accepting connections. A full (if refused)
 * login, rather than a bare TCP connect, keeps the server's
 * max_connect_errors count of interrupted handshakes at zero; the server logs
 * each as an "Access denied" warning (log_warnings ≥ 2), so a backend is
 * checked rarely (`idleIntervalMs`) while all is well, and often
 * (`intervalMs`) while it is suspect: its last check failed, or the monitor's
 * health (watched here) reports failed probes — then it is checked at once,
 * so that the view is in etcd before the monitor's threshold is reached.
 */
export interface BackendViewReporter {
  /** The backends to check: every backend of every cluster of the config served. */
  setConfig(config: ConfigVersion): void;
  start(): void;
  /** Stops checking and revokes the lease (the views disappear). Bounded. */
  stop(): Promise<void>;
}

export interface BackendViewReporterOptions {
  endpoints: string[];
  keys: EtcdKeys;
  /** The data plane's id (its registry key's last segment). */
  id: string;
  /** Bound on every etcd call. */
  timeoutMs: number;
  logger: Logger;
  /** Between two checks of a suspect backend (failing, or failing the monitor's probes). Default 250 ms. */
  intervalMs?: number;
  /** Between two checks of a backend that is not suspect. Default 5000 ms. */
  idleIntervalMs?: number;
  /** Bound on one check (connect, greeting, answer). Default 1000 ms. */
  checkTimeoutMs?: number;
  /** TTL of the views' lease, seconds. Default 5. */
  leaseTtlSec?: number;
  /** An unchanged view is rewritten this often (checked_at). Default 10 000 ms. */
  refreshMs?: number;
  /** Replaces the login check (tests): resolves when reachable, rejects with the reason. */
  check?: (host: string, port: number, timeoutMs: number) => Promise<void>;
}

export const DEFAULT_VIEW_INTERVAL_MS = 250;
export const DEFAULT_VIEW_IDLE_INTERVAL_MS = 5000;
const REACHABILITY_USER = "mysqlgw_reachability";

interface ViewState {
  cluster: string;
  backend: string;
  address: string;
  host: string;
  port: number;
  reachable: boolean | null;
  failures: number;
  lastError: string;
  sinceMs: number;
  writtenAtMs: number;
  writtenFingerprint: string;
  busy: boolean;
  /** Next check due (ms). */
  nextAt: number;
  /** The monitor's health reports failed probes of it. */
  monitorSuspect: boolean;
}

export function createBackendViewReporter(options: BackendViewReporterOptions): BackendViewReporter {
  const log = options.logger;
  const { keys, id, timeoutMs } = options;
  const intervalMs = Math.max(50, options.intervalMs ?? DEFAULT_VIEW_INTERVAL_MS);
  const idleIntervalMs = Math.max(intervalMs, options.idleIntervalMs ?? DEFAULT_VIEW_IDLE_INTERVAL_MS);
  const checkTimeoutMs = Math.max(50, options.checkTimeoutMs ?? 1000);
  const ttl = Math.max(2, options.leaseTtlSec ?? 5);
  const refreshMs = options.refreshMs ?? 10_000;
  const check = options.check ?? checkReachable;
  const client = new Etcd3({
    hosts: options.endpoints,
    ...etcdSecurityOptions(), // --etcd-ca/--etcd-cert/--etcd-key
    dialTimeout: timeoutMs,
    defaultCallOptions: (ctx) => (ctx.isStream ? {} : { deadline: Date.now() + timeoutMs }),
  });
  const views = new Map<string, ViewState>();
  let lease: Lease | null = null;
  let timer: NodeJS.Timeout | null = null;
  let watcher: Watcher | null = null;
  let stopped = false;
  let warned = false;

  function getLease(): Lease {
    if (lease !== null) return lease;
    const l = client.lease(ttl, { autoKeepAlive: true });
    l.on("lost", () => {
      if (lease !== l) return;
      lease = null;
      // Everything is written again under the next lease.
      for (const v of views.values()) v.writtenFingerprint = "";
    });
    lease = l;
    return l;
  }

  async function write(v: ViewState, now: number): Promise<void> {
    const view = create(BackendViewSchema, {
      dataPlaneId: id,
      cluster: v.cluster,
      backend: v.backend,
      address: v.address,
      reachable: v.reachable === true,
      consecutiveFailures: v.failures,
      lastError: v.lastError,
      since: timestampFromMs(v.sinceMs),
      checkedAt: timestampFromMs(now),
    });
    const fp = `${v.reachable}|${Math.min(v.failures, 3)}|${v.lastError}`;
    if (fp === v.writtenFingerprint && now - v.writtenAtMs < refreshMs) return;
    try {
      await withTimeout(getLease().put(keys.backendView(id, v.cluster, v.backend)).value(toJsonString(BackendViewSchema, view)).exec(), timeoutMs, "write a backend view");
      v.writtenFingerprint = fp;
      v.writtenAtMs = now;
      warned = false;
    } catch (err) {
      if (!warned) log.warn({ err: (err as Error).message }, "cannot write this data plane's backend views to etcd; retrying");
      warned = true;
    }
  }

  async function checkOne(v: ViewState): Promise<void> {
    if (v.busy) return;
    v.busy = true;
    try {
      let ok = true;
      let error = "";
      try {
        await check(v.host, v.port, checkTimeoutMs);
      } catch (err) {
        ok = false;
        error = (err as Error).message;
      }
      if (stopped || views.get(`${v.cluster}/${v.backend}`) !== v) return;
      const now = Date.now();
      if (v.reachable !== ok) {
        v.sinceMs = now;
        log.info({ cluster: v.cluster, backend: v.backend, reachable: ok, err: error || undefined }, `backend ${v.backend} of cluster ${v.cluster} is ${ok ? "reachable" : "unreachable"} from this data plane`);
      }
      v.reachable = ok;
      v.failures = ok ? 0 : Math.min(v.failures + 1, 1_000_000);
      v.lastError = error;
      v.nextAt = now + (ok && !v.monitorSuspect ? idleIntervalMs : intervalMs);
      await write(v, now);
    } finally {
      v.busy = false;
    }
  }

  function tick(): void {
    timer = null;
    if (stopped) return;
    const now = Date.now();
    for (const v of views.values()) if (now >= v.nextAt) void checkOne(v);
    timer = setTimeout(tick, Math.min(intervalMs, 100));
  }

  /** The monitor's BackendHealth of a backend (proto3 JSON): failed probes make it suspect, and checked at once. */
  function noteHealth(key: string, json: string | null): void {
    const id = parseHealthKey(key, keys.healthPrefix);
    if (id === null) return;
    const v = views.get(`${id.cluster}/${id.backend}`);
    if (v === undefined) return;
    let suspect = false;
    if (json !== null) {
      try {
        const h = fromJsonString(BackendHealthSchema, json, { ignoreUnknownFields: true });
        suspect = h.consecutiveFailures > 0 || h.state === BackendHealth_State.DOWN;
      } catch {
        return;
      }
    }
    const was = v.monitorSuspect;
    v.monitorSuspect = suspect;
    if (suspect && !was && !stopped) {
      v.nextAt = 0;
      void checkOne(v);
    }
  }

  async function watchHealth(): Promise<void> {
    try {
      const w = await withTimeout(client.watch().prefix(keys.healthPrefix).create(), timeoutMs, "watch the backend health");
      if (stopped) {
        void w.cancel().catch(() => undefined);
        return;
      }
      watcher = w;
      w.on("put", (kv: IKeyValue) => noteHealth(kv.key.toString(), kv.value.toString()));
      w.on("delete", (kv: IKeyValue) => noteHealth(kv.key.toString(), null));
      w.on("error", () => undefined);
    } catch (err) {
      // without it, backends are checked at idleIntervalMs (and often once a check fails); retried
      log.debug({ err: (err as Error).message }, "cannot watch the backend health for the backend views; retrying");
      if (!stopped) setTimeout(() => void watchHealth(), 2000).unref();
    }
  }

  return {
    setConfig(config) {
      const want = new Set<string>();
      for (const c of config.policy?.clusters ?? []) {
        for (const b of c.backends) {
          const key = `${c.name}/${b.name}`;
          want.add(key);
          const prev = views.get(key);
          if (prev !== undefined && prev.address === b.address) continue;
          let addr: { host: string; port: number };
          try {
            addr = parseBackendAddress(b.address);
          } catch {
            continue;
          }
          views.set(key, { cluster: c.name, backend: b.name, address: b.address, ...addr, reachable: null, failures: 0, lastError: "", sinceMs: Date.now(), writtenAtMs: 0, writtenFingerprint: "", busy: false, nextAt: 0, monitorSuspect: prev?.monitorSuspect ?? false });
        }
      }
      for (const [key, v] of [...views]) {
        if (want.has(key)) continue;
        views.delete(key);
        void withTimeout(client.delete().key(keys.backendView(id, v.cluster, v.backend)).exec(), timeoutMs, "delete a backend view").catch(() => undefined);
      }
    },
    start() {
      if (timer === null && !stopped) {
        timer = setTimeout(tick, 0);
        void watchHealth();
      }
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      if (timer !== null) clearTimeout(timer);
      const w = watcher;
      watcher = null;
      if (w !== null) await withTimeout(w.cancel(), timeoutMs, "cancel the health watch").catch(() => undefined);
      const l = lease;
      lease = null;
      if (l !== null) await withTimeout(l.revoke(), timeoutMs, "revoke the backend views' lease").catch(() => undefined);
      client.close();
    },
  };
}

/**
 * Resolves when a MySQL/MariaDB server at host:port sends its greeting and
 * answers a login attempt as `mysqlgw_reachability` (with any packet: ERR 1045
 * is the usual answer); rejects with what failed.
 */
export function checkReachable(host: string, port: number, timeoutMs: number): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const where = `${host}:${port}`;
    let settled = false;
    const sock = net.connect({ host, port });
    const done = (err: Error | null): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      sock.destroy();
      if (err === null) resolve();
      else reject(err);
    };
    const timer = setTimeout(() => done(new Error(`no answer from ${where} within ${timeoutMs} ms; check that the server runs and is reachable from this data plane`)), timeoutMs);
    let greeted = false;
    const framer = new PacketFramer({ maxPacketSize: 1 << 16 }, (_seq, payload) => {
      if (!greeted) {
        greeted = true;
        // ERR instead of a greeting (too many connections, host blocked): the server is up.
        if (payload[0] === 0xff) return done(null);
        const caps = Capability.Protocol41 | Capability.SecureConnection | Capability.PluginAuth;
        sock.write(
          buildHandshakeResponse41(
            { capabilities: caps, mariadbCapabilities: 0, maxPacketSize: 1 << 24, characterSet: 45, username: REACHABILITY_USER, authResponse: Buffer.alloc(0), database: null, authPluginName: "mysql_native_password", connectAttributes: new Map() },
            1,
          ),
        );
        return;
      }
      done(null);
    });
    sock.on("data", (chunk: Buffer) => {
      try {
        framer.push(chunk);
      } catch (err) {
        done(new Error(`${where} sent something that is not the MySQL protocol (${(err as Error).message})`));
      }
    });
    sock.on("error", (err: NodeJS.ErrnoException) => {
      done(new Error(err.code === "ECONNREFUSED" ? `connection to ${where} refused; the server is not running or not listening there` : `cannot connect to ${where}: ${err.message}`));
    });
    sock.on("close", () => done(new Error(`${where} closed the connection ${greeted ? "after its greeting" : "before its greeting"}`)));
  });
}

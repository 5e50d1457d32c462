import { Etcd3, type IKeyValue, type Lease, type Watcher } from "etcd3";
import { etcdSecurityOptions } from "@mysqlgw/proto";
import type { Logger } from "pino";
import type { EtcdKeys } from "@mysqlgw/proto";
import { decodeConfig, type ConfigDoc } from "./config-codec";
import { probeAnyEtcd } from "./etcd-probe";
import { sleep, withTimeout } from "./with-timeout";

/**
 * The data plane's only link to etcd (used by the supervisor process alone).
 *
 * One *session* = a read of `<prefix>/v1/config/current`, a watch of it from
 * the revision after that read, and a lease under which the registry entry
 * `<prefix>/v1/dataplanes/<id>` lives. Any failure of the session (a call
 * outliving `timeoutMs`, the watch stream or the lease keepalive breaking)
 * tears the whole session down; the loop then opens a new one with bounded
 * backoff, which re-registers and re-reads the current config. Every call is
 * bounded here, because etcd3 itself retries an unreachable endpoint forever.
 *
 * Each attempt first probes `GET /health` on a socket of our own (see
 * etcd-probe.ts): gRPC has no handshake timeout, so dialing an endpoint that
 * accepts TCP but never answers (a hung etcd) would leave a socket behind per
 * attempt. One etcd3 client serves every session.
 *
 * Ordering: onConfig() is called in etcd revision order within a session; a new
 * session starts with the current value again, so a consumer sees each version
 * at least once and must ignore versions it already serves.
 */
export interface EtcdConfigSource {
  /** Starts the session loop. */
  start(): void;
  /**
   * Settles when the first session attempt ends: true once connected and the
   * current config was read (and handed to onConfig), false if it failed.
   */
  readonly firstAttempt: Promise<boolean>;
  /** Puts the registry entry again (e.g. after serving a new config). No-op while disconnected: every new session puts it. */
  publish(): void;
  isConnected(): boolean;
  /** Stops the loop and closes the client; with `deregister`, first revokes the lease so the registry entry disappears at once. */
  stop(options: { deregister: boolean }): Promise<void>;
}

export interface EtcdConfigSourceOptions {
  endpoints: string[];
  keys: EtcdKeys;
  /** Registry id of this data plane. */
  id: string;
  /** Bound on every etcd call. */
  timeoutMs: number;
  logger: Logger;
  /** Each valid config value read or watched, in revision order. Must not throw. */
  onConfig(doc: ConfigDoc): void;
  /** The registry value to put now. */
  registryValue(): string;
  /** A short description of what is served now, for log lines ("config version 7 (disk)"). */
  describeServing(): string;
  /** Registry lease TTL in seconds; default 10. */
  leaseTtlSec?: number;
  /** First retry delay; default 250 ms, doubling per failure. */
  minBackoffMs?: number;
  /** Largest retry delay; default 5000 ms. */
  maxBackoffMs?: number;
}

type LinkState = "starting" | "connected" | "unreachable";

interface Session {
  lease: Lease | null;
  watcher: Watcher | null;
  /** The current config as read when the session opened; null if the key is absent. */
  initial: IKeyValue | null;
  /** Set once the session broke or was closed: its late events are ignored. */
  closed: boolean;
  /** Resolves (never rejects) when the session broke or was closed. */
  broken: Promise<Error | null>;
  fail(err: Error | null): void;
}

export function createEtcdConfigSource(options: EtcdConfigSourceOptions): EtcdConfigSource {
  const log = options.logger;
  const { keys, timeoutMs } = options;
  const leaseTtl = options.leaseTtlSec ?? 10;
  const minBackoff = options.minBackoffMs ?? 250;
  const maxBackoff = options.maxBackoffMs ?? 5000;
  const registryKey = keys.dataPlane(options.id);
  const stopCtl = new AbortController();

  let state: LinkState = "starting";
  let session: Session | null = null;
  let loop: Promise<void> | null = null;
  let putting = false;
  let putAgain = false;
  let missedPublish = false;
  const staleLeases = new Set<Lease>();
  let resolveFirst!: (ok: boolean) => void;
  const firstAttempt = new Promise<boolean>((r) => (resolveFirst = r));

  const client = new Etcd3({
    hosts: options.endpoints,
    ...etcdSecurityOptions(), // --etcd-ca/--etcd-cert/--etcd-key
    dialTimeout: timeoutMs,
    // Unary calls get a deadline; streams (watch, lease keepalive) must not.
    defaultCallOptions: (ctx) => (ctx.isStream ? {} : { deadline: Date.now() + timeoutMs }),
    // gRPC's own reconnect backoff grows to 120 s by default: keep it near ours.
    grpcOptions: {
      "grpc.initial_reconnect_backoff_ms": minBackoff,
      "grpc.max_reconnect_backoff_ms": maxBackoff,
    },
  });

  function deliver(value: Buffer | string, revision: string, origin: string): void {
    const res = decodeConfig(value.toString());
    if (!res.ok) {
      log.warn(
        { key: keys.currentConfig, revision, reason: res.reason },
        `ignoring an invalid config value in etcd (${origin}); still serving ${options.describeServing()}`,
      );
      return;
    }
    options.onConfig(res.doc);
  }

  async function openSession(): Promise<Session> {
    let resolveBroken!: (e: Error | null) => void;
    const broken = new Promise<Error | null>((r) => (resolveBroken = r));
    const s: Session = {
      lease: null,
      watcher: null,
      initial: null,
      closed: false,
      broken,
      fail(err) {
        if (s.closed) return;
        s.closed = true;
        resolveBroken(err);
      },
    };
    try {
      const unhealthy = await probeAnyEtcd(options.endpoints, timeoutMs);
      if (unhealthy !== null) throw new Error(unhealthy);
      const range = await withTimeout(client.get(keys.currentConfig).exec(), timeoutMs, `etcd get ${keys.currentConfig}`);
      const revision = BigInt(range.header.revision);

      const lease = client.lease(leaseTtl, { autoKeepAlive: true });
      s.lease = lease;
      lease.on("lost", (err) => s.fail(err));
      // Typed as a response, but etcd3 emits the stream error here.
      lease.on("keepaliveFailed", (err: unknown) =>
        s.fail(err instanceof Error ? err : new Error("etcd lease keepalive failed")),
      );
      await withTimeout(lease.grant(), timeoutMs, "etcd lease grant");

      const watcher = client.watch().key(keys.currentConfig).startRevision((revision + 1n).toString()).watcher();
      s.watcher = watcher;
      // Listeners first: an 'error' with no listener would throw.
      watcher.on("disconnected", (err: Error) => s.fail(err));
      watcher.on("error", (err: Error) => s.fail(err));
      const connected = new Promise<void>((resolve, reject) => {
        watcher.once("connected", () => resolve());
        void broken.then((err) => reject(err ?? new Error("etcd session closed")));
      });
      await withTimeout(connected, timeoutMs, `etcd watch ${keys.currentConfig}`);
      if (s.closed) throw new Error("etcd session broke while opening");
      watcher.on("put", (kv: IKeyValue) => {
        if (!s.closed) deliver(kv.value, kv.mod_revision, "watch");
      });
      watcher.on("delete", (kv: IKeyValue) => {
        if (s.closed) return;
        log.warn(
          { key: keys.currentConfig, revision: kv.mod_revision },
          `the current config key was deleted from etcd; still serving ${options.describeServing()}`,
        );
      });

      await withTimeout(lease.put(registryKey).value(options.registryValue()).exec(), timeoutMs, `etcd put ${registryKey}`);
      s.initial = range.kvs[0] ?? null;
      revokeStaleLeases();
      return s;
    } catch (err) {
      await closeSession(s, false);
      throw err;
    }
  }

  async function closeSession(s: Session, deregister: boolean): Promise<void> {
    s.fail(null);
    if (s.watcher !== null) {
      // etcd3 finishes a cancel on its own even if we stop waiting (a watcher
      // being closed is dropped at the next reconnect); its events are ignored.
      await withTimeout(s.watcher.cancel(), Math.min(timeoutMs, 1000), "etcd watch cancel").catch(() => undefined);
    }
    if (s.lease !== null) {
      if (deregister) {
        try {
          await withTimeout(s.lease.revoke(), timeoutMs, "etcd lease revoke");
          log.info({ key: registryKey }, "deregistered from etcd");
        } catch (err) {
          log.warn(
            { key: registryKey, err: (err as Error).message },
            `could not revoke the registry lease; the entry expires within ${leaseTtl} s`,
          );
        }
      } else {
        // Stop keeping it alive; revoked once a new session re-registered
        // (the entry now lives under the new lease), else it expires by TTL.
        s.lease.release();
        staleLeases.add(s.lease);
        if (staleLeases.size > 8) staleLeases.delete(staleLeases.values().next().value!); // the oldest just expires
      }
    }
  }

  /** Best effort, in the background: a lease we may still hold from a broken session. */
  function revokeStaleLeases(): void {
    for (const l of staleLeases) {
      staleLeases.delete(l);
      void withTimeout(l.revoke(), timeoutMs, "etcd revoke of a stale lease").catch(() => undefined);
    }
  }

  function setState(next: LinkState, err: Error | null): void {
    const prev = state;
    state = next;
    if (prev === next) return;
    const fields = { endpoints: options.endpoints, err: err?.message };
    if (next === "connected") {
      if (prev === "starting") {
        log.info({ endpoints: options.endpoints, registryKey }, "connected to etcd; registered and watching the current config");
      } else {
        log.info(
          { endpoints: options.endpoints, registryKey },
          "etcd is reachable again; re-registered and re-read the current config",
        );
      }
    } else if (next === "unreachable") {
      log.warn(
        fields,
        prev === "connected"
          ? `lost the connection to etcd; still serving ${options.describeServing()}; retrying in the background`
          : prev === "starting"
            ? "etcd is unreachable at startup; retrying in the background"
            : `etcd is unreachable; serving ${options.describeServing()}; retrying in the background`,
      );
    }
  }

  async function run(): Promise<void> {
    let failures = 0;
    const stopped = new Promise<null>((r) => stopCtl.signal.addEventListener("abort", () => r(null), { once: true }));
    // Bounded in time by stopCtl: each turn either holds a session until it
    // breaks or sleeps a bounded backoff.
    while (!stopCtl.signal.aborted) {
      let s: Session;
      try {
        s = await openSession();
      } catch (err) {
        log.debug({ err: (err as Error).message, failures }, "etcd session attempt failed");
        if (state === "starting") resolveFirst(false);
        setState("unreachable", err as Error);
        failures++;
        const base = Math.min(maxBackoff, minBackoff * 2 ** Math.min(failures - 1, 16));
        await sleep(base / 2 + Math.random() * (base / 2), stopCtl.signal);
        continue;
      }
      session = s;
      if (stopCtl.signal.aborted) break; // stop() closes (and deregisters) it
      failures = 0;
      const wasStarting = state === "starting";
      setState("connected", null);
      // Delivered only now, so that publish() after serving it finds the session.
      const kv = s.initial;
      if (kv === null) {
        log.warn(
          { key: keys.currentConfig },
          `etcd holds no config version yet (no ${keys.currentConfig}); apply a policy with "mysqlgw apply"; serving ${options.describeServing()}`,
        );
      } else {
        deliver(kv.value, kv.mod_revision, "read");
      }
      if (missedPublish) {
        missedPublish = false;
        publish();
      }
      if (wasStarting) resolveFirst(true);
      const err = await Promise.race([s.broken, stopped]);
      if (stopCtl.signal.aborted) break; // stop() closes the session
      session = null;
      await closeSession(s, false);
      setState("unreachable", err);
    }
  }

  async function doPublish(): Promise<void> {
    putting = true;
    try {
      do {
        putAgain = false;
        const s = session;
        if (s === null || s.lease === null) return;
        try {
          await withTimeout(s.lease.put(registryKey).value(options.registryValue()).exec(), timeoutMs, `etcd put ${registryKey}`);
        } catch (err) {
          s.fail(err as Error);
          return;
        }
      } while (putAgain);
    } finally {
      putting = false;
    }
  }

  function publish(): void {
    if (session === null) {
      // Whatever changed goes out with the next session's put, or just after it opened.
      missedPublish = true;
      return;
    }
    if (putting) {
      putAgain = true;
      return;
    }
    void doPublish();
  }

  return {
    firstAttempt,
    start() {
      if (loop === null) loop = run();
    },
    publish,
    isConnected: () => state === "connected" && session !== null,
    async stop({ deregister }) {
      stopCtl.abort();
      resolveFirst(false);
      if (loop !== null) await loop;
      const s = session;
      session = null;
      if (s !== null) await closeSession(s, deregister);
      client.close();
    },
  };
}

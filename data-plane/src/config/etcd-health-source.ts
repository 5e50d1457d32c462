import { Etcd3, type IKeyValue, type Watcher } from "etcd3";
import { etcdSecurityOptions } from "@mysqlgw/proto";
import type { Logger } from "pino";
import type { EtcdKeys } from "@mysqlgw/proto";
import { probeAnyEtcd } from "./etcd-probe";
import { sleep, withTimeout } from "./with-timeout";

/**
 * The data plane's view of the monitor's backend health in etcd
 * (`<prefix>/v1/health/<cluster>/<backend>`, BackendHealth as proto3 JSON,
 * written by the leading control plane under its lease). Used by the
 * supervisor process alone, which relays every change to the workers.
 *
 * One *session* = a range read of the whole health prefix, then a watch of it
 * from the revision after that read. A session that breaks (a call outliving
 * `timeoutMs`, the watch stream failing or disconnecting, a compacted revision)
 * is closed and, after a bounded backoff, a new one re-reads the prefix: keys
 * that vanished meanwhile are delivered as deletions, so consumers converge to
 * etcd's content after every outage. While etcd is unreachable the last known
 * health is kept (and nothing is delivered).
 *
 * Ordering: onHealth() calls follow etcd's revision order within a session;
 * a value equal to the one last delivered for its key is not delivered again.
 */
export interface EtcdHealthSource {
  start(): void;
  /** Every key's last value, for a consumer that starts late (a new worker). */
  current(): Iterable<HealthEntry>;
  stop(): Promise<void>;
}

export interface HealthEntry {
  readonly cluster: string;
  readonly backend: string;
  /** BackendHealth as proto3 JSON, as stored in etcd. */
  readonly json: string;
}

export interface EtcdHealthSourceOptions {
  endpoints: string[];
  keys: EtcdKeys;
  /** Bound on every etcd call. */
  timeoutMs: number;
  logger: Logger;
  /** A key's new value, or null when it was deleted (lease expired, backend removed). Must not throw. */
  onHealth(cluster: string, backend: string, json: string | null): void;
  /** First retry delay; default 250 ms, doubling per failure. */
  minBackoffMs?: number;
  /** Largest retry delay; default 5000 ms. */
  maxBackoffMs?: number;
  /**
   * Another key family read and watched the same way (default the health
   * prefix): the failover epochs (`keys.epochPrefix`, with parseEpochKey).
   */
  prefix?: string;
  parseKey?: (key: string, prefix: string) => { cluster: string; backend: string } | null;
  /** What the keys are, in log messages. Default "backend health". */
  what?: string;
}

/** "<cluster>" after the epoch prefix, as backend "" (how epochs travel with health); null for any other key shape. */
export function parseEpochKey(key: string, epochPrefix: string): { cluster: string; backend: string } | null {
  if (!key.startsWith(epochPrefix)) return null;
  const cluster = key.slice(epochPrefix.length);
  return cluster === "" || cluster.includes("/") ? null : { cluster, backend: "" };
}

/** "<cluster>/<backend>" after the health prefix; null for any other key shape. */
export function parseHealthKey(key: string, healthPrefix: string): { cluster: string; backend: string } | null {
  if (!key.startsWith(healthPrefix)) return null;
  const rest = key.slice(healthPrefix.length);
  const slash = rest.indexOf("/");
  if (slash <= 0 || slash === rest.length - 1 || rest.indexOf("/", slash + 1) >= 0) return null;
  return { cluster: rest.slice(0, slash), backend: rest.slice(slash + 1) };
}

/**
 * The health keys as last delivered, and the deliveries that keep a consumer
 * in step with etcd: a put of a new or changed value, a delete of a known key,
 * and after a full read, the values read plus deletions of the keys the read
 * no longer has. Pure (no I/O); keys outside `<prefix><cluster>/<backend>` are ignored.
 */
export class HealthMirror {
  private readonly known = new Map<string, HealthEntry>();

  constructor(
    private readonly prefix: string,
    private readonly onHealth: (cluster: string, backend: string, json: string | null) => void,
    private readonly parseKey: (key: string, prefix: string) => { cluster: string; backend: string } | null = parseHealthKey,
  ) {}

  put(key: string, value: string): void {
    const id = this.parseKey(key, this.prefix);
    if (id === null) return;
    const prev = this.known.get(key);
    if (prev !== undefined && prev.json === value) return;
    this.known.set(key, { cluster: id.cluster, backend: id.backend, json: value });
    this.onHealth(id.cluster, id.backend, value);
  }

  delete(key: string): void {
    const prev = this.known.get(key);
    if (prev === undefined) return;
    this.known.delete(key);
    this.onHealth(prev.cluster, prev.backend, null);
  }

  /** Everything under the prefix, as one read returned it. */
  replaceAll(kvs: Iterable<readonly [string, string]>): void {
    const seen = new Set<string>();
    for (const [key, value] of kvs) {
      seen.add(key);
      this.put(key, value);
    }
    for (const key of [...this.known.keys()]) if (!seen.has(key)) this.delete(key);
  }

  values(): Iterable<HealthEntry> {
    return this.known.values();
  }

  get size(): number {
    return this.known.size;
  }
}

export function createEtcdHealthSource(options: EtcdHealthSourceOptions): EtcdHealthSource {
  const log = options.logger;
  const { keys, timeoutMs } = options;
  const prefix = options.prefix ?? keys.healthPrefix;
  const what = options.what ?? "backend health";
  const noun = options.what === undefined ? "health" : "values";
  const minBackoff = options.minBackoffMs ?? 250;
  const maxBackoff = options.maxBackoffMs ?? 5000;
  const stopCtl = new AbortController();
  const known = new HealthMirror(prefix, options.onHealth, options.parseKey);
  let loop: Promise<void> | null = null;
  let watcher: Watcher | null = null;

  const client = new Etcd3({
    hosts: options.endpoints,
    ...etcdSecurityOptions(), // --etcd-ca/--etcd-cert/--etcd-key
    dialTimeout: timeoutMs,
    defaultCallOptions: (ctx) => (ctx.isStream ? {} : { deadline: Date.now() + timeoutMs }),
    grpcOptions: {
      "grpc.initial_reconnect_backoff_ms": minBackoff,
      "grpc.max_reconnect_backoff_ms": maxBackoff,
    },
  });

  /** Runs one session until it breaks (resolving with why) or stop(); throws if it cannot open. */
  async function session(onOpen: () => void): Promise<Error | null> {
    const unhealthy = await probeAnyEtcd(options.endpoints, timeoutMs);
    if (unhealthy !== null) throw new Error(unhealthy);
    const range = await withTimeout(client.getAll().prefix(prefix).exec(), timeoutMs, `etcd get ${prefix}*`);
    const revision = BigInt(range.header.revision);
    let resolveBroken!: (e: Error | null) => void;
    const broken = new Promise<Error | null>((r) => (resolveBroken = r));
    let closed = false;
    const fail = (err: Error | null) => {
      if (closed) return;
      closed = true;
      resolveBroken(err);
    };
    const w = client.watch().prefix(prefix).startRevision((revision + 1n).toString()).watcher();
    watcher = w;
    w.on("disconnected", (err: Error) => fail(err));
    w.on("error", (err: Error) => fail(err));
    try {
      const connected = new Promise<void>((resolve, reject) => {
        w.once("connected", () => resolve());
        void broken.then((err) => reject(err ?? new Error(`etcd watch of ${what} closed`)));
      });
      await withTimeout(connected, timeoutMs, `etcd watch ${prefix}`);
    } catch (err) {
      fail(err as Error);
      await cancel(w);
      throw err;
    }
    // The read first (deletions of keys gone meanwhile included), then the watch's events.
    known.replaceAll(range.kvs.map((kv) => [kv.key.toString(), kv.value.toString()] as const));
    onOpen();
    w.on("put", (kv: IKeyValue) => {
      if (!closed) known.put(kv.key.toString(), kv.value.toString());
    });
    w.on("delete", (kv: IKeyValue) => {
      if (!closed) known.delete(kv.key.toString());
    });
    const stopped = new Promise<null>((r) => stopCtl.signal.addEventListener("abort", () => r(null), { once: true }));
    const err = await Promise.race([broken, stopped]);
    closed = true;
    await cancel(w);
    watcher = null;
    return err;
  }

  async function cancel(w: Watcher): Promise<void> {
    await withTimeout(w.cancel(), Math.min(timeoutMs, 1000), "etcd health watch cancel").catch(() => undefined);
  }

  async function run(): Promise<void> {
    let failures = 0;
    let unreachableLogged = false;
    // Bounded in time by stopCtl: each turn holds a session until it breaks or sleeps a bounded backoff.
    while (!stopCtl.signal.aborted) {
      let err: Error | null;
      try {
        err = await session(() => {
          failures = 0;
          if (unreachableLogged) log.info({ keys: known.size }, `reading ${what} from etcd again`);
          else log.debug({ keys: known.size }, `watching ${what} in etcd`);
          unreachableLogged = false;
        });
        if (stopCtl.signal.aborted) break;
        log.warn({ err: err?.message }, `lost the etcd watch of ${what}; keeping the last known ${noun} and re-reading it`);
        unreachableLogged = true;
      } catch (e) {
        err = e as Error;
        failures++;
        if (stopCtl.signal.aborted) break;
        if (!unreachableLogged) {
          unreachableLogged = true;
          log.warn({ err: err.message }, `cannot read ${what} from etcd; keeping the last known ${noun}; retrying in the background`);
        } else {
          log.debug({ err: err.message, failures }, "etcd health session attempt failed");
        }
      }
      const base = Math.min(maxBackoff, minBackoff * 2 ** Math.min(Math.max(failures - 1, 0), 16));
      await sleep(base / 2 + Math.random() * (base / 2), stopCtl.signal);
    }
  }

  return {
    start() {
      if (loop === null) loop = run();
    },
    current: () => known.values(),
    async stop() {
      stopCtl.abort();
      if (loop !== null) await loop;
      const w = watcher;
      if (w !== null) await cancel(w);
      client.close();
    },
  };
}

/**
 * Publishes this data plane's top query digests (by total time, merged over
 * its workers) to etcd every `intervalMs`, at `digestsKey(prefix, id)` under a
 * lease of its own (they vanish with the process), for the control plane's
 * GET /v1/digests, which merges every live data plane's. Runs in the
 * supervisor. A failed write is logged once and retried at the next tick.
 */
import { Etcd3, type Lease } from "etcd3";
import { etcdSecurityOptions } from "@mysqlgw/proto";
import type { Logger } from "pino";
import { LATENCY_BUCKET_BASE_MS, LATENCY_BUCKET_FACTOR, mergeDigestStats, type DigestStats } from "../observe/digest-table";
import type { WorkerFigures } from "../observe/worker-observation";
import { withTimeout } from "../config/with-timeout";

/**
 * Where a data plane's digests live: `<prefix>/v1/digests/<id>`. The control
 * plane reads the same layout (control-plane/src/digests/published-digests.ts).
 */
export function digestsKey(prefix: string, id: string): string {
  return `${prefix.replace(/\/+$/, "")}/v1/digests/${id}`;
}

/** The JSON value written (the control plane parses this shape). */
export interface PublishedDigests {
  dataPlaneId: string;
  /** Epoch ms. */
  publishedAt: number;
  /** Workers whose figures are included. */
  workers: number;
  /** Histogram layout of `buckets` (upper bound of bucket i = base × factor^i ms). */
  bucketBaseMs: number;
  bucketFactor: number;
  /** Digests published (the top `top` by total time) and how many the data plane holds in all. */
  digests: DigestStats[];
  totalDigests: number;
}

/** The top `top` digests by total time, as published. Pure. */
export function publishedDigests(id: string, figures: readonly WorkerFigures[], top: number, now: number): PublishedDigests {
  const merged = mergeDigestStats(figures.map((f) => f.digests)).sort((a, b) => b.totalMs - a.totalMs);
  return {
    dataPlaneId: id,
    publishedAt: now,
    workers: figures.length,
    bucketBaseMs: LATENCY_BUCKET_BASE_MS,
    bucketFactor: LATENCY_BUCKET_FACTOR,
    digests: merged.slice(0, top),
    totalDigests: merged.length,
  };
}

export interface DigestPublisherOptions {
  endpoints: string[];
  prefix: string;
  id: string;
  intervalMs: number;
  top: number;
  timeoutMs: number;
  figures(): Promise<WorkerFigures[]>;
  logger: Logger;
}

export interface DigestPublisher {
  start(): void;
  /** Stops and revokes the lease (the published digests disappear). Bounded. */
  stop(): Promise<void>;
}

export function createDigestPublisher(options: DigestPublisherOptions): DigestPublisher {
  const { timeoutMs, logger: log } = options;
  const client = new Etcd3({
    hosts: options.endpoints,
    ...etcdSecurityOptions(), // --etcd-ca/--etcd-cert/--etcd-key
    dialTimeout: timeoutMs,
    defaultCallOptions: (ctx) => (ctx.isStream ? {} : { deadline: Date.now() + timeoutMs }),
  });
  // outlives a couple of missed ticks, never less than 10 s
  const ttl = Math.max(10, Math.ceil((3 * options.intervalMs) / 1000));
  const key = digestsKey(options.prefix, options.id);
  let lease: Lease | null = null;
  let timer: NodeJS.Timeout | null = null;
  let running: Promise<void> | null = null;
  let stopped = false;
  let warned = false;
  let wroteEmpty = false;

  function getLease(): Lease {
    if (lease !== null) return lease;
    const l = client.lease(ttl, { autoKeepAlive: true });
    l.on("lost", () => {
      if (lease === l) lease = null;
    });
    lease = l;
    return l;
  }

  async function tick(): Promise<void> {
    const value = publishedDigests(options.id, await options.figures(), options.top, Date.now());
    if (value.digests.length === 0 && wroteEmpty) return;
    try {
      await withTimeout(getLease().put(key).value(JSON.stringify(value)).exec(), timeoutMs, "publish query digests");
      wroteEmpty = value.digests.length === 0;
      warned = false;
    } catch (err) {
      if (!warned) log.warn({ err: (err as Error).message, key }, "cannot publish this data plane's query digests to etcd; retrying");
      warned = true;
    }
  }

  function schedule(): void {
    if (stopped) return;
    timer = setTimeout(() => {
      running = tick()
        .catch(() => undefined)
        .finally(() => {
          running = null;
          schedule();
        });
    }, options.intervalMs);
    timer.unref();
  }

  return {
    start: schedule,
    async stop() {
      stopped = true;
      if (timer !== null) clearTimeout(timer);
      await running?.catch(() => undefined);
      const l = lease;
      lease = null;
      if (l !== null) await withTimeout(l.revoke(), timeoutMs, "revoke the digests lease").catch(() => undefined);
      client.close();
    },
  };
}

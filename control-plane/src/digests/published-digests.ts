/**
 * Query digests across data planes: each data plane publishes its top digests
 * (merged over its workers) to etcd at `<prefix>/v1/digests/<id>` under its
 * lease (data-plane/src/admin/digest-publisher.ts writes that JSON); GET
 * /v1/digests reads them all and merges entries of the same (digest, user,
 * schema). A digest outside one data plane's published top N is missing from
 * that data plane's share (the `dataPlanes` count says how many contributed).
 */
import { Etcd3 } from "etcd3";
import { etcdSecurityOptions } from "@mysqlgw/proto";
import type { DigestStats, DigestsAnswer, MergedDigest, PublishedDigests } from "@mysqlgw/proto";
import { MgwError } from "../errors";

/** One digest as a data plane publishes it. */
export type DigestEntry = DigestStats;
export type { DigestsAnswer, MergedDigest, PublishedDigests };

export const DEFAULT_DIGESTS_LIMIT = 20;
export const MAX_DIGESTS_LIMIT = 1000;

const r3 = (x: number): number => Math.round(x * 1000) / 1000;

/** Parses one published value; null when it is not the expected shape (skipped). */
export function parsePublished(text: string): PublishedDigests | null {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return null;
  }
  const p = v as Partial<PublishedDigests>;
  if (typeof p !== "object" || p === null || typeof p.dataPlaneId !== "string" || !Array.isArray(p.digests)) return null;
  if (typeof p.bucketBaseMs !== "number" || typeof p.bucketFactor !== "number" || p.bucketFactor <= 1) return null;
  return p as PublishedDigests;
}

function quantile(buckets: number[], count: number, q: number, base: number, factor: number, min: number, max: number): number {
  if (count === 0) return 0;
  const rank = Math.max(1, Math.ceil(q * count));
  let seen = 0;
  for (let i = 0; i < buckets.length; i++) {
    seen += buckets[i];
    if (seen >= rank) {
      const upper = base * Math.pow(factor, i);
      const mid = i === 0 ? upper / 2 : Math.sqrt(upper * (upper / factor));
      return Math.min(max, Math.max(min, mid));
    }
  }
  return max;
}

/**
 * Merges the data planes' published digests: sums, min of mins, max of maxes,
 * histograms bucket by bucket (data planes with another bucket layout are
 * merged without their histogram); the `limit` largest by total time.
 */
export function mergePublished(published: readonly PublishedDigests[], limit: number): DigestsAnswer {
  const layout = published[0];
  const byKey = new Map<string, { d: DigestEntry; planes: number }>();
  for (const p of published) {
    const sameLayout = layout !== undefined && p.bucketBaseMs === layout.bucketBaseMs && p.bucketFactor === layout.bucketFactor;
    for (const d of p.digests) {
      const key = `${d.hash}\u0000${d.user}\u0000${d.schema}`;
      const m = byKey.get(key);
      if (m === undefined) {
        byKey.set(key, { d: { ...d, buckets: sameLayout ? [...d.buckets] : [] }, planes: 1 });
        continue;
      }
      const x = m.d;
      m.planes++;
      x.count += d.count;
      x.errors += d.errors;
      x.rows += d.rows;
      x.totalMs += d.totalMs;
      x.minMs = Math.min(x.minMs, d.minMs);
      x.maxMs = Math.max(x.maxMs, d.maxMs);
      x.firstSeen = Math.min(x.firstSeen, d.firstSeen);
      x.lastSeen = Math.max(x.lastSeen, d.lastSeen);
      if (sameLayout) for (let i = 0; i < d.buckets.length; i++) x.buckets[i] = (x.buckets[i] ?? 0) + d.buckets[i];
    }
  }
  const merged = [...byKey.values()].sort((a, b) => b.d.totalMs - a.d.totalMs).slice(0, limit);
  return {
    dataPlanes: published
      .map((p) => ({ id: p.dataPlaneId, publishedAt: new Date(p.publishedAt).toISOString(), workers: p.workers, digests: p.digests.length, totalDigests: p.totalDigests }))
      .sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0)),
    digests: merged.map(({ d, planes }) => {
      const inHist = d.buckets.reduce((a, b) => a + b, 0);
      return {
        digest: d.hash,
        user: d.user,
        schema: d.schema,
        digestText: d.text,
        count: d.count,
        errors: d.errors,
        rows: d.rows,
        totalMs: r3(d.totalMs),
        avgMs: d.count === 0 ? 0 : r3(d.totalMs / d.count),
        minMs: r3(d.minMs),
        maxMs: r3(d.maxMs),
        p99Ms: r3(inHist === 0 ? d.maxMs : quantile(d.buckets, inHist, 0.99, layout?.bucketBaseMs ?? 0.01, layout?.bucketFactor ?? 1.4, d.minMs, d.maxMs)),
        firstSeen: new Date(d.firstSeen).toISOString(),
        lastSeen: new Date(d.lastSeen).toISOString(),
        dataPlanes: planes,
      };
    }),
  };
}

export interface DigestSource {
  /** The merged top `limit` digests of every live data plane. */
  digests(limit: number): Promise<DigestsAnswer>;
  close(): void;
}

/** Reads `<prefix>/v1/digests/` from etcd at each call. */
export function createEtcdDigestSource(options: { endpoints: string[]; prefix: string; timeoutMs: number }): DigestSource {
  const client = new Etcd3({
    hosts: options.endpoints,
    ...etcdSecurityOptions(), // --etcd-ca/--etcd-cert/--etcd-key
    dialTimeout: options.timeoutMs,
    defaultCallOptions: (ctx) => (ctx.isStream ? {} : { deadline: Date.now() + options.timeoutMs }),
  });
  const prefix = `${options.prefix.replace(/\/+$/, "")}/v1/digests/`;
  return {
    async digests(limit) {
      let all: Record<string, string>;
      try {
        all = await client.getAll().prefix(prefix).strings();
      } catch (err) {
        throw new MgwError(
          "MGW_ERR_STORE_UNAVAILABLE",
          `etcd is unreachable (could not read the data planes' digests: ${(err as Error).message}); check that etcd is running and that --etcd points at its client URL`,
        );
      }
      const published = Object.values(all)
        .map(parsePublished)
        .filter((p): p is PublishedDigests => p !== null);
      return mergePublished(published, limit);
    },
    close: () => client.close(),
  };
}

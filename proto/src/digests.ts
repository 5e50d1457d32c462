/**
 * The JSON shapes of query digests as they travel between the planes: what a
 * data plane publishes to etcd (`<prefix>/v1/digests/<id>`, written by
 * data-plane/src/admin/digest-publisher.ts) and what the control plane's
 * GET /v1/digests answers (merged; read by `mysqlgw top`). Types only.
 */

/** One digest's figures in one data plane (also the admin port's rows and the IPC payload). */
export interface DigestStats {
  hash: string;
  user: string;
  /** "" when the session had no default schema. */
  schema: string;
  /** Normalised text (literals as ?). */
  text: string;
  count: number;
  errors: number;
  rows: number;
  totalMs: number;
  minMs: number;
  maxMs: number;
  /** Latency histogram counts. */
  buckets: number[];
  /** Epoch ms. */
  firstSeen: number;
  lastSeen: number;
}

/** A data plane's published top digests. */
export interface PublishedDigests {
  dataPlaneId: string;
  publishedAt: number;
  workers: number;
  bucketBaseMs: number;
  bucketFactor: number;
  digests: DigestStats[];
  totalDigests: number;
}

/** A digest merged across data planes, as GET /v1/digests returns it (camelCase, like the API's proto3 JSON). */
export interface MergedDigest {
  digest: string;
  user: string;
  schema: string;
  digestText: string;
  count: number;
  errors: number;
  rows: number;
  totalMs: number;
  avgMs: number;
  minMs: number;
  maxMs: number;
  p99Ms: number;
  firstSeen: string;
  lastSeen: string;
  /** Data planes whose published top N held this digest. */
  dataPlanes: number;
}

/** GET /v1/digests. */
export interface DigestsAnswer {
  dataPlanes: { id: string; publishedAt: string; workers: number; digests: number; totalDigests: number }[];
  digests: MergedDigest[];
}

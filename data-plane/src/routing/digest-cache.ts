/**
 * Digests looked up by a statement's skeleton (Classification.skeleton: its
 * token stream without literal values), so that the digest of a statement
 * shape is computed once per worker instead of once per statement. The
 * digest is a function of that token stream alone, so a hit is the digest
 * `digest()` would return; only the 53-bit hash of the skeleton could
 * collide (about one chance in 10^12 among 4,096 shapes).
 */
import { digest } from "./digest";

/** Shapes remembered; past it the cache starts over (a workload has far fewer). */
export const DIGEST_CACHE_ENTRIES = 4096;

export interface CachedDigest {
  readonly text: string;
  readonly hash: string;
}

const bySkeleton = new Map<number, CachedDigest>();

/** The digest of bytes[start, end), whose classification gave `skeleton` (-1: compute it). */
export function digestBySkeleton(skeleton: number, bytes: Uint8Array, start: number, end: number): CachedDigest {
  if (skeleton < 0) return digest(bytes, start, end);
  const known = bySkeleton.get(skeleton);
  if (known !== undefined) return known;
  const d = digest(bytes, start, end);
  if (bySkeleton.size >= DIGEST_CACHE_ENTRIES) bySkeleton.clear();
  const v: CachedDigest = { text: d.text, hash: d.hash };
  bySkeleton.set(skeleton, v);
  return v;
}

/** Forgets every shape (tests). */
export function clearDigestCache(): void {
  bySkeleton.clear();
}

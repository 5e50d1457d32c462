import { mergePublished, parsePublished, type DigestEntry, type PublishedDigests } from "./published-digests";

const BASE = 0.01;
const FACTOR = 1.4;
const bucketOf = (ms: number): number => Math.ceil(Math.log(ms / BASE) / Math.log(FACTOR) - 1e-9);

function entry(hash: string, user: string, count: number, ms: number, over: Partial<DigestEntry> = {}): DigestEntry {
  const buckets = new Array<number>(49).fill(0);
  buckets[bucketOf(ms)] = count;
  return { hash, user, schema: "shop", text: `T ${hash}`, count, errors: 0, rows: count, totalMs: count * ms, minMs: ms, maxMs: ms, buckets, firstSeen: 1000, lastSeen: 2000, ...over };
}

function plane(id: string, digests: DigestEntry[]): PublishedDigests {
  return { dataPlaneId: id, publishedAt: 5000, workers: 2, bucketBaseMs: BASE, bucketFactor: FACTOR, digests, totalDigests: digests.length };
}

describe("digests across data planes", () => {
  test("entries of the same (digest, user, schema) add up; the largest total time first; p99 from the merged histogram", () => {
    const a = plane("dp-b", [entry("h1", "app", 99, 1, { errors: 1, firstSeen: 500 }), entry("h2", "app", 10, 5)]);
    const b = plane("dp-a", [entry("h1", "app", 1, 500, { lastSeen: 9000 }), entry("h1", "batch", 3, 2)]);
    const m = mergePublished([a, b], 10);
    expect(m.dataPlanes.map((p) => p.id)).toEqual(["dp-a", "dp-b"]);
    expect(m.digests.map((d) => [d.digest, d.user, d.count, d.totalMs, d.dataPlanes])).toEqual([
      ["h1", "app", 100, 599, 2],
      ["h2", "app", 10, 50, 1],
      ["h1", "batch", 3, 6, 1],
    ]);
    const h1 = m.digests[0];
    expect(h1).toMatchObject({ errors: 1, rows: 100, minMs: 1, maxMs: 500, avgMs: 5.99, firstSeen: new Date(500).toISOString(), lastSeen: new Date(9000).toISOString(), digestText: "T h1" });
    // 99 at 1 ms, 1 at 500 ms: the p99 is ~1 ms
    expect(h1.p99Ms).toBeGreaterThanOrEqual(1);
    expect(h1.p99Ms).toBeLessThan(1.2);
    expect(mergePublished([a, b], 1).digests).toHaveLength(1);
    // the inputs are left alone
    expect(a.digests[0].count).toBe(99);
  });

  test("malformed published values are skipped", () => {
    expect(parsePublished("not json")).toBeNull();
    expect(parsePublished(JSON.stringify({ dataPlaneId: "x" }))).toBeNull();
    expect(parsePublished(JSON.stringify(plane("x", [])))).toMatchObject({ dataPlaneId: "x" });
    expect(mergePublished([], 5)).toEqual({ dataPlanes: [], digests: [] });
  });
});

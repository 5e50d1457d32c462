import { DigestTable, digestP99, histogramQuantile, latencyBucket, latencyBucketUpperMs, LATENCY_BUCKET_COUNT, mergeDigestStats } from "./digest-table";

const d1 = { hash: "00000000000000a1", text: "SELECT * FROM t WHERE id = ?" };
const d2 = { hash: "00000000000000b2", text: "UPDATE t SET v = ? WHERE id = ?" };

describe("latency buckets", () => {
  test("bucket bounds are 10 µs × 1.4^i; a duration lands in the first bucket whose bound holds it", () => {
    expect(latencyBucket(0)).toBe(0);
    expect(latencyBucket(0.01)).toBe(0);
    expect(latencyBucket(0.0141)).toBe(2);
    expect(latencyBucket(latencyBucketUpperMs(10))).toBe(10);
    expect(latencyBucket(latencyBucketUpperMs(10) * 1.0001)).toBe(11);
    expect(latencyBucket(1e9)).toBe(LATENCY_BUCKET_COUNT - 1);
    expect(latencyBucketUpperMs(LATENCY_BUCKET_COUNT - 1)).toBeGreaterThan(100000);
  });

  test("p99 is within one bucket (±20 %) and clamped to min/max", () => {
    const b = new Array<number>(LATENCY_BUCKET_COUNT).fill(0);
    // 99 statements at 1 ms, 1 at 500 ms: the p99 is 1 ms; 98 and 2 → 500 ms
    b[latencyBucket(1)] = 99;
    b[latencyBucket(500)] = 1;
    const p99 = histogramQuantile(b, 100, 0.99, 1, 500);
    expect(p99).toBeGreaterThanOrEqual(1);
    expect(p99).toBeLessThan(1.2);
    b[latencyBucket(1)] = 98;
    b[latencyBucket(500)] = 2;
    const p = histogramQuantile(b, 100, 0.99, 1, 500);
    expect(Math.abs(p - 500) / 500).toBeLessThan(0.2);
    expect(histogramQuantile(b, 0, 0.99, 0, 0)).toBe(0);
  });
});

describe("DigestTable", () => {
  test("counts per (digest, user, schema): count, errors, rows, total/min/max, first/last seen", () => {
    let now = 1000;
    const t = new DigestTable({ clock: () => now });
    t.record(d1, "app", "shop", 2, 1, true);
    now = 2000;
    t.record(d1, "app", "shop", 4, 1, true);
    t.record(d1, "app", "shop", 6, 0, false);
    t.record(d1, "other", "shop", 1, 5, true);
    t.record(d1, "app", null, 1, 0, true);
    expect(t.size).toBe(3);
    const s = t.snapshot().find((x) => x.user === "app" && x.schema === "shop");
    expect(s).toMatchObject({ hash: d1.hash, text: d1.text, count: 3, errors: 1, rows: 2, totalMs: 12, minMs: 2, maxMs: 6, firstSeen: 1000, lastSeen: 2000 });
    expect(s?.buckets.reduce((a, b) => a + b, 0)).toBe(3);
    expect(t.snapshot().find((x) => x.schema === "")?.count).toBe(1);
  });

  test("bounded: an entry not seen since the sweep passed it is evicted (second chance), evictions counted", () => {
    const t = new DigestTable({ maxEntries: 2 });
    t.record(d1, "a", null, 1, 0, true);
    t.record(d2, "a", null, 1, 0, true);
    t.record(d1, "a", null, 1, 0, true); // d1 seen again: spared once
    t.record({ hash: "c3", text: "DELETE FROM t" }, "a", null, 1, 0, true);
    expect(t.size).toBe(2);
    expect(t.evictions).toBe(1);
    expect(t.snapshot().map((s) => s.hash)).toEqual([d1.hash, "c3"]);
    // every entry seen again: one full pass clears the marks, then the first goes
    t.record(d1, "a", null, 1, 0, true);
    t.record({ hash: "c3", text: "DELETE FROM t" }, "a", null, 1, 0, true);
    t.record({ hash: "d4", text: "x" }, "a", null, 1, 0, true);
    expect(t.snapshot().map((s) => s.hash)).toEqual(["c3", "d4"]);
    expect(t.evictions).toBe(2);
    for (let i = 0; i < 1000; i++) t.record({ hash: `h${i}`, text: "x" }, "a", null, 1, 0, true);
    expect(t.size).toBe(2);
    expect(t.evictions).toBe(1002);
  });

  test("many users and schemas under one hash: each its own entry; entries seen once go before those seen again; an evicted one comes back from zero", () => {
    const t = new DigestTable({ maxEntries: 50 });
    for (let round = 0; round < 3; round++) for (let u = 0; u < 40; u++) t.record(d1, `u${u}`, u % 2 === 0 ? "a" : null, 1, 1, true);
    expect(t.size).toBe(40);
    expect(t.snapshot().every((x) => x.count === 3)).toBe(true);
    for (let k = 0; k < 20; k++) t.record(d2, "x", `s${k}`, 1, 0, true);
    expect(t.size).toBe(50);
    expect(t.evictions).toBe(10);
    const snap = t.snapshot();
    expect(snap).toHaveLength(50);
    // the d1 entries were seen again (spared once); the first d2 ones, seen once, went
    expect(snap.filter((x) => x.hash === d1.hash)).toHaveLength(40);
    expect(snap.filter((x) => x.hash === d2.hash).map((x) => x.schema)).toEqual([...Array(10).keys()].map((k) => `s${k + 10}`));
    t.record(d2, "x", "s0", 1, 0, true);
    expect(t.snapshot().find((x) => x.schema === "s0")?.count).toBe(1);
    expect(t.size).toBe(50);
  });

  test("tables of several workers merge: sums, min of mins, max of maxes, bucket by bucket", () => {
    const a = new DigestTable({ clock: () => 100 });
    const b = new DigestTable({ clock: () => 50 });
    for (let i = 0; i < 99; i++) a.record(d1, "u", "s", 1, 1, true);
    b.record(d1, "u", "s", 300, 2, false);
    b.record(d2, "u", "s", 3, 0, true);
    const m = mergeDigestStats([a.snapshot(), b.snapshot()]);
    expect(m).toHaveLength(2);
    const x = m.find((s) => s.hash === d1.hash);
    expect(x).toMatchObject({ count: 100, errors: 1, rows: 101, totalMs: 399, minMs: 1, maxMs: 300, firstSeen: 50, lastSeen: 100 });
    expect(digestP99(x!)).toBeLessThan(1.2);
    // the inputs are left alone
    expect(a.snapshot()[0].count).toBe(99);
  });

  test("observer: statement records count by digest, user and schema; non-statements are skipped", () => {
    const t = new DigestTable();
    const o = t.observer();
    const rec = (sql: string, kind: string) =>
      ({
        sql,
        kind,
        session: { user: "app" },
        schema: "db",
        rows: 1,
        ok: true,
        startedAt: 10,
        endedAt: 12.5,
        digest: () => ({ hash: `h:${sql}`, text: sql }),
      }) as never;
    o.statement?.(rec("SELECT 1", "SELECT"));
    o.statement?.(rec("", ""));
    expect(t.snapshot()).toEqual([expect.objectContaining({ hash: "h:SELECT 1", user: "app", schema: "db", count: 1, totalMs: 2.5 })]);
    expect(o.wants).toEqual({ digest: true, sql: false });
  });
});

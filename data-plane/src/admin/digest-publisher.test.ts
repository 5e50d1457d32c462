import { digestsKey, publishedDigests } from "./digest-publisher";
import { DigestTable, LATENCY_BUCKET_BASE_MS, LATENCY_BUCKET_FACTOR } from "../observe/digest-table";
import type { WorkerFigures } from "../observe/worker-observation";

function worker(i: number, fill: (t: DigestTable) => void): WorkerFigures {
  const t = new DigestTable({ clock: () => 1000 });
  fill(t);
  return { worker: i, digests: t.snapshot(), digestEvictions: 0, connections: [], backends: [], requestLog: { written: 0, dropped: 0 } };
}

describe("published digests", () => {
  test("the workers' tables merged, the top N by total time, with the histogram layout", () => {
    const a = worker(0, (t) => {
      for (let i = 0; i < 10; i++) t.record({ hash: "h1", text: "SELECT ?" }, "app", "shop", 1, 1, true);
      t.record({ hash: "h3", text: "SELECT 3" }, "app", "shop", 0.5, 0, true);
    });
    const b = worker(1, (t) => t.record({ hash: "h2", text: "UPDATE ?" }, "app", "shop", 30, 0, false));
    const p = publishedDigests("dp-1", [a, b], 2, 5000);
    expect(p).toMatchObject({ dataPlaneId: "dp-1", publishedAt: 5000, workers: 2, bucketBaseMs: LATENCY_BUCKET_BASE_MS, bucketFactor: LATENCY_BUCKET_FACTOR, totalDigests: 3 });
    expect(p.digests.map((d) => [d.hash, d.count, d.totalMs, d.errors])).toEqual([
      ["h2", 1, 30, 1],
      ["h1", 10, 10, 0],
    ]);
    expect(JSON.parse(JSON.stringify(p))).toEqual(p);
  });

  test("key layout beside the registry's", () => {
    expect(digestsKey("/mysqlgw", "dp-1")).toBe("/mysqlgw/v1/digests/dp-1");
    expect(digestsKey("/x/", "dp-1")).toBe("/x/v1/digests/dp-1");
  });
});

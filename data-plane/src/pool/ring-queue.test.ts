import { RingQueue } from "./ring-queue";

describe("RingQueue", () => {
  it("is first in, first out across wrap-around and growth", () => {
    const q = new RingQueue<number>(4);
    const out: number[] = [];
    let next = 0;
    // interleave pushes and shifts so that head wraps, then grow past the capacity several times
    for (let round = 0; round < 50; round++) {
      for (let i = 0; i < (round % 7) + 1; i++) q.push(next++);
      for (let i = 0; i < (round % 3) + 1 && q.length > 0; i++) out.push(q.shift() as number);
    }
    q.drain((n) => out.push(n));
    expect(q.length).toBe(0);
    expect(q.shift()).toBeUndefined();
    expect(out).toEqual(Array.from({ length: next }, (_, i) => i));
  });

  it("rounds the capacity up to a power of two and reports its length", () => {
    const q = new RingQueue<string>(3);
    q.push("a");
    q.push("b");
    expect(q.length).toBe(2);
    expect(q.shift()).toBe("a");
    expect(q.length).toBe(1);
  });
});

import { createRestartLimiter } from "./worker-pool";

describe("restart limiter", () => {
  it("allows max restarts per sliding window, then says how long to wait", () => {
    const l = createRestartLimiter(3, 1000);
    expect([l.take(0), l.take(10), l.take(20)]).toEqual([0, 0, 0]);
    expect(l.take(30)).toBe(971); // the restart at t=0 leaves the window at t=1000
    expect(l.take(500)).toBe(501);
    expect(l.take(1001)).toBe(0);
    expect(l.take(1002)).toBe(9); // now t=10 is the oldest
    expect(l.take(5000)).toBe(0);
  });

  it("never asks to wait 0 ms when throttled", () => {
    const l = createRestartLimiter(1, 1000);
    expect(l.take(0)).toBe(0);
    expect(l.take(999)).toBeGreaterThan(0);
  });
});

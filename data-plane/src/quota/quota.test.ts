import { create } from "@bufbuild/protobuf";
import { Registry } from "prom-client";
import { registerQuotaMetrics } from "../metrics/quota-metrics";
import { Quota_OnExceed, QuotaSchema, type Quota } from "@mysqlgw/proto";
import { ConcurrencyGate } from "./concurrency-gate";
import { Limiter, Waited } from "./limiter";
import { QuotaRegistry } from "./quota-registry";
import { compileQuotaSpec, DEFAULT_MAX_QUEUE, DEFAULT_MAX_WAIT_MS, type QuotaOutcome } from "./quota-state";
import { burstShare, rateShare, slotShare, type FleetPosition } from "./share";
import { TokenBucket } from "./token-bucket";
import { WaitQueue } from "./wait-queue";
import { fleetPosition, parseDataPlaneKey, readFleetMessage } from "./fleet-relay";
import type { ErrPacket } from "../protocol/packets/err";
import type { QuotaClock } from "./clock";

/** A clock driven by hand: advance() fires due timers in time order. For unit tests only. */
class FakeClock implements QuotaClock {
  t = 0;
  private seq = 0;
  private readonly timers = new Map<number, { at: number; fn: () => void }>();

  now(): number {
    return this.t;
  }

  setTimer(fn: () => void, ms: number): unknown {
    const id = ++this.seq;
    this.timers.set(id, { at: this.t + ms, fn });
    return id;
  }

  clearTimer(handle: unknown): void {
    this.timers.delete(handle as number);
  }

  get pending(): number {
    return this.timers.size;
  }

  /** Moves time forward by `ms`, firing every timer due on the way (at its own time). */
  advance(ms: number): void {
    const end = this.t + ms;
    for (let guard = 0; guard < 1_000_000; guard++) {
      let next: [number, { at: number; fn: () => void }] | null = null;
      for (const e of this.timers) if (e[1].at <= end && (next === null || e[1].at < next[1].at)) next = e;
      if (next === null) break;
      this.timers.delete(next[0]);
      this.t = Math.max(this.t, next[1].at);
      next[1].fn();
    }
    this.t = end;
  }
}

/** Lets settled promises run their continuations. */
async function flush(): Promise<void> {
  for (let i = 0; i < 10; i++) await Promise.resolve();
}

const quota = (q: Partial<Quota> & { name: string }): Quota => create(QuotaSchema, q);
/** Compiles and puts in force, as the listener manager does once a version is served. */
const use = (reg: QuotaRegistry, qs: Quota[]) => reg.activate(reg.compile(qs));

describe("TokenBucket", () => {
  it("starts full, admits its capacity at once, then one token per 1/rate", () => {
    const b = new TokenBucket(10, 3, 0);
    expect([b.tryTake(0), b.tryTake(0), b.tryTake(0), b.tryTake(0)]).toEqual([true, true, true, false]);
    expect(b.msUntilToken(0)).toBeCloseTo(100);
    expect(b.tryTake(99)).toBe(false);
    expect(b.tryTake(100)).toBe(true);
    // 10 s later it holds its capacity, not 100 tokens
    expect(b.available(10_100)).toBe(3);
  });

  it("keeps fractions: over a long span the admitted count is rate × time", () => {
    const b = new TokenBucket(7, 1, 0);
    b.tryTake(0);
    let n = 0;
    for (let t = 1; t <= 10_000; t += 13) while (b.tryTake(t)) n++;
    expect(n).toBe(Math.floor((10_000 - 9) * 7 / 1000)); // last step at t = 9992
  });

  it("configure() clamps tokens to a smaller capacity; refund() never exceeds it; rate 0 never refills", () => {
    const b = new TokenBucket(100, 100, 0);
    b.configure(1, 5, 0);
    expect(b.available(0)).toBe(5);
    b.refund();
    expect(b.available(0)).toBe(5);
    b.configure(0, 5, 0);
    for (let i = 0; i < 5; i++) b.tryTake(0);
    expect(b.msUntilToken(1e9)).toBe(Infinity);
  });
});

describe("ConcurrencyGate and WaitQueue", () => {
  it("gate: slots up to the limit; a lowered limit applies as statements finish", () => {
    const g = new ConcurrencyGate(2);
    expect([g.tryAcquire(), g.tryAcquire(), g.tryAcquire()]).toEqual([true, true, false]);
    g.setLimit(1);
    g.release();
    expect(g.full).toBe(true);
    g.release();
    expect(g.tryAcquire()).toBe(true);
  });

  it("queue: FIFO, removal from the middle, live length", () => {
    const q = new WaitQueue<{ done: boolean; id: number }>();
    const items = [1, 2, 3, 4].map((id) => ({ done: false, id }));
    for (const i of items) q.push(i);
    q.remove(items[1]);
    q.remove(items[0]);
    expect(q.length).toBe(2);
    expect(q.shift()?.id).toBe(3);
    expect(q.peek()?.id).toBe(4);
    expect(q.drain().map((i) => i.id)).toEqual([4]);
    expect(q.length).toBe(0);
    expect(q.shift()).toBeUndefined();
  });
});

describe("Limiter", () => {
  it("serves waiters in order as tokens accrue; a newcomer does not overtake them", async () => {
    const clock = new FakeClock();
    const l = new Limiter(clock, { ratePerSecond: 10, burst: 1, concurrency: null });
    expect(l.tryNow()).toBe(true);
    const order: number[] = [];
    const a = l.wait(10, 1000).then((w) => order.push(1) && w);
    const b = l.wait(10, 1000).then((w) => order.push(2) && w);
    clock.advance(100); // a token accrued: the first waiter, and nobody who did not wait
    expect(l.tryNow()).toBe(false);
    await flush();
    expect(order).toEqual([1]);
    clock.advance(100);
    await flush();
    expect(order).toEqual([1, 2]);
    expect([await a, await b]).toEqual([Waited.Admitted, Waited.Admitted]);
    expect(l.queued).toBe(0);
  });

  it("refuses when the queue is full and when maxWait passes", async () => {
    const clock = new FakeClock();
    const l = new Limiter(clock, { ratePerSecond: 1, burst: 1, concurrency: null });
    l.tryNow();
    const first = l.wait(1, 200);
    expect(await l.wait(1, 200)).toBe(Waited.QueueFull);
    clock.advance(200);
    expect(await first).toBe(Waited.Timeout);
    expect(l.queued).toBe(0);
  });

  it("a released slot goes to the oldest waiter", async () => {
    const clock = new FakeClock();
    const l = new Limiter(clock, { ratePerSecond: 0, burst: 0, concurrency: 2 });
    expect([l.tryNow(), l.tryNow(), l.tryNow()]).toEqual([true, true, false]);
    let admitted = false;
    const w = l.wait(5, 1000).then((r) => {
      admitted = true;
      return r;
    });
    await flush();
    expect(admitted).toBe(false);
    l.release();
    expect(await w).toBe(Waited.Admitted);
    expect(l.gate?.inUse).toBe(2);
  });

  it("with demand always waiting, admits exactly rate × time (steady state)", async () => {
    const clock = new FakeClock();
    const l = new Limiter(clock, { ratePerSecond: 100, burst: 100, concurrency: null });
    let admitted = 0;
    // drain the initial burst
    while (l.tryNow()) admitted++;
    expect(admitted).toBe(100);
    admitted = 0;
    const clients = 8;
    let stop = false;
    const loop = async (): Promise<void> => {
      for (let i = 0; i < 10_000 && !stop; i++) {
        if ((await l.wait(DEFAULT_MAX_QUEUE, 10_000)) === Waited.Admitted) admitted++;
      }
    };
    const runs = Array.from({ length: clients }, () => loop());
    for (let t = 0; t < 5000; t++) {
      clock.advance(1);
      await flush();
    }
    expect(admitted).toBeGreaterThanOrEqual(499);
    expect(admitted).toBeLessThanOrEqual(501);
    stop = true;
    l.releaseAll();
    await Promise.all(runs);
  });
});

describe("fleet shares", () => {
  const at = (dataPlanes: number, rank: number, workerIndex: number, workerCount: number): FleetPosition => ({ dataPlanes, rank, workerIndex, workerCount });

  it("a rate splits over data planes × workers; the burst too but never below one token", () => {
    expect(rateShare(300, at(3, 0, 0, 1))).toBe(100);
    expect(rateShare(300, at(2, 1, 1, 2))).toBe(75);
    expect(burstShare(0, 300, at(3, 0, 0, 1))).toBe(100); // burst 0: one second's worth
    expect(burstShare(30, 300, at(3, 0, 0, 2))).toBe(5);
    expect(burstShare(2, 10, at(3, 0, 0, 4))).toBe(1);
  });

  it("slots are whole and add up to the figure over the fleet's workers", () => {
    for (const [figure, dps, workers] of [[2, 3, 1], [10, 3, 2], [7, 2, 4], [1, 4, 1], [100, 3, 3]]) {
      let sum = 0;
      for (let r = 0; r < dps; r++) for (let w = 0; w < workers; w++) sum += slotShare(figure, at(dps, r, w, workers));
      expect(sum).toBe(figure);
    }
    expect(slotShare(2, at(3, 2, 0, 1))).toBe(0);
  });

  it("fleetPosition counts this data plane and ranks it by id; registry keys parse", () => {
    expect(fleetPosition([], "dp-b")).toEqual({ dataPlanes: 1, rank: 0 });
    expect(fleetPosition(["dp-a", "dp-c"], "dp-b")).toEqual({ dataPlanes: 3, rank: 1 });
    expect(fleetPosition(["dp-a", "dp-b"], "dp-b")).toEqual({ dataPlanes: 2, rank: 1 });
    expect(parseDataPlaneKey("/mysqlgw/v1/dataplanes/dp1", "/mysqlgw/v1/dataplanes/")).toEqual({ cluster: "dp1", backend: "dp" });
    expect(parseDataPlaneKey("/mysqlgw/v1/dataplanes/a/b", "/mysqlgw/v1/dataplanes/")).toBeNull();
    expect(readFleetMessage({ t: "mgw:fleet", dataPlanes: 2, rank: 1 })).toEqual({ t: "mgw:fleet", dataPlanes: 2, rank: 1 });
    expect(readFleetMessage({ t: "mgw:health" })).toBeNull();
  });
});

describe("QuotaRegistry and SessionQuotas", () => {
  function setup() {
    const clock = new FakeClock();
    const counts: Record<string, number> = {};
    const reg = new QuotaRegistry(clock, { outcome: (q: string, o: QuotaOutcome) => void (counts[`${q}/${o}`] = (counts[`${q}/${o}`] ?? 0) + 1) });
    return { clock, counts, reg };
  }
  const isErr = (x: unknown): x is ErrPacket => typeof x === "object" && x !== null && !(x instanceof Promise) && "errno" in x;

  it("compiles defaults: QUEUE, maxQueue 1000, maxWait 1 s", () => {
    const s = compileQuotaSpec(quota({ name: "q", queriesPerSecond: 5 }));
    expect(s).toMatchObject({ reject: false, maxQueue: DEFAULT_MAX_QUEUE, maxWaitMs: DEFAULT_MAX_WAIT_MS, users: null, perUser: false });
    expect(compileQuotaSpec(quota({ name: "q", onExceed: Quota_OnExceed.REJECT, maxWait: { seconds: 0n, nanos: 250_000_000 } }))).toMatchObject({ reject: true, maxWaitMs: 250 });
  });

  it("matches by listener and cluster per listener, by user per session; no quota: inactive", () => {
    const { reg } = setup();
    const none = reg.session("rw", "main", "app");
    expect(none.active).toBe(false);
    const c = reg.compile([quota({ name: "a", users: ["app"], listeners: ["rw"], queriesPerSecond: 1 }), quota({ name: "b", clusters: ["other"], queriesPerSecond: 1 })]);
    // compiled, not yet in force (a version this worker failed to apply changes nothing)
    expect(none.active).toBe(false);
    reg.activate(c);
    expect(c.forListener("ro", "main")).toBeNull();
    const lq = c.forListener("rw", "main")!;
    expect(lq.covers("app")).toBe(true);
    expect(lq.covers("bob")).toBe(false);
    expect(reg.session("rw", "main", "bob").size).toBe(0);
    expect(reg.session("rw", "main", "app").size).toBe(1);
    expect(reg.session("x", "other", "bob").size).toBe(1);
    // a session opened before the quota existed counts from its next statement
    expect(none.active).toBe(true);
    expect(none.size).toBe(1);
    expect(reg.compile([]).forListener("rw", "main")).toBeNull();
    use(reg, []);
    expect(none.active).toBe(false);
    expect(none.size).toBe(0);
  });

  it("REJECT: ERR 1226 / 42000 naming the quota and its figure; counted", () => {
    const { reg, counts } = setup();
    use(reg, [quota({ name: "app-rate", queriesPerSecond: 2, onExceed: Quota_OnExceed.REJECT })]);
    const s = reg.session("rw", "main", "app");
    expect(s.admit(null)).toBeNull();
    expect(s.admit(null)).toBeNull();
    const e = s.admit(null);
    expect(isErr(e)).toBe(true);
    expect(e).toMatchObject({ errno: 1226, sqlState: "42000" });
    expect((e as ErrPacket).message).toBe("User 'app' has exceeded the 'quota app-rate: 2 queries per second' resource (fleet-wide); slow down and retry, or raise the quota (mysqlgw get quotas)");
    expect(counts).toEqual({ "app-rate/admitted": 2, "app-rate/rejected": 1 });
  });

  it("every matching quota must admit; a refusal gives back the others' tokens and slots", () => {
    const { reg } = setup();
    const states = use(reg, [
      quota({ name: "slots", maxConcurrent: 1 }),
      quota({ name: "rate", queriesPerSecond: 1, onExceed: Quota_OnExceed.REJECT }),
    ]);
    const s = reg.session("rw", "main", "app");
    expect(s.admit(null)).toBeNull(); // one slot, the token
    s.release();
    const e = s.admit(null); // the slot was free, the rate refuses: the slot is given back
    expect(isErr(e) && e.message).toContain("'quota rate: 1 queries per second'");
    const other = reg.session("rw", "main", "bob");
    const limiter = states[0].limiterFor("bob");
    expect(limiter.gate?.inUse).toBe(0);
    expect(isErr(other.admit(null))).toBe(true); // still no token, but not for want of a slot
  });

  it("QUEUE: a waiting statement is admitted when a slot frees; timeout gives ERR naming maxWait", async () => {
    const { reg, clock, counts } = setup();
    use(reg, [quota({ name: "conc", maxConcurrent: 1, maxWait: { seconds: 1n, nanos: 0 } })]);
    const [a, b, d] = [1, 2, 3].map(() => reg.session("rw", "main", "app"));
    expect(a.admit(null)).toBeNull();
    const pb = b.admit(null) as Promise<ErrPacket | null>;
    expect(pb).toBeInstanceOf(Promise);
    a.release();
    expect(await pb).toBeNull();
    const pd = d.admit(null) as Promise<ErrPacket | null>;
    clock.advance(1000);
    const e = await pd;
    expect(e?.message).toBe("User 'app' has exceeded the 'quota conc: 1 concurrent statements' resource (fleet-wide); not admitted within 1000 ms (maxWait); slow down and retry, or raise the quota (mysqlgw get quotas)");
    expect(counts).toEqual({ "conc/admitted": 1, "conc/queued": 1, "conc/rejected": 1 });
  });

  it("rule-matched quotas count only statements of that rule; per_user gives each user a bucket", () => {
    const { reg } = setup();
    use(reg, [quota({ name: "r", rules: ["reports"], queriesPerSecond: 1, onExceed: Quota_OnExceed.REJECT }), quota({ name: "u", perUser: true, queriesPerSecond: 1, burst: 1, onExceed: Quota_OnExceed.REJECT, users: ["x", "y"] })]);
    const z = reg.session("rw", "main", "z");
    expect(z.admit(null)).toBeNull();
    expect(z.admit("other")).toBeNull();
    expect(z.admit("reports")).toBeNull();
    expect(isErr(z.admit("reports"))).toBe(true);
    const x = reg.session("rw", "main", "x");
    const y = reg.session("rw", "main", "y");
    expect(x.admit(null)).toBeNull();
    expect(y.admit(null)).toBeNull();
    expect((x.admit(null) as ErrPacket).message).toContain("(per user, fleet-wide)");
    // COM_CHANGE_USER: the new user's buckets
    x.setUser("z");
    expect(x.admit(null)).toBeNull();
  });

  it("keeps a quota's state across versions by name, re-shares on fleet changes, retires removed ones", async () => {
    const { reg, clock } = setup();
    const [st] = use(reg, [quota({ name: "q", queriesPerSecond: 300 })]);
    expect(st.currentShare.ratePerSecond).toBe(300);
    reg.setWorker(1, 2);
    reg.setFleet(3, 2);
    expect(st.currentShare.ratePerSecond).toBe(50);
    const v2 = reg.compile([quota({ name: "q", queriesPerSecond: 600, maxConcurrent: 7 })]);
    expect(st.currentShare.ratePerSecond).toBe(50); // compiled only: nothing changes yet
    expect(reg.activate(v2)[0]).toBe(st);
    expect(st.currentShare).toEqual({ ratePerSecond: 100, burst: 100, concurrency: 1 }); // 7 slots over 6 workers: worker 5 gets one
    reg.setFleet(2, 0);
    expect(st.currentShare.ratePerSecond).toBe(150);
    expect(v2.forListener("rw", "main")).not.toBeNull();
    // a waiter of a quota that goes away goes ahead; the session then checks nothing
    const s = reg.session("rw", "main", "app");
    for (let i = 0; i < 200 && s.admit(null) === null; i++) s.release();
    const waiting = s.admit(null);
    expect(waiting).toBeInstanceOf(Promise);
    use(reg, []);
    expect(await waiting).toBeNull();
    s.release();
    expect([...reg.all()]).toEqual([]);
    expect(s.active).toBe(false);
    expect(s.admit(null)).toBeNull();
    clock.advance(10_000);
  });
});

describe("quota metrics", () => {
  it("counts outcomes per quota and reports queue length, share and fleet size", async () => {
    const registry = new Registry();
    const clock = new FakeClock();
    const reg = new QuotaRegistry(clock);
    registerQuotaMetrics(registry, reg);
    use(reg, [quota({ name: "q", queriesPerSecond: 30, burst: 3 })]);
    reg.setFleet(3, 0);
    const s = reg.session("rw", "main", "app");
    expect(s.admit(null)).toBeNull(); // the one token of this worker's bucket
    const waiting = s.admit(null);
    const text = await registry.metrics();
    expect(text).toContain('mysqlgw_quota_statements_total{quota="q",outcome="admitted"} 1');
    expect(text).toContain('mysqlgw_quota_queued_statements{quota="q"} 1');
    expect(text).toContain('mysqlgw_quota_share_queries_per_second{quota="q"} 10');
    expect(text).toContain("mysqlgw_quota_data_planes 3");
    clock.advance(100);
    expect(await waiting).toBeNull();
    expect(await registry.metrics()).toContain('mysqlgw_quota_statements_total{quota="q",outcome="queued"} 1');
  });
});

import { Buffer } from "node:buffer";
import { Capability } from "../protocol/constants";
import type { RuleAction } from "../routing/rules";
import { cacheContext, cacheKey, ENTRY_OVERHEAD_BYTES, ResponseRecorder, ResultCache, ResultCaches } from "./result-cache";

/** What an entry of `bytes` bytes under `key` counts against the budget. */
const cost = (key: string, bytes: number): number => bytes + key.length * 2 + ENTRY_OVERHEAD_BYTES;

describe("ResultCache TTL (injected clock)", () => {
  it("serves an entry until its TTL, then forgets it", () => {
    const c = new ResultCache({ maxBytes: 1 << 20 });
    const b = Buffer.from("response");
    c.put("k", b, 1000, 10_000);
    expect(c.get("k", 10_000)).toBe(b);
    expect(c.get("k", 10_999)).toBe(b);
    expect(c.get("k", 11_000)).toBeNull();
    expect(c.get("k", 10_500)).toBeNull(); // removed on the expired lookup
    expect(c.stats()).toMatchObject({ entries: 0, bytes: 0, hits: 2, misses: 2, expirations: 1, stores: 1 });
  });

  it("each entry keeps its own TTL; a put replaces the entry and its expiry", () => {
    const c = new ResultCache({ maxBytes: 1 << 20 });
    c.put("short", Buffer.from("a"), 10, 0);
    c.put("long", Buffer.from("b"), 10_000, 0);
    expect(c.get("short", 10)).toBeNull();
    expect(c.get("long", 9_999)?.toString()).toBe("b");
    c.put("long", Buffer.from("c"), 5, 9_999);
    expect(c.get("long", 10_000)?.toString()).toBe("c");
    expect(c.get("long", 10_004)).toBeNull();
    expect(c.stats().bytes).toBe(0);
  });

  it("prune removes every expired entry and their bytes", () => {
    const c = new ResultCache({ maxBytes: 1 << 20 });
    for (let i = 0; i < 10; i++) c.put(`k${i}`, Buffer.alloc(100), i < 6 ? 100 : 1000, 0);
    expect(c.prune(500)).toBe(6);
    expect(c.stats()).toMatchObject({ entries: 4, bytes: 4 * cost("k0", 100), expirations: 6 });
  });

  it("refuses a TTL of 0 or less", () => {
    const c = new ResultCache({ maxBytes: 1 << 20 });
    c.put("k", Buffer.from("x"), 0, 0);
    c.put("k", Buffer.from("x"), -5, 0);
    expect(c.get("k", 0)).toBeNull();
    expect(c.stats().rejected).toBe(2);
  });
});

describe("ResultCache LRU by bytes", () => {
  it("evicts the least recently used entries until a new one fits", () => {
    const one = cost("k0", 1000);
    const c = new ResultCache({ maxBytes: 3 * one });
    c.put("k0", Buffer.alloc(1000, 0), 60_000, 0);
    c.put("k1", Buffer.alloc(1000, 1), 60_000, 0);
    c.put("k2", Buffer.alloc(1000, 2), 60_000, 0);
    expect(c.stats().bytes).toBe(3 * one);
    c.get("k0", 1); // k0 is now the most recently used: k1 goes first
    c.put("k3", Buffer.alloc(1000, 3), 60_000, 2);
    expect(c.get("k1", 3)).toBeNull();
    expect(c.get("k0", 3)?.[0]).toBe(0);
    expect(c.get("k2", 3)?.[0]).toBe(2);
    expect(c.get("k3", 3)?.[0]).toBe(3);
    expect(c.stats()).toMatchObject({ entries: 3, bytes: 3 * one, evictions: 1 });
  });

  it("one large entry evicts as many small ones as it needs, never more", () => {
    const small = cost("s0", 100);
    const c = new ResultCache({ maxBytes: 10 * small });
    for (let i = 0; i < 10; i++) c.put(`s${i}`, Buffer.alloc(100), 60_000, 0);
    c.put("big", Buffer.alloc(3 * small), 60_000, 0); // needs a bit over 3 small slots
    const s = c.stats();
    expect(s.evictions).toBe(4);
    expect(s.entries).toBe(7);
    expect(s.bytes).toBeLessThanOrEqual(10 * small);
    expect(c.get("s0", 1)).toBeNull();
    expect(c.get("s3", 1)).toBeNull();
    expect(c.get("s4", 1)).not.toBeNull();
  });

  it("never holds more than maxBytes over many random puts", () => {
    const c = new ResultCache({ maxBytes: 50_000 });
    let seed = 7;
    const rand = (n: number): number => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed % n;
    };
    let most = 0;
    for (let i = 0; i < 5000; i++) {
      c.put(`k${rand(500)}`, Buffer.alloc(rand(4000)), 1 + rand(100), i);
      if (i % 3 === 0) c.get(`k${rand(500)}`, i);
      most = Math.max(most, c.stats().bytes);
    }
    expect(most).toBeLessThanOrEqual(50_000);
    expect(most).toBeGreaterThan(40_000);
    // what stats count is what the entries hold
    let sum = 0;
    for (let i = 0; i < 500; i++) {
      const b = c.get(`k${i}`, 0); // clock 0: nothing counts as expired
      if (b !== null) sum += cost(`k${i}`, b.length);
    }
    expect(sum).toBe(c.stats().bytes);
  });

  it("refuses a response larger than the whole budget and keeps what it has", () => {
    const c = new ResultCache({ maxBytes: 1000 });
    c.put("a", Buffer.alloc(10), 1000, 0);
    c.put("b", Buffer.alloc(1000), 1000, 0);
    expect(c.get("a", 1)).not.toBeNull();
    expect(c.stats()).toMatchObject({ rejected: 1, entries: 1 });
  });

  it("resize evicts down to the new budget", () => {
    const c = new ResultCache({ maxBytes: 1 << 20 });
    for (let i = 0; i < 10; i++) c.put(`k${i}`, Buffer.alloc(1000), 60_000, 0);
    c.resize(3 * cost("k0", 1000), 0);
    expect(c.stats()).toMatchObject({ entries: 3, evictions: 7 });
    expect(c.get("k9", 0)).not.toBeNull();
  });
});

describe("cacheKey", () => {
  const base = Capability.Protocol41 | Capability.SecureConnection | Capability.PluginAuth;
  it("separates users, schemas (null vs empty), texts and result-shaping capabilities", () => {
    const k = cacheKey("app", "shop", "SELECT 1", base);
    expect(cacheKey("app", "shop", "SELECT 1", base)).toBe(k);
    expect(cacheKey("bi", "shop", "SELECT 1", base)).not.toBe(k);
    expect(cacheKey("app", "shop2", "SELECT 1", base)).not.toBe(k);
    expect(cacheKey("app", null, "SELECT 1", base)).not.toBe(cacheKey("app", "", "SELECT 1", base));
    expect(cacheKey("app", "shop", "SELECT  1", base)).not.toBe(k);
    expect(cacheKey("app", "shop", "SELECT 1", base | Capability.DeprecateEof)).not.toBe(k);
    expect(cacheKey("app", "shop", "SELECT 1", base | Capability.SessionTrack)).not.toBe(k);
    expect(cacheKey("app", "shop", "SELECT 1", base, "cs=45")).not.toBe(k);
  });

  it("ignores capabilities that do not change a response (TLS, compression, attributes)", () => {
    const k = cacheKey("app", "shop", "SELECT 1", base);
    expect(cacheKey("app", "shop", "SELECT 1", base | Capability.Ssl | Capability.Compress | Capability.ConnectAttrs)).toBe(k);
  });

  it("no choice of names makes two tuples one key", () => {
    expect(cacheKey("a|1:b", null, "x", 0)).not.toBe(cacheKey("a", "b", "x", 0));
    expect(cacheKey("a", "b|", "x", 0)).not.toBe(cacheKey("a", "b", "|x", 0));
  });
});

describe("cacheContext", () => {
  it("names the character set, MariaDB capabilities and settings, in a stable order", () => {
    expect(cacheContext(45, 4)).toBe("cs=45;mc=4");
    const a = cacheContext(45, 0, new Map([["time_zone", "'+00:00'"], ["sql_mode", "'ANSI'"]]));
    const b = cacheContext(45, 0, new Map([["sql_mode", "'ANSI'"], ["time_zone", "'+00:00'"]]));
    expect(a).toBe(b);
    expect(a).not.toBe(cacheContext(45, 0, new Map([["sql_mode", "'ANSI'"]])));
    expect(cacheContext(33, 0)).not.toBe(cacheContext(45, 0));
  });
});

describe("ResponseRecorder", () => {
  it("copies each chunk (the caller may reuse it) and returns the whole response once", () => {
    const r = new ResponseRecorder(100);
    const chunk = Buffer.from("abc");
    r.add(chunk);
    chunk.fill(0x7a);
    r.add(Buffer.from("def"));
    expect(r.size).toBe(6);
    expect(r.take()?.toString()).toBe("abcdef");
    expect(r.take()).toBeNull(); // starts afresh
    r.add(Buffer.from("g"));
    expect(r.take()?.toString()).toBe("g");
  });

  it("gives up past maxBytes and frees what it held", () => {
    const r = new ResponseRecorder(10);
    r.add(Buffer.alloc(6));
    r.add(Buffer.alloc(4));
    expect(r.size).toBe(10);
    r.add(Buffer.alloc(1));
    expect(r.gaveUp).toBe(true);
    expect(r.size).toBe(0);
    r.add(Buffer.alloc(1)); // ignored after giving up
    expect(r.take()).toBeNull();
    expect(r.gaveUp).toBe(false);
    r.add(Buffer.from("ok"));
    expect(r.take()?.toString()).toBe("ok");
  });

  it("reset forgets a response under way", () => {
    const r = new ResponseRecorder(10);
    r.add(Buffer.from("abc"));
    r.reset();
    expect(r.take()).toBeNull();
  });
});

describe("ResultCaches (per rule, across config versions)", () => {
  const action = (rule: string, cache: RuleAction["cache"]): RuleAction => ({ rule, route: null, deny: null, rewrite: null, mirror: null, cache });

  it("one cache per caching rule, with the rule's budget; none for other rules", () => {
    const reg = new ResultCaches();
    const a = reg.cacheFor(action("a", { ttlMs: 1000, maxResultBytes: 100, maxBytes: 5000 }));
    const b = reg.cacheFor(action("b", { ttlMs: 1000, maxResultBytes: 100, maxBytes: 7000 }));
    expect(a).not.toBe(b);
    expect(a?.maxBytes).toBe(5000);
    expect(reg.cacheFor(action("a", { ttlMs: 1000, maxResultBytes: 100, maxBytes: 5000 }))).toBe(a);
    expect(reg.cacheFor(action("deny-only", null))).toBeNull();
  });

  it("sync keeps unchanged caches, resizes, empties on a shorter TTL, drops rules gone", () => {
    const reg = new ResultCaches();
    const keep = reg.cacheFor(action("keep", { ttlMs: 1000, maxResultBytes: 100, maxBytes: 1 << 20 })) as ResultCache;
    const shrink = reg.cacheFor(action("shrink", { ttlMs: 1000, maxResultBytes: 100, maxBytes: 1 << 20 })) as ResultCache;
    const ttl = reg.cacheFor(action("ttl", { ttlMs: 1000, maxResultBytes: 100, maxBytes: 1 << 20 })) as ResultCache;
    reg.cacheFor(action("gone", { ttlMs: 1000, maxResultBytes: 100, maxBytes: 1 << 20 }));
    for (const c of [keep, shrink, ttl]) for (let i = 0; i < 4; i++) c.put(`k${i}`, Buffer.alloc(1000), 1000, 0);
    reg.sync(
      [
        action("keep", { ttlMs: 1000, maxResultBytes: 100, maxBytes: 1 << 20 }),
        action("shrink", { ttlMs: 1000, maxResultBytes: 100, maxBytes: 2 * cost("k0", 1000) }),
        action("ttl", { ttlMs: 10, maxResultBytes: 100, maxBytes: 1 << 20 }),
        action("gone", null),
      ],
      1,
    );
    expect(reg.size).toBe(3);
    expect(reg.cacheFor(action("keep", { ttlMs: 1000, maxResultBytes: 100, maxBytes: 1 << 20 }))).toBe(keep);
    expect(keep.stats().entries).toBe(4);
    expect(shrink.stats()).toMatchObject({ entries: 2, maxBytes: 2 * cost("k0", 1000) });
    expect(ttl.stats().entries).toBe(0);
    expect([...reg.stats().keys()].sort()).toEqual(["keep", "shrink", "ttl"]);
  });
});

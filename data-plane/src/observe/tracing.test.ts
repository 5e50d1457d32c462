import type { SessionInfo, StatementRecord } from "./observer";
import { phaseSpans, type SpanData } from "./otlp-encode";
import { createTracingObserver, parseTraceparent } from "./tracing";
import { DEFAULT_TRACING, type TracingView } from "./tracing-settings";
import { SpanQueue } from "./span-queue";

const OFF = 1_700_000_000_000;

function setup(view: TracingView = { settings: DEFAULT_TRACING, clusters: new Map() }, rawSql = false) {
  const got: SpanData[] = [];
  // a statement span stands for its phase spans too (the encoder writes them): expanded here as the collector sees them
  const obs = createTracingObserver({ sink: { add: (s) => void got.push(s, ...phaseSpans(s)) }, epochOffsetMs: OFF, view, rawSql });
  const spans = (): Promise<SpanData[]> => Promise.resolve(got);
  return { obs, spans };
}

function session(id = 1): SessionInfo {
  return { connectionId: id, listener: "split", user: "", clientAddress: "127.0.0.1:50123", openedAt: 100, tls: false };
}

function record(s: SessionInfo, over: Partial<StatementRecord> = {}): StatementRecord {
  return {
    session: s,
    command: 3,
    kind: "SELECT",
    sql: "SELECT name FROM users WHERE id = 42 AND email = 'a@b.c'",
    digest: () => ({ text: "SELECT name FROM users WHERE id = ? AND email = ?", hash: "0123456789abcdef" }),
    traceparent: null,
    schema: "shop",
    target: "replica",
    cluster: "main",
    backend: "r1",
    reason: "read",
    rule: null,
    pinReason: null,
    ok: true,
    errno: 0,
    rows: 1,
    bytes: 120,
    startedAt: 200,
    routedAt: 200.1,
    acquiredAt: 200.4,
    firstByteAt: 201.4,
    endedAt: 201.5,
    ...over,
  };
}

const ms = (t: number) => t - OFF;
const parentId = (s: SpanData) => (s.parentSpanId === "" ? undefined : s.parentSpanId);
const traceOf = (s: SpanData) => s.traceId;
const idOf = (s: SpanData) => s.spanId;

const view = (over: Partial<TracingView["settings"]> = {}): TracingView => ({
  settings: { ...DEFAULT_TRACING, ...over },
  clusters: new Map([["main", { backends: [{ name: "r1", host: "10.0.0.7", port: 3307 }], runtime: { serverVersion: "5.5.5-11.4.2-MariaDB-log" } }]]),
});

describe("tracing observer", () => {
  it("builds session → auth and statement → route / pool acquire / backend / transfer with times and attributes", async () => {
    const { obs, spans } = setup(view());
    const s = session();
    obs.sessionOpened!(s);
    s.user = "shop";
    obs.sessionAuthenticated!(s, true, 0, 101, 103);
    obs.statement!(record(s));
    obs.sessionClosed!({ session: s, reason: "quit", closedAt: 300 });
    const got = await spans();
    const by = new Map(got.map((x) => [x.name, x]));
    expect([...by.keys()].sort()).toEqual(["SELECT shop", "auth", "backend", "mysqlgw session", "pool acquire", "route", "transfer"]);
    const sess = by.get("mysqlgw session")!;
    const stmt = by.get("SELECT shop")!;
    for (const x of got) expect(traceOf(x)).toBe(traceOf(sess));
    expect(new Set(got.map(idOf)).size).toBe(got.length);
    for (const x of got) expect(idOf(x)).toMatch(/^[0-9a-f]{16}$/);
    expect(parentId(sess)).toBeUndefined();
    expect(parentId(by.get("auth")!)).toBe(sess.spanId);
    expect(parentId(stmt)).toBe(sess.spanId);
    for (const c of ["route", "pool acquire", "backend", "transfer"]) expect(parentId(by.get(c)!)).toBe(stmt.spanId);
    expect([ms(sess.startMs), ms(sess.endMs)]).toEqual([100, 300]);
    expect(ms(stmt.startMs)).toBeCloseTo(200, 3);
    expect(ms(stmt.endMs)).toBeCloseTo(201.5, 3);
    expect(ms(by.get("backend")!.startMs)).toBeCloseTo(200.4, 3);
    expect(ms(by.get("backend")!.endMs)).toBeCloseTo(201.4, 3);
    expect(ms(by.get("pool acquire")!.startMs)).toBeCloseTo(200.1, 3);
    expect(stmt.attributes).toMatchObject({
      "db.system.name": "mariadb",
      "db.namespace": "shop",
      "db.operation.name": "SELECT",
      "db.query.text": "SELECT name FROM users WHERE id = ? AND email = ?",
      "server.address": "10.0.0.7",
      "server.port": 3307,
      "network.peer.address": "127.0.0.1",
      "network.peer.port": 50123,
      "mysqlgw.listener": "split",
      "mysqlgw.user": "shop",
      "mysqlgw.backend": "r1",
      "mysqlgw.target": "replica",
      "mysqlgw.reason": "read",
      "mysqlgw.rows": 1,
      "mysqlgw.bytes": 120,
      "mysqlgw.digest": "0123456789abcdef",
    });
    expect(JSON.stringify(stmt.attributes)).not.toContain("42");
    expect(by.get("backend")!.attributes).toMatchObject({ "server.address": "10.0.0.7", "server.port": 3307 });
    expect(sess.attributes).toMatchObject({ "mysqlgw.user": "shop", "mysqlgw.close_reason": "quit", "network.peer.address": "127.0.0.1" });
  });

  it("continues an application's trace from a traceparent: same trace id, parent = the application's span", async () => {
    const { obs, spans } = setup(view());
    const s = session();
    obs.sessionOpened!(s);
    const tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    obs.statement!(record(s, { traceparent: tp }));
    obs.sessionClosed!({ session: s, reason: "quit", closedAt: 300 });
    const got = await spans();
    const stmt = got.find((x) => x.name === "SELECT shop")!;
    expect(stmt.traceId).toBe("4bf92f3577b34da6a3ce929d0e0e4736");
    expect(parentId(stmt)).toBe("00f067aa0ba902b7");
    const backend = got.find((x) => x.name === "backend")!;
    expect(backend.traceId).toBe("4bf92f3577b34da6a3ce929d0e0e4736");
    expect(parentId(backend)).toBe(stmt.spanId);
    // the session span is a trace of its own (ratio 1)
    const sess = got.find((x) => x.name === "mysqlgw session")!;
    expect(traceOf(sess)).not.toBe("4bf92f3577b34da6a3ce929d0e0e4736");
    // not sampled by the application: dropped (unless slow or failing)
    const t2 = setup(view());
    t2.obs.statement!(record(s, { traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00" }));
    expect((await t2.spans()).filter((x) => x.name === "SELECT shop")).toHaveLength(0);
  });

  it("ratio 0 keeps only slow and failing statements, with their session span; the raw text only behind rawSql", async () => {
    const { obs, spans } = setup(view({ samplingRatio: 0, slowThresholdMs: 50 }));
    const s = session();
    const quiet = session(2);
    obs.sessionOpened!(s);
    obs.sessionOpened!(quiet);
    obs.statement!(record(s)); // 1.5 ms: dropped
    obs.statement!(record(s, { startedAt: 400, routedAt: 400, acquiredAt: 400, firstByteAt: 460, endedAt: 461 })); // slow
    obs.statement!(record(s, { ok: false, errno: 1146, kind: "SELECT", startedAt: 500, routedAt: 500, acquiredAt: 500, firstByteAt: 501, endedAt: 501 }));
    obs.statement!(record(quiet));
    obs.sessionClosed!({ session: s, reason: "quit", closedAt: 600 });
    obs.sessionClosed!({ session: quiet, reason: "quit", closedAt: 600 });
    const got = await spans();
    const stmts = got.filter((x) => x.name === "SELECT shop");
    expect(stmts.map((x) => x.attributes["mysqlgw.kept"])).toEqual(["slow", "error"]);
    expect(stmts[1]!.attributes).toMatchObject({ "db.response.status_code": "1146", "error.type": "1146", "mysqlgw.error_code": 1146 });
    expect(stmts[1]!.status).toBe(2); // ERROR
    const sessions = got.filter((x) => x.name === "mysqlgw session");
    expect(sessions).toHaveLength(1);
    expect(sessions[0]!.attributes["mysqlgw.connection_id"]).toBe(1);

    const raw = setup(view(), true);
    raw.obs.statement!(record(session()));
    expect((await raw.spans()).find((x) => x.name === "SELECT shop")!.attributes["db.query.text"]).toContain("42");
  });

  it("draws the ratio per statement: about half of 4000 statements at 0.5, and the session span of every session with a kept statement", async () => {
    const { obs, spans } = setup(view({ samplingRatio: 0.5 }));
    for (let i = 0; i < 1000; i++) {
      const s = session(i);
      obs.sessionOpened!(s);
      for (let k = 0; k < 4; k++) obs.statement!(record(s));
      obs.sessionClosed!({ session: s, reason: "quit", closedAt: 300 });
    }
    const got = await spans();
    const stmts = got.filter((x) => x.name === "SELECT shop");
    expect(stmts.length).toBeGreaterThan(1800);
    expect(stmts.length).toBeLessThan(2200);
    const sessions = new Set(got.filter((x) => x.name === "mysqlgw session").map((x) => x.spanId));
    for (const st of stmts) expect(sessions.has(st.parentSpanId)).toBe(true);
    // 1 − 0.5⁴ of the sessions have a kept statement; some of the rest by the ratio on their trace id
    expect(sessions.size).toBeGreaterThan(900);
  });

  it("parses traceparents strictly", () => {
    expect(parseTraceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")).toEqual({ traceId: "4bf92f3577b34da6a3ce929d0e0e4736", spanId: "00f067aa0ba902b7", sampled: true });
    expect(parseTraceparent("00-00000000000000000000000000000000-00f067aa0ba902b7-01")).toBeNull();
    expect(parseTraceparent("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")).toBeNull();
    expect(parseTraceparent("00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01")).toBeNull();
  });
});

describe("SpanQueue", () => {
  it("drops past its bound (counted), sends one batch at a time, counts failed exports", async () => {
    const drops: Array<[number, string]> = [];
    let release: (() => void) | null = null;
    let calls = 0;
    let fail = false;
    const exporter = {
      export(_spans: SpanData[], cb: (r: { code: number }) => void) {
        calls++;
        release = () => cb({ code: fail ? 1 : 0 });
      },
      shutdown: () => Promise.resolve(),
    };
    const q = new SpanQueue(exporter, { maxQueueSize: 4, maxBatchSize: 2, scheduledDelayMs: 10, onDrop: (n, r) => void drops.push([n, r]) });
    const fake = {} as SpanData;
    for (let i = 0; i < 8; i++) q.add(fake);
    // 2 went out at once (full batch), 4 queued, 2 dropped
    expect(calls).toBe(1);
    expect(q.queued).toBe(4);
    expect(drops).toEqual([[1, "queue_full"], [1, "queue_full"]]);
    fail = true;
    release!();
    await new Promise((r) => setImmediate(r));
    expect(drops.at(-1)).toEqual([2, "export_failed"]);
    expect(calls).toBe(2); // the next full batch follows
    fail = false;
    release!();
    await new Promise((r) => setImmediate(r));
    expect(calls).toBe(3);
    release!();
    await q.forceFlush();
    expect(q.exported).toBe(4);
    expect(q.dropped).toEqual({ queueFull: 2, exportFailed: 2 });
  });

  it("shutdown is bounded: a collector that never answers costs at most the timeout, the rest counted as export_failed", async () => {
    const drops: Array<[number, string]> = [];
    const never = { export: () => undefined, shutdown: () => new Promise<void>(() => undefined) };
    const q = new SpanQueue(never, { maxQueueSize: 100, maxBatchSize: 2, scheduledDelayMs: 10_000, onDrop: (n, r) => void drops.push([n, r]) });
    for (let i = 0; i < 5; i++) q.add({} as SpanData);
    const t0 = Date.now();
    await q.shutdown(200);
    expect(Date.now() - t0).toBeLessThan(2000);
    expect(q.queued).toBe(0);
    expect(drops).toEqual([[3, "export_failed"]]); // 2 in flight (never answered), 3 still queued
    q.add({} as SpanData); // after shutdown: ignored
    expect(q.queued).toBe(0);
  });
});

// Issue 7, points 1, 2 and 6: OpenTelemetry traces of a real data plane
// (--otlp-endpoint) in front of real MariaDB (primary + replica) through a
// SPLIT listener, received by OTLP/HTTP and OTLP/gRPC receivers that decode the
// real wire formats; span tree, attributes, parent links, continuation of an
// application's trace (sqlcommenter traceparent), sampling from policy; then
// `mysqlgw trace` against a Jaeger query API serving what was received.
import * as fs from "node:fs";
import * as net from "node:net";
import * as path from "node:path";
import type * as mysql from "mysql2/promise";
import {
  applyPolicy,
  connect,
  freePort,
  nativePasswordHash,
  parseExposition,
  runCli,
  startControlPlane,
  startDataPlane,
  startEtcd,
  startReplicatedCluster,
  tempDir,
  type ControlPlane,
  type DataPlane,
  type EtcdServer,
  type ReplicatedCluster,
} from "../helpers";
import { createSpanStore, startFakeJaeger, startOtlpGrpcReceiver, startOtlpHttpReceiver, type ReceivedSpan, type Receiver, type SpanStore } from "../helpers/otlp";

const USER = "tracer";
const PW = "trace-pw-7";
let etcd: EtcdServer;
let cluster: ReplicatedCluster;
let cp: ControlPlane;
let dp: DataPlane | null = null;
let port: number;
let store: SpanStore;
let httpReceiver: Awaited<ReturnType<typeof startOtlpHttpReceiver>>;
let grpcReceiver: Receiver;
let jaeger: Awaited<ReturnType<typeof startFakeJaeger>>;
let requestLog: string;
/** A READ_WRITE listener (pass-through unless tracing makes it read its statements). */
let rwPort = 0;

function policy(tracing?: Record<string, unknown>): Record<string, unknown> {
  return {
    clusters: [
      {
        name: "shop",
        backends: [
          { name: "db1", address: cluster.primary.address, expectedRole: "ROLE_PRIMARY" },
          { name: "db2", address: cluster.replicas[0].address, expectedRole: "ROLE_REPLICA" },
        ],
      },
    ],
    listeners: [
      { name: "split", bindAddress: "127.0.0.1", port, cluster: "shop", role: "LISTENER_ROLE_SPLIT" },
      { name: "rw", bindAddress: "127.0.0.1", port: rwPort, cluster: "shop" },
    ],
    users: [{ name: USER, passwordHash: nativePasswordHash(PW), backendCredentials: { user: cluster.app.user, secretRef: "env:APP_PW" } }],
    ...(tracing === undefined ? {} : { gateway: { tracing } }),
  };
}

async function startTracedDataPlane(version: string, protocol: "http" | "grpc", url: string): Promise<DataPlane> {
  return startDataPlane({
    etcd,
    workers: 1,
    env: { APP_PW: cluster.app.password },
    args: ["--otlp-endpoint", url, "--otlp-protocol", protocol, "--otlp-export-delay", "100", "--id", `dp-${protocol}`, "--request-log", requestLog],
    waitForConfig: version,
  });
}

function client(): Promise<mysql.Connection> {
  return connect({ host: "127.0.0.1", port, user: USER, password: PW, database: "shop" });
}

const byId = (spans: ReceivedSpan[]) => new Map(spans.map((s) => [s.spanId, s]));
const ms = (s: ReceivedSpan) => Number(s.endNs - s.startNs) / 1e6;

beforeAll(async () => {
  [etcd, cluster] = await Promise.all([startEtcd(), startReplicatedCluster({ replicas: 1 })]);
  await cluster.primary.query("CREATE DATABASE shop; CREATE TABLE shop.items (id INT PRIMARY KEY, name VARCHAR(40), qty INT); INSERT INTO shop.items VALUES (42, 'apple', 3), (43, 'pear', 5)");
  await cluster.waitForReplicas();
  cp = await startControlPlane({ etcd });
  port = await freePort();
  rwPort = await freePort();
  store = createSpanStore();
  [httpReceiver, grpcReceiver] = await Promise.all([startOtlpHttpReceiver(store), startOtlpGrpcReceiver(store)]);
  jaeger = await startFakeJaeger(store);
  requestLog = path.join(tempDir("tracing"), "requests.log");
}, 180_000);

afterAll(async () => {
  await dp?.stop();
  await Promise.allSettled([httpReceiver?.close(), grpcReceiver?.close(), jaeger?.close()]);
});

describe("OTLP/HTTP", () => {
  let sessionTrace = "";
  let selectSpan: ReceivedSpan;

  beforeAll(async () => {
    const { version } = await applyPolicy(cp, policy());
    dp = await startTracedDataPlane(version, "http", httpReceiver.url);
  }, 60_000);

  it("a READ_WRITE listener's statements get spans too (with tracing on, it reads them)", async () => {
    const c = await connect({ host: "127.0.0.1", port: rwPort, user: USER, password: PW, database: "shop" });
    const [rows] = await c.query("SELECT qty FROM items WHERE id = 42 /* rw-span-probe */");
    expect(rows).toEqual([{ qty: expect.any(Number) }]);
    await c.end();
    const spans = await store.waitFor((all) => all.some((x) => x.attributes["mysqlgw.listener"] === "rw" && x.name === "SELECT shop"));
    const stmt = spans.find((x) => x.attributes["mysqlgw.listener"] === "rw" && x.name === "SELECT shop")!;
    expect(stmt.attributes).toMatchObject({ "mysqlgw.target": "primary", "mysqlgw.backend": "db1", "db.operation.name": "SELECT" });
  });

  it("exports session → statement → route / pool acquire / backend / transfer with db.* and mysqlgw.* attributes, no literals", async () => {
    const c = await client();
    const [rows] = await c.query("SELECT name FROM items WHERE id = 42 AND name <> 'secret-literal'");
    expect(rows).toEqual([{ name: "apple" }]);
    await c.query("UPDATE items SET qty = qty + 1 WHERE id = 43");
    await c.end();
    const spans = await store.waitFor((s) => s.some((x) => x.name === "mysqlgw session" && x.attributes["mysqlgw.user"] === USER && x.attributes["mysqlgw.listener"] === "split"));
    const ids = byId(spans);
    const session = spans.find((x) => x.name === "mysqlgw session" && x.attributes["mysqlgw.user"] === USER && x.attributes["mysqlgw.listener"] === "split")!;
    sessionTrace = session.traceId;
    expect(session.parentSpanId).toBe("");
    expect(session.resource).toMatchObject({ "service.name": "mysqlgw", "service.instance.id": "dp-http/0" });
    expect(session.attributes).toMatchObject({ "mysqlgw.listener": "split", "network.peer.address": "127.0.0.1", "mysqlgw.span": "session" });
    const inTrace = spans.filter((x) => x.traceId === session.traceId);
    const auth = inTrace.find((x) => x.name === "auth")!;
    expect(auth.parentSpanId).toBe(session.spanId);

    selectSpan = inTrace.find((x) => x.name === "SELECT shop")!;
    expect(selectSpan.parentSpanId).toBe(session.spanId);
    expect(selectSpan.kind).toBe(2); // SERVER
    expect(selectSpan.attributes).toMatchObject({
      "db.system.name": "mariadb",
      "db.namespace": "shop",
      "db.operation.name": "SELECT",
      "mysqlgw.listener": "split",
      "mysqlgw.user": USER,
      "mysqlgw.cluster": "shop",
      "mysqlgw.target": "replica",
      "mysqlgw.backend": "db2",
      "server.address": "127.0.0.1",
      "server.port": Number(cluster.replicas[0].address.split(":")[1]),
      "network.peer.address": "127.0.0.1",
      "mysqlgw.rows": 1,
    });
    const text = String(selectSpan.attributes["db.query.text"]);
    expect(text).toMatch(/^SELECT name FROM items WHERE id = \? AND name <> \?$/i);
    expect(text).not.toContain("42");
    expect(text).not.toContain("secret-literal");
    expect(Number(selectSpan.attributes["mysqlgw.bytes"])).toBeGreaterThan(0);

    const kids = inTrace.filter((x) => x.parentSpanId === selectSpan.spanId);
    expect(kids.map((k) => k.name).sort()).toEqual(["backend", "pool acquire", "route", "transfer"]);
    // children are within the statement and in phase order
    const order = ["route", "pool acquire", "backend", "transfer"].map((n) => kids.find((k) => k.name === n)!);
    expect(order[0]!.startNs).toBe(selectSpan.startNs);
    for (let i = 1; i < order.length; i++) expect(order[i]!.startNs).toBe(order[i - 1]!.endNs);
    expect(order[3]!.endNs).toBe(selectSpan.endNs);
    expect(order[2]!.attributes).toMatchObject({ "mysqlgw.backend": "db2" });
    expect(order[2]!.kind).toBe(3); // CLIENT

    const update = inTrace.find((x) => x.name === "UPDATE shop")!;
    expect(update.attributes).toMatchObject({ "mysqlgw.target": "primary", "mysqlgw.backend": "db1", "server.port": Number(cluster.primary.address.split(":")[1]) });
    expect(String(update.attributes["db.query.text"])).not.toContain("43");
    expect(ids.get(update.parentSpanId)?.name).toBe("mysqlgw session");
    expect(httpReceiver.contentTypes[0]).toMatch(/^application\/x-protobuf/);

    // the request-log line of the SELECT names its trace and span (from a log line to the trace)
    const lines = fs.readFileSync(requestLog, "utf8").split("\n").filter((l) => l !== "").map((l) => JSON.parse(l) as Record<string, unknown>);
    const line = lines.find((l) => l.event === "statement" && String(l.digest_text).startsWith("SELECT name FROM items"))!;
    expect(line).toMatchObject({ trace_id: sessionTrace, span_id: selectSpan.spanId });
  });

  it("continues the application's trace from a sqlcommenter traceparent: same trace id, parent = the application's span", async () => {
    const traceId = "4bf92f3577b34da6a3ce929d0e0e4736";
    const appSpan = "00f067aa0ba902b7";
    const c = await client();
    await c.query(`SELECT qty FROM items WHERE name = 'pear' /*traceparent='00-${traceId}-${appSpan}-01'*/`);
    await c.end();
    const spans = await store.waitFor((s) => s.some((x) => x.traceId === traceId && x.name === "transfer"));
    const stmt = spans.find((x) => x.traceId === traceId && x.name === "SELECT shop")!;
    expect(stmt.parentSpanId).toBe(appSpan);
    const kids = spans.filter((x) => x.parentSpanId === stmt.spanId);
    expect(kids.map((k) => k.name).sort()).toEqual(["backend", "pool acquire", "route", "transfer"]);
    for (const k of kids) expect(k.traceId).toBe(traceId);
    expect(String(stmt.attributes["db.query.text"])).not.toContain("pear");
  });

  it("mysqlgw trace TRACE_ID prints the request chain as an indented timeline from Jaeger's API", async () => {
    const r = await runCli(cp.url, ["trace", sessionTrace, "--jaeger", jaeger.url]);
    expect(r.code).toBe(0);
    const lines = r.stdout.split("\n");
    expect(lines[0]).toMatch(new RegExp(`^trace ${sessionTrace} · \\d+ spans · mysqlgw · started `));
    const col = lines[1]!.indexOf("SPAN");
    const span = (name: string) => lines.find((l) => `${l.slice(col).trimStart()} `.startsWith(`${name} `))!;
    const indent = (l: string) => /^ */.exec(l.slice(col))![0].length;
    expect(indent(span("mysqlgw session"))).toBe(0);
    expect(indent(span("SELECT shop"))).toBe(indent(span("mysqlgw session")) + 2);
    expect(indent(span("backend"))).toBe(indent(span("SELECT shop")) + 2);
    expect(span("SELECT shop")).toContain("backend=db2");
    expect(span("SELECT shop")).toMatch(/query="SELECT name FROM items WHERE id = \? AND name <> \?"/i);
    expect(jaeger.requests).toContain(`GET /api/traces/${sessionTrace}`);
    // the rows are in time order: the session first, its statements in the order they ran
    const names = lines.slice(2).map((l) => /^ *(\S+(?: shop)?)/.exec(l.slice(col))?.[1]);
    expect(names.indexOf("SELECT shop")).toBeLessThan(names.indexOf("UPDATE shop"));

    const missing = await runCli(cp.url, ["trace", "0123456789abcdef0123456789abcdef", "--jaeger", jaeger.url]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain("Jaeger has no trace 0123456789abcdef0123456789abcdef");
  });

  it("sampling ratio 0 in policy: only slow and failing statements are exported, with their session span", async () => {
    const { version } = await applyPolicy(cp, policy({ samplingRatio: 0, slowThreshold: "0.2s" }));
    await dp!.waitForConfig(version);
    const before = store.spans.length;
    const c = await client();
    await c.query("SELECT name FROM items WHERE id = 42 /* fast-probe */");
    await c.query("SELECT SLEEP(0.3) AS slept, 'slow-probe'");
    await expect(c.query("SELECT * FROM no_such_table")).rejects.toMatchObject({ errno: 1146 });
    await c.end();
    const spans = await store.waitFor((s) => s.slice(before).some((x) => x.name === "mysqlgw session"));
    await new Promise((r) => setTimeout(r, 300)); // anything else would have come in the same batch or the next
    const fresh = store.spans.slice(before);
    const stmts = fresh.filter((x) => x.attributes["mysqlgw.span"] === "statement");
    expect(stmts.map((x) => x.attributes["mysqlgw.kept"]).sort()).toEqual(["error", "slow"]);
    const slow = stmts.find((x) => x.attributes["mysqlgw.kept"] === "slow")!;
    expect(ms(slow)).toBeGreaterThanOrEqual(290);
    const failed = stmts.find((x) => x.attributes["mysqlgw.kept"] === "error")!;
    expect(failed.attributes).toMatchObject({ "db.response.status_code": "1146", "mysqlgw.error_code": 1146 });
    expect(failed.status.code).toBe(2);
    const session = fresh.find((x) => x.name === "mysqlgw session")!;
    expect(slow.parentSpanId).toBe(session.spanId);
    expect(failed.parentSpanId).toBe(session.spanId);
    expect(spans.length).toBeGreaterThan(before);

    // the list: the user's slow statements in the last 5 minutes
    const list = await runCli(cp.url, ["trace", "--user", USER, "--since", "5m", "--slow", "--min-duration", "250ms", "--jaeger", jaeger.url]);
    expect(list.code).toBe(0);
    const rows = list.stdout.split("\n").filter((l) => /^[0-9a-f]{32} /.test(l));
    expect(rows).toHaveLength(1);
    expect(rows[0]).toContain(slow.traceId);
    expect(rows[0]).toMatch(/SELECT SLEEP ?\(\?\)/i);
    const q = jaeger.requests.find((x) => x.startsWith("GET /api/traces?"))!;
    const params = new URL(`http://x${q.slice(4)}`).searchParams;
    expect(params.get("service")).toBe("mysqlgw");
    expect(JSON.parse(params.get("tags")!)).toEqual({ "mysqlgw.span": "statement", "mysqlgw.user": USER });
    expect(params.get("minDuration")).toBe("250000us");
  });
});

describe("OTLP/gRPC", () => {
  beforeAll(async () => {
    await dp?.stop();
    dp = null;
    const { version } = await applyPolicy(cp, policy({ samplingRatio: 1 }));
    dp = await startTracedDataPlane(version, "grpc", grpcReceiver.url);
  }, 60_000);

  it("exports the same tree over gRPC (protobuf ExportTraceServiceRequest)", async () => {
    const c = await client();
    await c.query("SELECT name FROM items WHERE id = 43 /* grpc-probe */");
    await c.end();
    const spans = await store.waitFor((s) => s.some((x) => x.resource["service.instance.id"] === "dp-grpc/0" && x.name === "mysqlgw session"));
    const mine = spans.filter((x) => x.resource["service.instance.id"] === "dp-grpc/0");
    const session = mine.find((x) => x.name === "mysqlgw session")!;
    const stmt = mine.find((x) => x.name === "SELECT shop")!;
    expect(stmt.traceId).toBe(session.traceId);
    expect(stmt.parentSpanId).toBe(session.spanId);
    expect(stmt.attributes).toMatchObject({ "db.system.name": "mariadb", "mysqlgw.backend": "db2", "mysqlgw.rows": 1 });
    expect(String(stmt.attributes["db.query.text"])).not.toContain("43");
    expect(mine.filter((x) => x.parentSpanId === stmt.spanId).map((x) => x.name).sort()).toEqual(["backend", "pool acquire", "route", "transfer"]);
    expect(stmt.startNs).toBeGreaterThan(session.startNs);
  });
});

describe("a collector that does not answer", () => {
  // accepts connections and never answers: every export times out (--otlp-timeout)
  const held: net.Socket[] = [];
  const blackHole = net.createServer((sock) => void held.push(sock));

  beforeAll(async () => {
    await dp?.stop();
    dp = null;
    await new Promise<void>((r) => blackHole.listen(0, "127.0.0.1", r));
    const url = `http://127.0.0.1:${(blackHole.address() as net.AddressInfo).port}`;
    const { version } = await applyPolicy(cp, policy());
    dp = await startDataPlane({
      etcd,
      workers: 1,
      env: { APP_PW: cluster.app.password },
      args: ["--otlp-endpoint", url, "--otlp-timeout", "500", "--otlp-export-delay", "20", "--otlp-queue-size", "10", "--otlp-batch-size", "5", "--metrics-listen", "127.0.0.1:0", "--id", "dp-black-hole"],
      waitForConfig: version,
    });
  }, 60_000);

  afterAll(async () => {
    for (const s of held) s.destroy();
    await new Promise<void>((r) => blackHole.close(() => r()));
  });

  it("never holds a statement; drops are counted: queue_full while an export hangs, export_failed when it times out", async () => {
    const rec = await dp!.waitForLog((r) => r.msg === "serving metrics", 10_000);
    const c = await client();
    const t0 = Date.now();
    for (let i = 0; i < 20; i++) await c.query("SELECT name FROM items WHERE id = 42");
    const took = Date.now() - t0;
    await c.end();
    expect(took).toBeLessThan(5000); // 20 point selects, whatever the collector does
    const deadline = Date.now() + 15_000;
    let m = parseExposition(await (await fetch(String(rec.metrics))).text());
    while (Date.now() < deadline && !(m.sum("mysqlgw_trace_spans_dropped_total", { reason: "export_failed" }) > 0 && m.sum("mysqlgw_trace_spans_dropped_total", { reason: "queue_full" }) > 0)) {
      await new Promise((r) => setTimeout(r, 200));
      m = parseExposition(await (await fetch(String(rec.metrics))).text());
    }
    expect(m.types.get("mysqlgw_trace_spans_dropped_total")).toBe("counter");
    // 20 statements × 5 spans: 5 in the hanging export, at most 10 queued, the rest dropped at once
    expect(m.sum("mysqlgw_trace_spans_dropped_total", { reason: "queue_full" })).toBeGreaterThanOrEqual(85 - 10);
    expect(m.sum("mysqlgw_trace_spans_dropped_total", { reason: "export_failed" })).toBeGreaterThanOrEqual(5);
    expect(m.sum("mysqlgw_trace_spans_exported_total")).toBe(0);
    expect(held.length).toBeGreaterThan(0);
    await dp!.waitForLog((r) => typeof r.msg === "string" && r.msg.startsWith("trace export"), 10_000);
  });
});

import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { Buffer } from "node:buffer";
import { digest } from "../routing/digest";
import { LineWriter, openAppend } from "./log-writer";
import type { SessionInfo, StatementRecord } from "./observer";
import { createRequestLog, statementJson } from "./request-log";

const statementLine = (r: StatementRecord, off: number, raw: boolean): Record<string, unknown> => JSON.parse(statementJson(r, off, raw)) as Record<string, unknown>;

const session: SessionInfo = { connectionId: 42, listener: "split", user: "app", clientAddress: "127.0.0.1:5555", openedAt: 1000, tls: false };
const EPOCH = Date.UTC(2026, 10, 22, 12, 0, 0) - 1000; // openedAt 1000 → 12:00:00.000Z

function record(sql: string, over: Partial<StatementRecord> = {}): StatementRecord {
  return {
    session,
    command: 3,
    kind: "SELECT",
    sql,
    digest: () => {
      const d = digest(Buffer.from(sql));
      return { text: d.text, hash: d.hash };
    },
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
    rows: 3,
    bytes: 120,
    startedAt: 2000,
    routedAt: 2000.1,
    acquiredAt: 2000.3,
    firstByteAt: 2001,
    endedAt: 2002.5,
    ...over,
  };
}

function collect(): { lines: Record<string, unknown>[]; write(l: string): void } {
  const lines: Record<string, unknown>[] = [];
  return { lines, write: (l: string) => void lines.push(JSON.parse(l) as Record<string, unknown>) };
}

describe("request log lines", () => {
  test("a statement line: time, who, where, digest (no literals), duration, rows, bytes, errno", () => {
    const line = statementLine(record("SELECT * FROM orders WHERE customer = 'alice@example.com' AND total > 1234"), EPOCH, false);
    expect(line).toEqual({
      time: "2026-11-22T12:00:01.000Z",
      event: "statement",
      connection_id: 42,
      user: "app",
      client: "127.0.0.1:5555",
      listener: "split",
      schema: "shop",
      kind: "SELECT",
      cluster: "main",
      target: "replica",
      backend: "r1",
      reason: "read",
      rule: "",
      digest: expect.stringMatching(/^[0-9a-f]{16}$/),
      digest_text: "SELECT * FROM orders WHERE customer = ? AND total > ?",
      duration_ms: 2.5,
      queue_ms: 0.2,
      backend_ms: 2.2,
      rows: 3,
      bytes: 120,
      errno: 0,
    });
    const text = JSON.stringify(line);
    expect(text).not.toContain("alice");
    expect(text).not.toContain("1234");
  });

  test("raw SQL only when asked; trace ids when a tracer put them on the record", () => {
    const r = Object.assign(record("SELECT 'secret'"), { traceIds: { traceId: "4bf92f3577b34da6a3ce929d0e0e4736", spanId: "00f067aa0ba902b7" } });
    const withRaw = statementLine(r, EPOCH, true);
    expect(withRaw.sql).toBe("SELECT 'secret'");
    expect(withRaw.trace_id).toBe("4bf92f3577b34da6a3ce929d0e0e4736");
    expect(withRaw.span_id).toBe("00f067aa0ba902b7");
    expect(Object.keys(withRaw).slice(0, 4)).toEqual(["time", "event", "trace_id", "span_id"]);
    expect("sql" in statementLine(record("SELECT 'secret'"), EPOCH, false)).toBe(false);
    // quotes, backslashes, newlines and non-ASCII stay valid JSON, one line
    const odd = record("SELECT 'a\"b\\c\n', 'é✓' /* x */", { session: { ...session, user: 'we"ird\\user' } });
    const text = statementJson(odd, EPOCH, true);
    expect(text).not.toContain("\n");
    expect(JSON.parse(text)).toMatchObject({ user: 'we"ird\\user', sql: "SELECT 'a\"b\\c\n', 'é✓' /* x */", digest_text: "SELECT ?, ?" });
    expect("trace_id" in statementLine(record("SELECT 1"), EPOCH, false)).toBe(false);
  });

  test("session events: open, auth ok / refused with errno, close with reason and lifetime", () => {
    const sink = collect();
    const log = createRequestLog(sink, { epochOffsetMs: EPOCH });
    log.sessionOpened?.(session);
    log.sessionAuthenticated?.(session, true, 0, 1000, 1003.25);
    log.sessionAuthenticated?.({ ...session, user: "mallory" }, false, 1045, 1000, 1002);
    log.sessionClosed?.({ session, reason: "quit", closedAt: 6000 });
    expect(sink.lines.map((l) => [l.event, l.errno, l.reason, l.duration_ms])).toEqual([
      ["session_open", undefined, undefined, undefined],
      ["auth_ok", 0, undefined, 3.25],
      ["auth_refused", 1045, undefined, 2],
      ["session_close", undefined, "quit", 5000],
    ]);
    expect(sink.lines[0]).toEqual({ time: "2026-11-22T12:00:00.000Z", event: "session_open", connection_id: 42, user: "app", client: "127.0.0.1:5555", listener: "split" });
    expect(sink.lines[2].user).toBe("mallory");
    const quiet = collect();
    const noSessions = createRequestLog(quiet, { epochOffsetMs: EPOCH, sessions: false });
    expect(noSessions.sessionOpened).toBeUndefined();
  });

  test("slow-only keeps statements at least that slow, and every error", () => {
    const sink = collect();
    const log = createRequestLog(sink, { epochOffsetMs: EPOCH, slowMs: 100 });
    log.statement?.(record("SELECT 1", { endedAt: 2099.9 }));
    log.statement?.(record("SELECT 2", { endedAt: 2100 }));
    log.statement?.(record("SELECT 3", { endedAt: 2001, ok: false, errno: 1146 }));
    log.statement?.(record("", { kind: "" })); // PING
    expect(sink.lines.map((l) => [l.digest_text, l.errno])).toEqual([
      ["SELECT ?", 0],
      ["SELECT ?", 1146],
    ]);
    expect(sink.lines[0].duration_ms).toBe(100);
  });

  test("sampling keeps that share of statements (by the random draw), errors always", () => {
    const sink = collect();
    let i = 0;
    const draws = [0.05, 0.5, 0.09, 0.99];
    const log = createRequestLog(sink, { epochOffsetMs: EPOCH, sample: 0.1, random: () => draws[i++ % draws.length] });
    for (let k = 0; k < 4; k++) log.statement?.(record(`SELECT ${k}`));
    log.statement?.(record("SELECT 9", { ok: false, errno: 1064 }));
    expect(sink.lines.map((l) => l.errno)).toEqual([0, 0, 1064]);
    expect(i).toBe(4); // no draw for the error
    const none = collect();
    const off = createRequestLog(none, { epochOffsetMs: EPOCH, sample: 0 });
    for (let k = 0; k < 50; k++) off.statement?.(record("SELECT 1"));
    expect(none.lines).toHaveLength(0);
  });
});

describe("LineWriter", () => {
  let dir: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "mgw-log-"));
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  test("appends whole lines to a file shared by two writers (O_APPEND), in batches", async () => {
    const file = path.join(dir, "requests.log");
    const a = new LineWriter({ fd: openAppend(file), ownsFd: true, maxWriteBytes: 256 });
    const b = new LineWriter({ fd: openAppend(file), ownsFd: true, maxWriteBytes: 256 });
    for (let i = 0; i < 500; i++) {
      a.write(JSON.stringify({ w: "a", i, pad: "x".repeat(i % 40) }));
      b.write(JSON.stringify({ w: "b", i }));
    }
    await Promise.all([a.close(), b.close()]);
    const lines = fs.readFileSync(file, "utf8").split("\n");
    expect(lines.pop()).toBe("");
    expect(lines).toHaveLength(1000);
    const parsed = lines.map((l) => JSON.parse(l) as { w: string; i: number });
    expect(parsed.filter((p) => p.w === "a").map((p) => p.i)).toEqual([...Array(500).keys()]);
    expect(parsed.filter((p) => p.w === "b").map((p) => p.i)).toEqual([...Array(500).keys()]);
    expect(a.written + b.written).toBe(1000);
  });

  test("never blocks: past its buffer it drops lines and counts them", async () => {
    const file = path.join(dir, "small.log");
    let dropped = 0;
    const w = new LineWriter({ fd: openAppend(file), ownsFd: true, maxBufferBytes: 1000, onDrop: (n) => (dropped += n) });
    // all queued in one tick: 10 lines of 100 bytes (newline included) fit in 1000 bytes, 90 do not
    for (let i = 0; i < 100; i++) w.write(String(i).padStart(99, "0"));
    expect(dropped).toBe(90);
    await w.close();
    expect(w.dropped).toBe(90);
    expect(fs.readFileSync(file, "utf8").split("\n").filter((l) => l !== "")).toHaveLength(10);
  });

  test("a failing write drops its batch, reports once, and the writer goes on", async () => {
    const errors: string[] = [];
    const fd = fs.openSync(path.join(dir, "ro.log"), "w");
    fs.closeSync(fd); // writes to a closed fd fail with EBADF
    const w = new LineWriter({ fd, onError: (e) => errors.push((e as NodeJS.ErrnoException).code ?? ""), onDrop: () => undefined });
    w.write("a");
    await w.idle();
    w.write("b");
    await w.idle();
    expect(w.dropped).toBe(2);
    expect(errors).toEqual(["EBADF"]);
  });
});

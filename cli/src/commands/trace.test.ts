import { formatTimeline, parseDurationMs, traceCommand } from "./trace";

const T0 = 1_763_800_000_000_000; // µs
const tags = (o: Record<string, unknown>) => Object.entries(o).map(([key, value]) => ({ key, value }));

describe("mysqlgw trace", () => {
  it("prints parents before children, siblings by start, indented, with offsets, durations and key attributes", () => {
    const lines = formatTimeline({
      traceID: "4bf92f3577b34da6a3ce929d0e0e4736",
      processes: { p1: { serviceName: "mysqlgw" } },
      spans: [
        { traceID: "t", spanID: "b", operationName: "backend", references: [{ refType: "CHILD_OF", traceID: "t", spanID: "s" }], startTime: T0 + 400, duration: 1000, tags: tags({ "mysqlgw.backend": "db2", "server.address": "10.0.0.7", "server.port": 3307 }), processID: "p1" },
        { traceID: "t", spanID: "s", operationName: "SELECT shop", references: [{ refType: "CHILD_OF", traceID: "t", spanID: "app" }], startTime: T0, duration: 1500, tags: tags({ "db.query.text": "SELECT a FROM t WHERE id = ?", "mysqlgw.rows": 1 }), processID: "p1" },
        { traceID: "t", spanID: "r", operationName: "route", references: [{ refType: "CHILD_OF", traceID: "t", spanID: "s" }], startTime: T0, duration: 100, tags: tags({ error: true }), processID: "p1" },
      ],
    });
    expect(lines[0]).toBe("trace 4bf92f3577b34da6a3ce929d0e0e4736 · 3 spans · mysqlgw · started 2025-11-22T08:26:40.000Z · 1.500 ms");
    const col = lines[1]!.indexOf("SPAN");
    const body = lines.slice(2).map((l) => l.slice(col));
    expect(body[0]).toMatch(/^SELECT shop \(child of app, not in this trace's spans: the application's span\)\s+query="SELECT a FROM t WHERE id = \?" rows=1$/);
    expect(body[1]).toMatch(/^ {2}route ✗/);
    expect(body[2]).toMatch(/^ {2}backend\s+backend=db2 server=10\.0\.0\.7:3307$/);
    expect(lines[4]!.startsWith("+0.400 ms  1.000 ms")).toBe(true);
  });

  it("parses durations", () => {
    expect([parseDurationMs("5m"), parseDurationMs("1.5s"), parseDurationMs("250ms"), parseDurationMs("100us"), parseDurationMs("2h")]).toEqual([300_000, 1500, 250, 0.1, 7_200_000]);
    expect(parseDurationMs("5 minutes")).toBeNaN();
  });

  it("refuses a malformed id and a search without criteria, saying what to pass", async () => {
    const io = { stdout: () => undefined, stderr: () => undefined, timeoutMs: 1000 };
    const base = { jaeger: "http://127.0.0.1:1", service: "mysqlgw", since: "1h", slow: false, minDuration: "100ms", errors: false, limit: "20", json: false };
    await expect(traceCommand(io, "xyz", base)).rejects.toMatchObject({ code: "MGW_ERR_CLI_USAGE", exitCode: 2 });
    await expect(traceCommand(io, undefined, base)).rejects.toMatchObject({ code: "MGW_ERR_CLI_USAGE", todo: "e.g. mysqlgw trace --user app --since 5m --slow" });
    await expect(traceCommand(io, undefined, { ...base, user: "u", since: "soon" })).rejects.toMatchObject({ code: "MGW_ERR_CLI_USAGE" });
    await expect(traceCommand(io, "abc", { ...base, jaeger: "ftp://x" })).rejects.toMatchObject({ code: "MGW_ERR_CLI_USAGE" });
    await expect(traceCommand(io, "abc", base)).rejects.toMatchObject({ code: "MGW_ERR_CLI_API_UNREACHABLE" });
  });
});

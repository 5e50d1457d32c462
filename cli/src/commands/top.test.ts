import * as http from "node:http";
import type { AddressInfo } from "node:net";
import { run } from "../program";
import { renderTop, type DigestsAnswer } from "./top";

const ANSWER: DigestsAnswer = {
  dataPlanes: [{ id: "dp-1", publishedAt: "2026-11-22T13:00:00.000Z", workers: 2, digests: 2, totalDigests: 2 }],
  digests: [
    { digest: "a1", user: "app", schema: "shop", digestText: "SELECT * FROM orders WHERE id = ?", count: 120, errors: 1, rows: 120, totalMs: 240.4, avgMs: 2.004, minMs: 0.5, maxMs: 30, p99Ms: 12.3, firstSeen: "", lastSeen: "", dataPlanes: 1 },
    { digest: "b2", user: "app", schema: "", digestText: "UPDATE t SET v = ?", count: 3, errors: 0, rows: 0, totalMs: 4.25, avgMs: 1.417, minMs: 1, maxMs: 2, p99Ms: 2, firstSeen: "", lastSeen: "", dataPlanes: 1 },
  ],
};

describe("mysqlgw top", () => {
  test("one screen: a header naming the data planes, then digests by total time", () => {
    const lines = renderTop(ANSWER, new Date("2026-11-22T13:00:05Z"), 0);
    expect(lines[0]).toBe("mysqlgw top — 13:00:05 UTC — 1 data plane: dp-1");
    expect(lines[2]).toMatch(/^TOTAL_MS\s+COUNT\s+AVG_MS\s+P99_MS\s+MAX_MS\s+ERRORS\s+ROWS\s+USER\s+SCHEMA\s+DIGEST$/);
    expect(lines[3].split(/\s{2,}/)).toEqual(["240", "120", "2.00", "12.3", "30.0", "1", "120", "app", "shop", "SELECT * FROM orders WHERE id = ?"]);
    expect(lines[4].split(/\s{2,}/)).toEqual(["4.25", "3", "1.42", "2.00", "2.00", "0", "0", "app", "-", "UPDATE t SET v = ?"]);
    // cut to the terminal's width
    expect(renderTop(ANSWER, new Date(), 40).slice(2).every((l) => l.length <= 40)).toBe(true);
    expect(renderTop({ dataPlanes: [], digests: [] }, new Date(), 0)[0]).toContain("no data plane publishes digests yet");
  });

  test("--once --json against a real HTTP server: GET /v1/digests?limit=N&user=U, printed as is; bad options are usage errors", async () => {
    const asked: string[] = [];
    const server = http.createServer((req, res) => {
      asked.push(req.url ?? "");
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify(ANSWER));
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    const api = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    try {
      const out: string[] = [];
      const err: string[] = [];
      const code = await run(["--api", api, "top", "--once", "--json", "--limit", "5", "--user", "app"], { stdout: (l) => out.push(l), stderr: (l) => err.push(l) });
      expect({ code, err }).toEqual({ code: 0, err: [] });
      expect(JSON.parse(out.join("\n"))).toEqual(ANSWER);
      expect(asked).toEqual(["/v1/digests?limit=5&user=app"]);
      // live: --count screens, --interval apart (not a terminal: no screen clearing)
      const live: string[] = [];
      const started = Date.now();
      expect(await run(["--api", api, "top", "--count", "3", "--interval", "0.1"], { stdout: (l) => live.push(l), stderr: (l) => err.push(l) })).toBe(0);
      expect(live).toHaveLength(3);
      expect(live.every((screen) => screen.startsWith("mysqlgw top — ") && screen.includes("SELECT * FROM orders WHERE id = ?"))).toBe(true);
      expect(Date.now() - started).toBeGreaterThanOrEqual(200);
      expect(asked).toHaveLength(4);
      const bad = await run(["--api", api, "top", "--once", "--limit", "0"], { stdout: () => undefined, stderr: (l) => err.push(l) });
      expect(bad).toBe(2);
      expect(err.join("\n")).toContain("--limit must be a whole number from 1 to 1000");
    } finally {
      await new Promise((r) => server.close(r));
    }
  });

  test("an unreachable control plane is a clear error", async () => {
    // a port nobody listens on any more
    const s = http.createServer();
    await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
    const port = (s.address() as AddressInfo).port;
    await new Promise((r) => s.close(r));
    const err: string[] = [];
    const code = await run(["--api", `http://127.0.0.1:${port}`, "top", "--once"], { stdout: () => undefined, stderr: (l) => err.push(l) });
    expect(code).toBe(1);
    expect(err.join("\n")).toContain(`cannot reach the control plane at http://127.0.0.1:${port}`);
  });
});

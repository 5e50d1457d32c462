import * as http from "node:http";
import * as net from "node:net";
import { probeAnyEtcd, probeEtcd } from "./etcd-probe";

function listen(server: net.Server): Promise<string> {
  return new Promise((resolve) =>
    server.listen(0, "127.0.0.1", () => resolve(`http://127.0.0.1:${(server.address() as net.AddressInfo).port}`)),
  );
}

describe("etcd /health probe", () => {
  const servers: net.Server[] = [];
  const sockets = new Set<net.Socket>();
  afterEach(async () => {
    for (const s of sockets) s.destroy();
    sockets.clear();
    await Promise.all(servers.splice(0).map((s) => new Promise((r) => s.close(r))));
  });

  function health(status: number, body: string) {
    const s = http.createServer((req, res) => {
      res.statusCode = req.url === "/health" ? status : 404;
      res.end(body);
    });
    servers.push(s);
    return listen(s);
  }

  it("resolves null for a healthy etcd", async () => {
    expect(await probeEtcd(await health(200, '{"health":"true"}'), 1000)).toBeNull();
  });

  it("names the status and body of an unhealthy one", async () => {
    const url = await health(503, '{"health":"false","reason":"no leader"}');
    expect(await probeEtcd(url, 1000)).toBe(`${url}/health answered 503 {"health":"false","reason":"no leader"}`);
  });

  it("reports a refused connection", async () => {
    const s = net.createServer();
    const url = await listen(s);
    await new Promise((r) => s.close(r));
    expect(await probeEtcd(url, 1000)).toMatch(/ECONNREFUSED/);
  });

  it("gives up on an endpoint that accepts TCP but never answers, and closes its socket", async () => {
    const s = net.createServer((c) => {
      sockets.add(c);
      c.resume(); // read (and drop) the request so that the client's FIN is seen
      c.on("close", () => sockets.delete(c));
    });
    servers.push(s);
    const url = await listen(s);
    const t0 = Date.now();
    expect(await probeEtcd(url, 200)).toBe(`${url}/health did not answer within 200 ms`);
    expect(Date.now() - t0).toBeLessThan(1000);
    await new Promise((r) => setTimeout(r, 50));
    expect(sockets.size).toBe(0);
  });

  it("is happy when any endpoint is healthy, else lists every reason", async () => {
    const good = await health(200, "{}");
    const bad = await health(500, "x");
    expect(await probeAnyEtcd([bad, good], 1000)).toBeNull();
    expect(await probeAnyEtcd([bad, bad], 1000)).toBe(`${bad}/health answered 500 x; ${bad}/health answered 500 x`);
  });
});

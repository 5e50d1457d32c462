import * as net from "node:net";
import { isMgwError } from "../errors";
import { probeBackend } from "./probe";

/** A port nobody listens on: bind, read the port, close. */
async function closedPort(): Promise<number> {
  const srv = net.createServer();
  await new Promise<void>((r) => srv.listen(0, "127.0.0.1", r));
  const port = (srv.address() as net.AddressInfo).port;
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}

describe("probeBackend failures", () => {
  it("a refused connection is MGW_ERR_MONITOR_PROBE saying so", async () => {
    const port = await closedPort();
    const err: unknown = await probeBackend({ host: "127.0.0.1", port, user: "m", password: "", timeoutMs: 1000 }).catch((e: unknown) => e);
    expect(isMgwError(err, "MGW_ERR_MONITOR_PROBE")).toBe(true);
    expect((err as Error).message).toBe(`connection to 127.0.0.1:${port} refused; the server is not running or not listening there`);
  });

  it("a server that accepts and never greets is cut off at the timeout, its socket closed", async () => {
    const sockets: net.Socket[] = [];
    let closed = 0;
    const srv = net.createServer((s) => {
      sockets.push(s);
      s.on("close", () => closed++);
    });
    await new Promise<void>((r) => srv.listen(0, "127.0.0.1", r));
    const port = (srv.address() as net.AddressInfo).port;
    try {
      const t0 = Date.now();
      const err: unknown = await probeBackend({ host: "127.0.0.1", port, user: "m", password: "", timeoutMs: 300 }).catch((e: unknown) => e);
      const took = Date.now() - t0;
      expect(isMgwError(err, "MGW_ERR_MONITOR_PROBE")).toBe(true);
      expect((err as Error).message).toMatch(/within 300 ms|timed out after 300 ms/);
      expect(took).toBeGreaterThanOrEqual(250);
      expect(took).toBeLessThan(1500);
      for (let i = 0; i < 50 && closed < sockets.length; i++) await new Promise((r) => setTimeout(r, 20));
      expect(sockets.length).toBe(1);
      expect(closed).toBe(1);
    } finally {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => srv.close(() => r()));
    }
  });
});

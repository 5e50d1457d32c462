import { Buffer } from "node:buffer";
import * as net from "node:net";
import { framePayload } from "../protocol/codec";
import { ServerStatus } from "../protocol/constants";
import { buildErr } from "../protocol/packets/err";
import { buildOk } from "../protocol/packets/ok";
import { COM_PING, COM_RESET_CONNECTION, buildInitDb, buildQuery } from "../protocol/packets/commands";
import { runBackendCommand } from "./backend-command";

/** A connected pair: `client` (paused, as a pooled connection is) and the server side, whose received bytes are collected. */
async function pair(): Promise<{ client: net.Socket; server: net.Socket; received: Buffer[]; close(): Promise<void> }> {
  let server!: net.Socket;
  const received: Buffer[] = [];
  const srv = net.createServer((s) => {
    server = s;
    s.on("error", () => {});
    s.on("data", (d) => received.push(d));
  });
  await new Promise<void>((r) => srv.listen(0, "127.0.0.1", r));
  const port = (srv.address() as net.AddressInfo).port;
  const client = net.connect({ host: "127.0.0.1", port });
  client.on("error", () => {});
  await new Promise<void>((r) => client.once("connect", r));
  for (let i = 0; i < 100 && server === undefined; i++) await new Promise((r) => setTimeout(r, 5));
  client.pause();
  return {
    client,
    server,
    received,
    close: async () => {
      client.destroy();
      server.destroy();
      await new Promise<void>((r) => srv.close(() => r()));
    },
  };
}

/** Answers the next command with `bytes`, written in pieces of `chunk` bytes (to split packets anywhere). */
function answer(server: net.Socket, bytes: Buffer, chunk = bytes.length): void {
  server.once("data", () => {
    for (let i = 0; i < bytes.length; i += chunk) server.write(bytes.subarray(i, i + chunk));
  });
}

const ok = (statusFlags: number, seq = 1): Buffer => buildOk({ statusFlags }, 0, seq);

describe("runBackendCommand", () => {
  let p: Awaited<ReturnType<typeof pair>>;
  beforeEach(async () => {
    p = await pair();
  });
  afterEach(() => p.close());

  it("sends the payload framed with sequence id 0 and resolves on OK, leaving the socket paused without listeners", async () => {
    answer(p.server, ok(ServerStatus.Autocommit));
    const dataListeners = p.client.listenerCount("data");
    const o = await runBackendCommand(p.client, COM_PING, 1000);
    expect(o).toEqual({ ok: true, errno: 0, sqlState: "", message: "", statusFlags: ServerStatus.Autocommit, leftover: null });
    expect(Buffer.concat(p.received)).toEqual(Buffer.from([1, 0, 0, 0, 0x0e]));
    expect(p.client.isPaused()).toBe(true);
    expect(p.client.listenerCount("data")).toBe(dataListeners);
    expect(p.client.listenerCount("close")).toBe(0);
    // the connection is still usable for the next command
    answer(p.server, ok(ServerStatus.Autocommit | ServerStatus.InTrans));
    const o2 = await runBackendCommand(p.client, COM_RESET_CONNECTION, 1000);
    expect(o2.statusFlags).toBe(ServerStatus.Autocommit | ServerStatus.InTrans);
  });

  it("reads OK packets of a multi-statement until one without SERVER_MORE_RESULTS_EXISTS, at every split", async () => {
    const more = ServerStatus.Autocommit | ServerStatus.MoreResultsExist;
    const bytes = Buffer.concat([ok(more, 1), ok(more, 2), ok(ServerStatus.Autocommit, 3)]);
    for (const chunk of [1, 2, 3, 5, 7, 11, bytes.length]) {
      answer(p.server, bytes, chunk);
      const o = await runBackendCommand(p.client, buildQuery("SET @a = 1; SET @b = 2; SET @c = 3"), 1000);
      expect(o.ok).toBe(true);
      expect(o.statusFlags).toBe(ServerStatus.Autocommit);
      expect(o.leftover).toBeNull();
    }
  });

  it("returns an ERR's fields (the connection stays usable), also when it ends a multi-statement", async () => {
    answer(p.server, buildErr({ errno: 1049, sqlState: "42000", message: "Unknown database 'nope'" }, 1));
    const o = await runBackendCommand(p.client, buildInitDb("nope"), 1000);
    expect(o).toEqual({ ok: false, errno: 1049, sqlState: "42000", message: "Unknown database 'nope'", statusFlags: 0, leftover: null });
    expect(Buffer.concat(p.received).subarray(4).toString()).toBe("\x02nope");
    answer(p.server, Buffer.concat([ok(ServerStatus.MoreResultsExist), buildErr({ errno: 1193, sqlState: "HY000", message: "Unknown system variable 'x'" }, 2)]));
    const o2 = await runBackendCommand(p.client, buildQuery("SET @a = 1; SET x = 1"), 1000);
    expect(o2.errno).toBe(1193);
    expect(p.client.destroyed).toBe(false);
  });

  it("returns bytes sent after the response as leftover", async () => {
    answer(p.server, Buffer.concat([ok(2), Buffer.from([9, 9, 9])]));
    const o = await runBackendCommand(p.client, COM_PING, 1000);
    expect(o.ok).toBe(true);
    expect(o.leftover).toEqual(Buffer.from([9, 9, 9]));
  });

  it("refuses a result set with a protocol error and destroys the socket", async () => {
    answer(p.server, framePayload(Buffer.from([1]), 1)); // column count 1
    await expect(runBackendCommand(p.client, buildQuery("SELECT 1"), 1000)).rejects.toMatchObject({
      code: "MGW_ERR_BACKEND_PROTOCOL",
      message: expect.stringMatching(/COM_QUERY was answered with a packet of type 0x1 .*instead of OK\/ERR/),
    });
    expect(p.client.destroyed).toBe(true);
  });

  it("fails with BackendLostError when the server closes before answering", async () => {
    p.server.once("data", () => p.server.end());
    await expect(runBackendCommand(p.client, COM_PING, 1000)).rejects.toMatchObject({ code: "MGW_ERR_BACKEND_LOST" });
  });

  it("fails with BackendLostError after the timeout, and destroys the socket", async () => {
    const t0 = Date.now();
    await expect(runBackendCommand(p.client, COM_PING, 150)).rejects.toMatchObject({
      code: "MGW_ERR_BACKEND_LOST",
      message: expect.stringMatching(/did not answer COM_PING within 150 ms/),
    });
    const took = Date.now() - t0;
    expect(took).toBeGreaterThanOrEqual(140);
    expect(took).toBeLessThan(1000);
    expect(p.client.destroyed).toBe(true);
  });

  it("fails at once on a destroyed socket", async () => {
    p.client.destroy();
    await expect(runBackendCommand(p.client, COM_PING, 1000)).rejects.toMatchObject({ code: "MGW_ERR_BACKEND_LOST" });
  });
});

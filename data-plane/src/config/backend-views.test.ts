import * as net from "node:net";
import { checkReachable } from "./backend-views";

function listen(onConn: (s: net.Socket) => void): Promise<{ port: number; close: () => Promise<void> }> {
  return new Promise((resolve) => {
    const srv = net.createServer(onConn);
    srv.listen(0, "127.0.0.1", () => {
      const port = (srv.address() as net.AddressInfo).port;
      resolve({ port, close: () => new Promise((r) => srv.close(() => r())) });
    });
  });
}

/** A packet: 3-byte length, seq, payload. */
const packet = (seq: number, payload: Buffer): Buffer => Buffer.concat([Buffer.from([payload.length & 0xff, (payload.length >> 8) & 0xff, payload.length >> 16, seq]), payload]);

function greeting(): Buffer {
  const nonce = Buffer.alloc(20, 7);
  return packet(0, Buffer.concat([
    Buffer.from([10]), Buffer.from("10.11.0-fake\0"), Buffer.from([1, 0, 0, 0]), nonce.subarray(0, 8), Buffer.from([0]),
    Buffer.from([0xff, 0xf7]), Buffer.from([45]), Buffer.from([2, 0]), Buffer.from([0xff, 0x81]), Buffer.from([21]), Buffer.alloc(10),
    nonce.subarray(8), Buffer.from([0]), Buffer.from("mysql_native_password\0"),
  ]));
}

describe("checkReachable", () => {
  test("a server that greets and answers the login is reachable; the login is made as mysqlgw_reachability", async () => {
    let seen = "";
    const srv = await listen((s) => {
      s.write(greeting());
      s.on("data", (d: Buffer) => {
        seen += d.toString("latin1");
        s.write(packet(2, Buffer.concat([Buffer.from([0xff, 0x15, 0x04]), Buffer.from("#28000Access denied")])));
      });
    });
    try {
      await expect(checkReachable("127.0.0.1", srv.port, 1000)).resolves.toBeUndefined();
      expect(seen).toContain("mysqlgw_reachability");
    } finally {
      await srv.close();
    }
  });
  test("refused, silent and closing servers are not, each with what to check", async () => {
    const closed = await listen(() => undefined);
    const port = closed.port;
    await closed.close();
    await expect(checkReachable("127.0.0.1", port, 1000)).rejects.toThrow(/refused; the server is not running/);
    const silent = await listen(() => undefined);
    await expect(checkReachable("127.0.0.1", silent.port, 150)).rejects.toThrow(/no answer from .* within 150 ms/);
    await silent.close();
    const closer = await listen((s) => s.destroy());
    await expect(checkReachable("127.0.0.1", closer.port, 1000)).rejects.toThrow(/closed the connection before its greeting/);
    await closer.close();
  });
});

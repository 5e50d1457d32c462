import { Buffer } from "node:buffer";
import * as net from "node:net";
import { CompressedFrameDecoder, encodeCompressedFrames } from "../protocol/compressed-protocol";
import { CompressedSocket } from "./compressed-socket";

/** A connected pair on 127.0.0.1:0: [the server side wrapped, the raw client]. */
async function pair(): Promise<{ z: CompressedSocket; client: net.Socket; close: () => void }> {
  const server = net.createServer();
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const accepted = new Promise<net.Socket>((r) => server.once("connection", r));
  const client = net.connect((server.address() as net.AddressInfo).port, "127.0.0.1");
  const raw = await accepted;
  const z = new CompressedSocket(raw, null);
  z.on("error", () => undefined);
  return { z, client, close: () => (client.destroy(), z.destroy(), server.close()) };
}

function packet(seq: number, payload: Buffer): Buffer {
  const h = Buffer.alloc(4);
  h.writeUIntLE(payload.length, 0, 3);
  h[3] = seq;
  return Buffer.concat([h, payload]);
}

function collect(s: NodeJS.ReadableStream, bytes: number): Promise<Buffer> {
  return new Promise((resolve) => {
    const parts: Buffer[] = [];
    let n = 0;
    const on = (d: Buffer): void => {
      parts.push(d);
      n += d.length;
      if (n >= bytes) {
        s.removeListener("data", on);
        resolve(Buffer.concat(parts));
      }
    };
    s.on("data", on);
  });
}

describe("CompressedSocket", () => {
  it("inflates client frames and renumbers inner ids for the backend; frames replies after the client's last id", async () => {
    const { z, client, close } = await pair();
    try {
      // a command (frame 0), then the backend's reply, then a follow-up packet (frame 2) numbered 0 by the client
      const query = packet(0, Buffer.concat([Buffer.from([0x03]), Buffer.from("SELECT 'x'".repeat(20))]));
      client.write(encodeCompressedFrames(query, 0, 6).bytes);
      const got = await collect(z, query.length);
      expect(got.equals(query)).toBe(true);
      const reply = Buffer.concat([packet(1, Buffer.from([0xfb, 0x41])), packet(2, Buffer.alloc(60, 0x61))]);
      const frames: Array<[number, Buffer]> = [];
      const dec = new CompressedFrameDecoder((seq, data) => frames.push([seq, Buffer.from(data)]));
      const arrived = collect(client, 1);
      z.write(reply);
      dec.push(await arrived);
      expect(frames).toEqual([[1, reply]]);
      const follow = packet(0, Buffer.from("file contents"));
      client.write(encodeCompressedFrames(follow, 2, 6).bytes);
      const renumbered = await collect(z, follow.length);
      expect(renumbered[3]).toBe(3); // after the backend's 2
      // a new command restarts at 0 (frame id 0)
      const ping = packet(5, Buffer.from([0x0e]));
      client.write(encodeCompressedFrames(ping, 0, 6).bytes);
      expect((await collect(z, ping.length))[3]).toBe(0);
    } finally {
      close();
    }
  });

  it("numbers the continuation of a 16 MiB packet 1 when the client sent 0 (libmariadb)", async () => {
    const { z, client, close } = await pair();
    try {
      const first = packet(0, Buffer.alloc(0xffffff, 0x71));
      first[4] = 0x03;
      const second = packet(0, Buffer.alloc(1000, 0x71));
      client.write(encodeCompressedFrames(Buffer.concat([first, second]), 0, 1).bytes);
      const got = await collect(z, first.length + second.length);
      expect(got[3]).toBe(0);
      expect(got[first.length + 3]).toBe(1);
      expect(got.readUIntLE(first.length, 3)).toBe(1000);
    } finally {
      close();
    }
  });

  it("destroys itself on a frame that does not inflate", async () => {
    const { z, client, close } = await pair();
    try {
      const closed = new Promise<Error | undefined>((r) => z.once("error", r));
      client.write(Buffer.from("05000000100000" + "0102030405", "hex"));
      expect((await closed)?.message).toMatch(/inflate/);
    } finally {
      close();
    }
  });
});

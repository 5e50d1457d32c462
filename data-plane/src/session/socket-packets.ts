import { Buffer } from "node:buffer";
import type * as net from "node:net";
import { BackendLostError, HandshakeTimeoutError } from "../errors";
import { PacketFramer } from "../protocol/framer";

export interface Packet {
  seq: number;
  /** A copy, safe to keep. */
  payload: Buffer;
}

/**
 * Reads whole packets from a socket one at a time, outside the forwarding
 * path (command exchanges the gateway runs itself). Between next() calls the
 * socket is paused and has no 'data' listener of ours; bytes received past a
 * packet are kept and served first by the next call, or returned by
 * leftover() when the socket goes back to forwarding.
 */
export class SocketPackets {
  private readonly socket: net.Socket;
  private readonly maxPacketSize: number;
  private pending: Buffer | null;

  constructor(socket: net.Socket, maxPacketSize: number, initial: Buffer | null) {
    this.socket = socket;
    this.maxPacketSize = maxPacketSize;
    this.pending = initial !== null && initial.length > 0 ? initial : null;
  }

  /** The next packet; rejects on close (BackendLostError) or after `timeoutMs` (HandshakeTimeoutError). */
  next(timeoutMs: number): Promise<Packet> {
    const s = this.socket;
    return new Promise<Packet>((resolve, reject) => {
      let got: Packet | null = null;
      let settled = false;
      const framer = new PacketFramer({ maxPacketSize: this.maxPacketSize }, (seq, payload) => {
        framer.stop();
        got = { seq, payload: Buffer.from(payload) };
      });
      const cleanup = (): void => {
        settled = true;
        clearTimeout(timer);
        s.pause();
        s.removeListener("data", feed);
        s.removeListener("close", onClose);
      };
      const feed = (chunk: Buffer): void => {
        try {
          framer.push(chunk);
        } catch (err) {
          cleanup();
          reject(err);
          return;
        }
        if (got !== null) {
          cleanup();
          this.pending = framer.takeLeftover();
          resolve(got);
        }
      };
      const onClose = (): void => {
        cleanup();
        reject(new BackendLostError("connection closed during a command exchange"));
      };
      const timer = setTimeout(() => {
        cleanup();
        reject(new HandshakeTimeoutError(timeoutMs));
      }, timeoutMs);
      s.on("data", feed);
      s.on("close", onClose);
      const p = this.pending;
      this.pending = null;
      if (p !== null) feed(p);
      if (!settled && !s.destroyed) s.resume();
    });
  }

  /** Bytes received after the last packet (to be forwarded or replayed); null if none. */
  leftover(): Buffer | null {
    const p = this.pending;
    this.pending = null;
    return p;
  }
}

import * as net from "node:net";
import type pino from "pino";
import { parseHandshakeV10, type HandshakeV10 } from "../protocol/packets/handshake-v10";
import { buildProxyV2Header } from "../protocol/proxy-protocol";
import type { ClusterSnapshot } from "./config-snapshot";

/** A greeting is a few hundred bytes; anything longer than this is not one. */
const MAX_GREETING = 16 * 1024;

/**
 * Learns what a cluster's servers announce (version, capability flags,
 * collation) before the first client connects, so that the very first client
 * is greeted as every later one is — e.g. MariaDB's extended column metadata,
 * without which connectors decode JSON columns differently.
 *
 * Reads one backend's greeting and closes the connection without logging in:
 * no credentials are needed. Tries the backends in order, each bounded by
 * `timeoutMs`; on failure the runtime stays unknown and the first real login
 * fills it in, as before. Never rejects.
 */
export async function learnClusterGreeting(cluster: ClusterSnapshot, timeoutMs: number, logger: pino.Logger): Promise<void> {
  for (const b of cluster.backends) {
    const g = await readGreeting(b.host, b.port, cluster.sendProxyProtocol, timeoutMs).catch((err: Error) => {
      logger.debug({ cluster: cluster.name, backend: b.name, err: err.message }, "backend greeting probe failed");
      return null;
    });
    if (g === null) continue;
    const rt = cluster.runtime;
    if (rt.serverVersion === null) {
      rt.serverVersion = g.serverVersion;
      rt.capabilities = g.capabilities;
      rt.mariadbCapabilities = g.mariadbCapabilities;
      rt.characterSet = g.characterSet || null;
    }
    return;
  }
}

function readGreeting(host: string, port: number, sendProxyProtocol: boolean, timeoutMs: number): Promise<HandshakeV10 | null> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host, port });
    let buf = Buffer.alloc(0);
    const done = (err: Error | null, g: HandshakeV10 | null): void => {
      clearTimeout(timer);
      s.destroy();
      if (err !== null) reject(err);
      else resolve(g);
    };
    const timer = setTimeout(() => done(new Error(`no greeting within ${timeoutMs} ms`), null), timeoutMs);
    s.once("connect", () => {
      if (sendProxyProtocol) {
        // Our own address as the source: the server accepts the header and greets.
        const me = { address: s.localAddress ?? "127.0.0.1", port: s.localPort ?? 0 };
        s.write(buildProxyV2Header(me, { address: s.remoteAddress ?? host, port }));
      }
    });
    s.on("data", (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      if (buf.length < 4) return;
      const len = buf.readUIntLE(0, 3);
      if (len > MAX_GREETING) return done(new Error(`first packet of ${len} bytes is not a greeting`), null);
      if (buf.length < 4 + len) return;
      const payload = buf.subarray(4, 4 + len);
      if (payload[0] !== 10) return done(new Error(`server answered with packet type 0x${payload[0]?.toString(16)} instead of a greeting`), null);
      try {
        done(null, parseHandshakeV10(payload));
      } catch (err) {
        done(err as Error, null);
      }
    });
    s.on("error", (err) => done(err, null));
    s.on("close", () => done(new Error("closed before its greeting"), null));
  });
}

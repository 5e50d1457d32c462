import * as http from "node:http";
import type { AddressInfo } from "node:net";
import type { Logger } from "pino";
import { PROMETHEUS_CONTENT_TYPE } from "./scrape";

/** `GET /healthz`: 200 when `ok`, else 503; `body` is sent as JSON. */
export interface Health {
  ok: boolean;
  body: Record<string, unknown>;
}

export interface MetricsHttpServerOptions {
  host: string;
  port: number;
  /** The exposition text of one scrape. */
  metrics(): Promise<string>;
  health(): Health;
  logger: Logger;
}

export interface MetricsHttpServer {
  /** Where it listens (the real port when 0 was asked). */
  readonly address: { host: string; port: number };
  close(): Promise<void>;
}

/**
 * The data plane's HTTP endpoint for operators: `GET /metrics` (Prometheus
 * text format) and `GET /healthz`. Nothing else; no request body is read.
 * Rejects when the address cannot be bound.
 */
export function startMetricsHttpServer(options: MetricsHttpServerOptions): Promise<MetricsHttpServer> {
  const log = options.logger;
  const server = http.createServer((req, res) => {
    const path = (req.url ?? "/").split("?")[0];
    if (req.method !== "GET" && req.method !== "HEAD") {
      res.writeHead(405, { Allow: "GET, HEAD", "Content-Type": "text/plain" }).end("only GET and HEAD\n");
      return;
    }
    if (path === "/metrics") {
      options.metrics().then(
        (text) => {
          res.writeHead(200, { "Content-Type": PROMETHEUS_CONTENT_TYPE }).end(req.method === "HEAD" ? undefined : text);
        },
        (err: unknown) => {
          log.error({ err: (err as Error)?.message ?? String(err) }, "metrics scrape failed");
          res.writeHead(500, { "Content-Type": "text/plain" }).end("metrics scrape failed; see the data plane's log\n");
        },
      );
      return;
    }
    if (path === "/healthz") {
      const h = options.health();
      res.writeHead(h.ok ? 200 : 503, { "Content-Type": "application/json" }).end(req.method === "HEAD" ? undefined : JSON.stringify(h.body) + "\n");
      return;
    }
    res.writeHead(404, { "Content-Type": "text/plain" }).end("not found; try /metrics or /healthz\n");
  });
  server.headersTimeout = 10_000;
  server.requestTimeout = 30_000;
  server.keepAliveTimeout = 5_000;
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen({ host: options.host, port: options.port }, () => {
      server.removeListener("error", reject);
      server.on("error", (err) => log.error({ err: err.message }, "metrics HTTP server error"));
      const a = server.address() as AddressInfo;
      resolve({
        address: { host: a.address, port: a.port },
        close: () =>
          new Promise<void>((done) => {
            server.close(() => done());
            server.closeAllConnections();
          }),
      });
    });
  });
}

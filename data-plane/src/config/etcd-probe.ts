import * as http from "node:http";
import * as https from "node:https";
import { etcdHttpsOptions } from "@mysqlgw/proto";

/**
 * Asks one etcd endpoint's `GET /health` (served on the client URL by etcd
 * 3.4+) whether it answers at all, on a socket we own and destroy on timeout.
 *
 * Why: gRPC has no handshake timeout, and etcd3 drops its channel after each
 * failed call; against an endpoint that accepts TCP but never answers (a hung
 * or stopped etcd) every gRPC attempt would leave a socket behind. Probing
 * first means gRPC only ever dials an etcd that just answered.
 *
 * Resolves null when the endpoint answered 200, else a short reason.
 */
export function probeEtcd(endpoint: string, timeoutMs: number): Promise<string | null> {
  return new Promise((resolve) => {
    let url: URL;
    try {
      url = new URL("/health", endpoint);
    } catch {
      resolve(`invalid endpoint ${endpoint}`);
      return;
    }
    const mod = url.protocol === "https:" ? https : http;
    let done = false;
    const finish = (reason: string | null) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      req.destroy();
      resolve(reason);
    };
    const tls = url.protocol === "https:" ? etcdHttpsOptions() : {}; // --etcd-ca/--etcd-cert/--etcd-key
    const req = mod.get(url, { agent: false, headers: { connection: "close" }, ...tls }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (c: string) => {
        if (body.length < 512) body += c;
      });
      res.on("end", () =>
        finish(res.statusCode === 200 ? null : `${endpoint}/health answered ${res.statusCode} ${body.trim().slice(0, 200)}`),
      );
      res.on("error", (e) => finish(`${endpoint}/health: ${e.message}`));
    });
    req.on("error", (e: NodeJS.ErrnoException) => finish(`${endpoint}: ${e.code ?? e.message}`));
    const timer = setTimeout(() => finish(`${endpoint}/health did not answer within ${timeoutMs} ms`), timeoutMs);
    timer.unref();
  });
}

/** Resolves null as soon as any endpoint answers healthy, else the reasons of all. */
export async function probeAnyEtcd(endpoints: readonly string[], timeoutMs: number): Promise<string | null> {
  const reasons = await Promise.all(
    endpoints.map((e) => probeEtcd(e, timeoutMs).then((r) => (r === null ? Promise.reject(null) : r))),
  ).catch(() => null);
  return reasons === null ? null : reasons.join("; ");
}

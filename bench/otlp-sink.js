#!/usr/bin/env node
// A stand-in OTLP/HTTP collector for benchmarks: accepts POST /v1/traces
// (protobuf or JSON), answers 200 with an empty ExportTraceServiceResponse and
// counts requests and bytes without decoding them (GET /stats: JSON). It runs
// as its own process so that its CPU is not the data plane's.
//   node bench/otlp-sink.js PORT   → prints "listening PORT" once ready
"use strict";
const http = require("node:http");

const stats = { requests: 0, bytes: 0 };
const server = http.createServer((req, res) => {
  if (req.method === "GET" && req.url === "/stats") {
    res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(stats));
    return;
  }
  let n = 0;
  req.on("data", (c) => (n += c.length));
  req.on("end", () => {
    if (req.method !== "POST" || req.url !== "/v1/traces") {
      res.writeHead(404).end();
      return;
    }
    stats.requests++;
    stats.bytes += n;
    const proto = String(req.headers["content-type"] ?? "").startsWith("application/x-protobuf");
    res.writeHead(200, { "content-type": proto ? "application/x-protobuf" : "application/json" }).end(proto ? undefined : "{}");
  });
});
server.listen(Number(process.argv[2] ?? 0), "127.0.0.1", () => process.stdout.write(`listening ${server.address().port}\n`));
process.on("SIGTERM", () => server.close(() => process.exit(0)));

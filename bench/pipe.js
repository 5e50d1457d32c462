#!/usr/bin/env node
// The floor for any Node.js proxy design: a bare TCP pipe with no parsing at all.
//   node bench/pipe.js LISTEN_PORT HOST:PORT[,HOST:PORT...]
// With several backends, each new connection goes to the next one (round robin per connection).
// Prints "listening PORT" once it accepts connections.
"use strict";
const net = require("node:net");

const [listenPort, list] = process.argv.slice(2);
const backends = list.split(",").map((b) => {
  const sep = b.lastIndexOf(":");
  return { host: b.slice(0, sep), port: Number(b.slice(sep + 1)) };
});
let turn = 0;

const server = net.createServer((client) => {
  const upstream = net.connect(backends[turn++ % backends.length]);
  client.setNoDelay(true);
  upstream.setNoDelay(true);
  client.pipe(upstream);
  upstream.pipe(client);
  client.on("error", () => upstream.destroy());
  upstream.on("error", () => client.destroy());
  client.on("close", () => upstream.destroy());
  upstream.on("close", () => client.destroy());
});
server.listen(Number(listenPort), "127.0.0.1", () => console.log(`listening ${server.address().port}`));
process.on("SIGTERM", () => process.exit(0));

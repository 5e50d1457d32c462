#!/usr/bin/env node
// The floor for any Node.js proxy design: a bare TCP pipe with no parsing at all.
//   node bench/pipe.js LISTEN_PORT BACKEND_HOST:BACKEND_PORT
// Prints "listening PORT" once it accepts connections.
"use strict";
const net = require("node:net");

const [listenPort, backend] = process.argv.slice(2);
const sep = backend.lastIndexOf(":");
const host = backend.slice(0, sep);
const port = Number(backend.slice(sep + 1));

const server = net.createServer((client) => {
  const upstream = net.connect({ host, port });
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

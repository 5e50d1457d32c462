// An example mysqlgw phase-hook plugin (docs/data-plane.md, "Phase hooks").
// Load it with: mysqlgw-data-plane --plugin examples/plugins/hello-plugin.js
//
// Hooks may return a value or a Promise; each gets --plugin-budget ms (default 5)
// after which the session goes on without it. Nothing here may block for long:
// the hooks run on the data plane's event loop.
"use strict";

const SLOW_MS = 200;

module.exports = {
  name: "hello",

  // A client connected (before the greeting). Refuse a listener under maintenance:
  connectServer(ctx) {
    if (process.env.HELLO_CLOSED_LISTENER === ctx.listener) {
      return { reject: { message: `listener ${ctx.listener} is closed for maintenance; try again later` } };
    }
  },

  // The greeting is about to go out: say who answers.
  readHandshake(ctx) {
    return { serverVersion: `${ctx.serverVersion}-hello` };
  },

  // Routed listeners: answer `SELECT mysqlgw_hello()` without a backend,
  // and send statements tagged /* fresh */ to the primary.
  readQuery(ctx) {
    if (/^\s*select\s+mysqlgw_hello\(\)/i.test(ctx.sql)) {
      return { reply: { columns: ["greeting"], rows: [[`hello, ${ctx.user}`]] } };
    }
    if (ctx.sql.includes("/* fresh */")) return { route: "primary" };
    return undefined;
  },

  // Log slow statements (never the text's literals: ctx.kind and the duration only).
  readQueryResult(ctx) {
    if (ctx.durationMs > SLOW_MS) {
      process.stderr.write(`hello-plugin: slow ${ctx.kind} on ${ctx.target}: ${ctx.durationMs.toFixed(1)} ms\n`);
    }
  },
};

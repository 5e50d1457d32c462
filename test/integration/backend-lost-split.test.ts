// Issue 4 (and issue 3, point 5): a backend connection lost mid-query, again
// through SPLIT listeners — the routed engine, on pooled backend connections.
process.env.MYSQLGW_FIXTURE_LISTENER = JSON.stringify({ role: "LISTENER_ROLE_SPLIT" });
// eslint-disable-next-line @typescript-eslint/no-require-imports
require("./backend-lost.test");

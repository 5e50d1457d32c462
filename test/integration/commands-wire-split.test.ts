// Issue 4 (and issue 3, point 3): the wire-level commands suite again through
// a SPLIT listener — statistics, set option, long data, stmt reset, cursors,
// stmt close, bulk execute, quit — on the routed engine.
process.env.MYSQLGW_FIXTURE_LISTENER = JSON.stringify({ role: "LISTENER_ROLE_SPLIT" });
// eslint-disable-next-line @typescript-eslint/no-require-imports
require("./commands-wire.test");

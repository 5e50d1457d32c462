// Issue 4, point 7 (and issue 3's promise that every client works unmodified):
// the whole conformance suite again, through a SPLIT listener — the routed
// engine, statements multiplexed over pooled backend connections — so that
// every client and protocol shape it covers is checked on that path too.
process.env.MYSQLGW_FIXTURE_LISTENER = JSON.stringify({ role: "LISTENER_ROLE_SPLIT" });
// eslint-disable-next-line @typescript-eslint/no-require-imports
require("./conformance.test");

// Issue 4 (and issue 3, point 3): COM_FIELD_LIST again through a SPLIT
// listener, on the routed engine.
process.env.MYSQLGW_FIXTURE_LISTENER = JSON.stringify({ role: "LISTENER_ROLE_SPLIT" });
// eslint-disable-next-line @typescript-eslint/no-require-imports
require("./field-list.test");

// Issue 4 (and issue 3, point 3): the commands suite again through a SPLIT
// listener — KILL, COM_CHANGE_USER, COM_RESET_CONNECTION, cursors, long data,
// LOAD DATA LOCAL, real PHP/mysql2/mariadb clients — on the routed engine.
process.env.MYSQLGW_FIXTURE_LISTENER = JSON.stringify({ role: "LISTENER_ROLE_SPLIT" });
// eslint-disable-next-line @typescript-eslint/no-require-imports
require("./commands.test");

// Issue 4, point 8: phase hooks. A plugin module on the data plane host sees
// connectServer, readHandshake, readAuth, readAuthResult, readQuery and
// readQueryResult; it rejects, rewrites, routes and answers locally, within a
// time budget. Real MariaDB primary + replica, real clients.
import * as fs from "node:fs";
import * as path from "node:path";
import type * as mysql from "mysql2/promise";
import {
  applyPolicy,
  connect,
  freePort,
  nativePasswordHash,
  runMariadbCli,
  startControlPlane,
  startDataPlane,
  startEtcd,
  startReplicatedCluster,
  tempDir,
  type ControlPlane,
  type DataPlane,
  type EtcdServer,
  type ReplicatedCluster,
} from "../helpers";

let etcd: EtcdServer;
let cluster: ReplicatedCluster;
let cp: ControlPlane;
let dp: DataPlane;
let dir: string;
let hookLog: string;
const ports = { split: 0, blocked: 0, hello: 0 };
const PASSWORD = "hooks-pw-8";

const TEST_PLUGIN = `
const fs = require("fs");
const rec = (e) => fs.appendFileSync(process.env.HOOK_LOG, JSON.stringify(e) + "\\n");
module.exports = {
  name: "test-hooks",
  connectServer(ctx) {
    rec({ hook: "connectServer", listener: ctx.listener });
    if (ctx.listener === "blocked") return { reject: { message: "connections to this listener are closed for maintenance" } };
  },
  readHandshake(ctx) { rec({ hook: "readHandshake" }); return { serverVersion: ctx.serverVersion + "-hooked" }; },
  readAuth(ctx) {
    rec({ hook: "readAuth", user: ctx.user });
    if (ctx.user === "intruder") return { reject: { message: "not you" } };
  },
  readAuthResult(ctx) { rec({ hook: "readAuthResult", user: ctx.user, ok: ctx.ok }); },
  async readQuery(ctx) {
    rec({ hook: "readQuery", sql: ctx.sql, kind: ctx.kind });
    if (/mysqlgw_hello/.test(ctx.sql)) return { reply: { columns: ["greeting", "user"], rows: [["hello", ctx.user], [null, "x"]] } };
    if (/forbidden_table/.test(ctx.sql)) return { error: { errno: 1142, sqlState: "42000", message: "forbidden_table is off limits" } };
    if (/old_name/.test(ctx.sql)) return { rewrite: ctx.sql.replace("old_name", "items") };
    if (/to primary/.test(ctx.sql)) return { route: "primary" };
    if (/slow_hook/.test(ctx.sql)) { await new Promise((r) => setTimeout(r, 1000)); return { error: { message: "too late" } }; }
    if (/throwing_hook/.test(ctx.sql)) throw new Error("plugin bug");
  },
  readQueryResult(ctx) { rec({ hook: "readQueryResult", sql: ctx.sql, ok: ctx.ok, target: ctx.target }); },
};
`;

beforeAll(async () => {
  dir = tempDir("phase-hooks");
  fs.mkdirSync(dir, { recursive: true });
  hookLog = path.join(dir, "hooks.log");
  fs.writeFileSync(hookLog, "");
  const pluginFile = path.join(dir, "test-plugin.js");
  fs.writeFileSync(pluginFile, TEST_PLUGIN);
  [etcd, cluster] = await Promise.all([startEtcd(), startReplicatedCluster({ replicas: 1 })]);
  await cluster.primary.query("CREATE DATABASE shop; CREATE TABLE shop.items (id INT PRIMARY KEY, name VARCHAR(20)); INSERT INTO shop.items VALUES (1, 'apple')");
  await cluster.waitForReplicas();
  cp = await startControlPlane({ etcd });
  for (const k of Object.keys(ports) as (keyof typeof ports)[]) ports[k] = await freePort();
  const { version } = await applyPolicy(cp, {
    clusters: [
      {
        name: "shop",
        backends: [
          { name: "db1", address: cluster.primary.address, expectedRole: "ROLE_PRIMARY" },
          { name: "db2", address: cluster.replicas[0].address, expectedRole: "ROLE_REPLICA" },
        ],
      },
    ],
    listeners: [
      { name: "split", bindAddress: "127.0.0.1", port: ports.split, cluster: "shop", role: "LISTENER_ROLE_SPLIT" },
      { name: "blocked", bindAddress: "127.0.0.1", port: ports.blocked, cluster: "shop" },
    ],
    users: [
      { name: "shopapp", passwordHash: nativePasswordHash(PASSWORD), backendCredentials: { user: cluster.app.user, secretRef: "env:APP_PW" } },
      { name: "intruder", passwordHash: nativePasswordHash(PASSWORD), backendCredentials: { user: cluster.app.user, secretRef: "env:APP_PW" } },
    ],
  });
  dp = await startDataPlane({
    etcd,
    workers: 1,
    args: ["--plugin", pluginFile, "--plugin-budget", "50"],
    env: { APP_PW: cluster.app.password, HOOK_LOG: hookLog },
  });
  await dp.waitForConfig(version);
}, 180_000);

afterAll(async () => {
  await dp?.stop();
  await cp?.stop();
  await cluster?.stop();
  await etcd?.stop();
  fs.rmSync(dir, { recursive: true, force: true });
});

function hookEvents(): Array<Record<string, unknown>> {
  return fs
    .readFileSync(hookLog, "utf8")
    .split("\n")
    .filter((l) => l !== "")
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

async function client(): Promise<mysql.Connection> {
  return connect({ port: ports.split, user: "shopapp", password: PASSWORD, database: "shop" });
}

test("every phase is called in order, and readHandshake changes the version the client sees", async () => {
  fs.writeFileSync(hookLog, "");
  const r = await runMariadbCli({ port: ports.split, user: "shopapp", password: PASSWORD, sql: "SELECT name FROM shop.items WHERE id = 1", args: ["--batch"] });
  expect(r).toMatchObject({ code: 0, stdout: "name\napple\n" });
  const status = await runMariadbCli({ port: ports.split, user: "shopapp", password: PASSWORD, sql: "status" });
  expect(status.stdout).toMatch(/Server version:\s+\S*-hooked/);
  const hooks = hookEvents().map((e) => e.hook);
  expect(hooks.slice(0, 4)).toEqual(["connectServer", "readHandshake", "readAuth", "readAuthResult"]);
  expect(hooks).toContain("readQuery");
  const result = hookEvents().find((e) => e.hook === "readQueryResult" && String(e.sql).includes("shop.items"));
  expect(result).toMatchObject({ ok: true, target: "replica" });
});

test("connectServer and readAuth reject with the plugin's error", async () => {
  await expect(connect({ port: ports.blocked, user: "shopapp", password: PASSWORD })).rejects.toMatchObject({
    errno: 1130,
    message: "connections to this listener are closed for maintenance",
  });
  await expect(connect({ port: ports.split, user: "intruder", password: PASSWORD })).rejects.toMatchObject({ errno: 1045, sqlState: "28000", message: "not you" });
});

test("readQuery answers locally, refuses, rewrites and routes", async () => {
  const c = await client();
  try {
    const [rows, fields] = await c.query<mysql.RowDataPacket[]>("SELECT mysqlgw_hello()");
    expect(rows).toEqual([{ greeting: "hello", user: "shopapp" }, { greeting: null, user: "x" }]);
    expect(fields.map((f) => f.name)).toEqual(["greeting", "user"]);
    await expect(c.query("SELECT * FROM forbidden_table")).rejects.toMatchObject({ errno: 1142, sqlState: "42000", sqlMessage: "forbidden_table is off limits" });
    const [renamed] = await c.query<mysql.RowDataPacket[]>("SELECT name FROM old_name WHERE id = 1");
    expect(renamed).toEqual([{ name: "apple" }]);
    const [primary] = await c.query<mysql.RowDataPacket[]>("SELECT @@server_id AS id /* to primary */");
    expect(Number(primary[0].id)).toBe(1);
    const [replica] = await c.query<mysql.RowDataPacket[]>("SELECT @@server_id AS id");
    expect(Number(replica[0].id)).toBe(2);
  } finally {
    await c.end();
  }
});

test("a hook past its budget, or one that throws, is skipped: the statement runs as if there were no plugin", async () => {
  const c = await client();
  try {
    const t0 = Date.now();
    const [r] = await c.query<mysql.RowDataPacket[]>("SELECT 'slow_hook' AS s");
    const took = Date.now() - t0;
    expect(r).toEqual([{ s: "slow_hook" }]);
    expect(took).toBeLessThan(900); // the hook sleeps 1 s; the budget is 50 ms
    const [t] = await c.query<mysql.RowDataPacket[]>("SELECT 'throwing_hook' AS s");
    expect(t).toEqual([{ s: "throwing_hook" }]);
  } finally {
    await c.end();
  }
  expect(dp.logs.some((l) => String(l.msg).includes("plugin hook readQuery did not answer within its budget"))).toBe(true);
});

test("the example plugin (examples/plugins/hello-plugin.js) loads and answers SELECT mysqlgw_hello()", async () => {
  await dp.stop(); // the next config's listener would be bound by both data planes
  const port = await freePort();
  const { version } = await applyPolicy(cp, {
    clusters: [{ name: "shop", backends: [{ name: "db1", address: cluster.primary.address, expectedRole: "ROLE_PRIMARY" }] }],
    listeners: [{ name: "hello", bindAddress: "127.0.0.1", port, cluster: "shop", role: "LISTENER_ROLE_SPLIT" }],
    users: [{ name: "shopapp", passwordHash: nativePasswordHash(PASSWORD), backendCredentials: { user: cluster.app.user, secretRef: "env:APP_PW" } }],
  });
  const example = path.resolve(__dirname, "../../examples/plugins/hello-plugin.js");
  const dp2 = await startDataPlane({ etcd, workers: 1, args: ["--plugin", example], env: { APP_PW: cluster.app.password } });
  try {
    await dp2.waitForConfig(version);
    const r = await runMariadbCli({ port, user: "shopapp", password: PASSWORD, sql: "SELECT mysqlgw_hello()" });
    expect(r).toMatchObject({ code: 0, stdout: "greeting\nhello, shopapp\n" });
  } finally {
    await dp2.stop();
  }
});

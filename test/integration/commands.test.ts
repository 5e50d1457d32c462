// Issue 3, point 3 (and LOAD DATA LOCAL from point 4): commands at command
// boundaries through the data plane (two workers) against a real MariaDB,
// with mysql2, the mariadb connector, PHP mysqli/PDO and the mariadb CLI.
import * as fs from "node:fs";
import * as path from "node:path";
import { fixtureListenerFromEnv as fixtureListener } from "../helpers/gateway-fixture";
import { packet, rawLogin } from "../helpers/raw-mysql";

/** Run through a routed listener (commands-split.test.ts sets MYSQLGW_FIXTURE_LISTENER). */
const ROUTED = (process.env.MYSQLGW_FIXTURE_LISTENER ?? "").includes("SPLIT");
import { spawn } from "node:child_process";
import { Readable } from "node:stream";
import * as mariadb from "mariadb";
import type { Connection } from "mysql2/promise";
import {
  applyPolicy,
  connect,
  freePort,
  nativePasswordHash,
  runMariadbCli,
  runProcess,
  startControlPlane,
  startDataPlane,
  startEtcd,
  startMariaDB,
  tempDir,
  waitFor,
  type MariaDBServer,
} from "../helpers";

const APP_PW = "app-backend-pw-1";
const APP2_PW = "app2-backend-pw-2";
const USERS = {
  shop: { password: "shop-pw-1", backend: "app", load: true },
  shop2: { password: "shop2-pw-2", backend: "app2", load: true },
  noload: { password: "noload-pw-3", backend: "app", load: false },
} as const;
type UserName = keyof typeof USERS;

let db: MariaDBServer;
let port: number;
const open: Connection[] = [];

function gw(user: UserName, extra: Parameters<typeof connect>[0]["extra"] = {}): Promise<Connection> {
  return connect({ port, user, password: USERS[user].password, database: "shop", extra }).then((c) => {
    open.push(c);
    return c;
  });
}

async function closeAll(): Promise<void> {
  for (const c of open.splice(0)) await c.end().catch(() => c.destroy());
}

const workerOf = (id: number): number => id >>> 24;

/** Two shop connections, on the same worker or on different ones (bounded: at most 24 tries). */
async function pair(sameWorker: boolean): Promise<[Connection, Connection]> {
  const seen: Connection[] = [];
  for (let i = 0; i < 24; i++) {
    const c = await gw("shop");
    const mate = seen.find((s) => (workerOf(s.threadId) === workerOf(c.threadId)) === sameWorker);
    if (mate !== undefined) return [mate, c];
    seen.push(c);
  }
  throw new Error(`no two connections on ${sameWorker ? "the same worker" : "different workers"} in 24 tries`);
}

function php(code: string): Promise<{ code: number | null; out: Record<string, unknown>; stderr: string }> {
  const file = path.join(tempDir("php"), "t.php");
  fs.writeFileSync(file, `<?php\nmysqli_report(MYSQLI_REPORT_OFF);\n$out = [];\n${code}\necho json_encode($out);\n`);
  return runProcess("php", [file], { timeoutMs: 20_000 }).then((r) => {
    let out: Record<string, unknown> = {};
    try {
      out = JSON.parse(r.stdout) as Record<string, unknown>;
    } catch {
      out = { raw: r.stdout };
    }
    return { code: r.code, out, stderr: r.stderr };
  });
}

beforeAll(async () => {
  let etcd;
  [etcd, db] = await Promise.all([
    startEtcd(),
    startMariaDB({ accounts: [{ user: "app", password: APP_PW }, { user: "app2", password: APP2_PW }] }),
  ]);
  await db.query("CREATE DATABASE shop");
  await db.query("CREATE TABLE shop.t (id INT PRIMARY KEY, v VARCHAR(200))");
  await db.query("CREATE TABLE shop.loaded (n INT)");
  const cp = await startControlPlane({ etcd });
  port = await freePort();
  const { version } = await applyPolicy(cp, {
    clusters: [{ name: "main", backends: [{ name: "db", address: db.address }] }],
    listeners: [{ name: "main", bindAddress: "127.0.0.1", port, cluster: "main", ...fixtureListener() }],
    users: Object.entries(USERS).map(([name, u]) => ({
      name,
      passwordHash: nativePasswordHash(u.password),
      allowLoadDataLocal: u.load,
      backendCredentials: { user: u.backend, secretRef: u.backend === "app" ? "env:APP_PW" : "env:APP2_PW" },
    })),
  }, "commands.test");
    await startDataPlane({ etcd, workers: 2, env: { APP_PW, APP2_PW }, waitForConfig: version });
}, 120_000);

afterEach(closeAll);

describe("KILL with the connection id of our handshake", () => {
  test.each([
    ["the same worker", true],
    ["another worker", false],
  ])("KILL QUERY from %s interrupts the running statement with 1317 within a second", async (_what, same) => {
    const [victim, killer] = await pair(same);
    const started = Date.now();
    const sleeping = victim.query("SELECT SLEEP(30)").then(
      () => ({ errno: 0, ms: Date.now() - started }),
      (e: { errno: number; sqlState: string }) => ({ errno: e.errno, sqlState: e.sqlState, ms: Date.now() - started }),
    );
    await new Promise((r) => setTimeout(r, 300));
    const t0 = Date.now();
    const [ok] = await killer.query(`KILL QUERY ${victim.threadId}`);
    expect(ok).toMatchObject({ affectedRows: 0 });
    const r = await sleeping;
    expect(r).toMatchObject({ errno: 1317, sqlState: "70100" });
    expect(Date.now() - t0).toBeLessThan(1000);
    // only the statement was ended: the connection still works
    const [[row]] = (await victim.query("SELECT 7 AS n")) as unknown as [[{ n: number }]];
    expect(row.n).toBe(7);
  }, 30_000);

  test("KILL <id> (and KILL CONNECTION, with comments) across workers closes the target connection", async () => {
    for (const make of [(id: number) => `KILL ${id}`, (id: number) => `  /* by hand */ kill CONNECTION ${id} ;`]) {
      const [victim, killer] = await pair(false);
      await killer.query(make(victim.threadId));
      await expect(victim.query("SELECT 1")).rejects.toBeTruthy();
    }
  }, 30_000);

  test("another user's connection gives 1095, an unknown id 1094 (also one naming a worker that does not exist)", async () => {
    const victim = await gw("shop");
    const other = await gw("noload");
    await expect(other.query(`KILL QUERY ${victim.threadId}`)).rejects.toMatchObject({
      errno: 1095,
      sqlState: "HY000",
      sqlMessage: `You are not owner of thread ${victim.threadId}`,
    });
    const unknownHere = ((workerOf(victim.threadId) << 24) | 0xfffff0) >>> 0;
    await expect(other.query(`KILL ${unknownHere}`)).rejects.toMatchObject({ errno: 1094, sqlMessage: `Unknown thread id: ${unknownHere}` });
    const noWorker = ((7 << 24) | 5) >>> 0;
    await expect(other.query(`KILL ${noWorker}`)).rejects.toMatchObject({ errno: 1094 });
    // the victim was not touched
    await victim.query("SELECT 1");
  }, 30_000);

  test("the mariadb CLI (KILL QUERY over a new connection, as its Ctrl-C does) and PHP mysqli::kill (COM_PROCESS_KILL)", async () => {
    const victim = await gw("shop");
    const sleeping = victim.query("SELECT SLEEP(30)").catch((e: { errno: number }) => e.errno);
    await new Promise((r) => setTimeout(r, 300));
    const cli = await runMariadbCli({ port, user: "shop", password: USERS.shop.password, sql: `KILL QUERY ${victim.threadId}` });
    expect(cli.stderr).toBe("");
    expect(cli.code).toBe(0);
    expect(await sleeping).toBe(1317);

    const target = await gw("shop");
    const r = await php(`
      $m = new mysqli("127.0.0.1", "shop", "${USERS.shop.password}", "shop", ${port});
      $out["kill"] = $m->kill(${target.threadId});
      $out["errno"] = $m->errno;
      $out["bad"] = $m->kill(${((workerOf(target.threadId) << 24) | 0xfffff1) >>> 0});
      $out["badErrno"] = $m->errno;
    `);
    expect(r.stderr).toBe("");
    expect(r.out).toEqual({ kill: true, errno: 0, bad: false, badErrno: 1094 });
    await expect(target.query("SELECT 1")).rejects.toBeTruthy();
  }, 30_000);

  test("Ctrl-C in the mariadb CLI interrupts its running query (its own KILL QUERY with the handshake's id)", async () => {
    const bin = process.env.MYSQLGW_MARIADB_CLI ?? "mariadb";
    const child = spawn(bin, ["--no-defaults", "--protocol=TCP", "-h127.0.0.1", `-P${port}`, "-ushop", `-p${USERS.shop.password}`, "-e", "SELECT SLEEP(30) AS ctrl_c_marker"], { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    child.stdout.setEncoding("utf8").on("data", (d: string) => (out += d));
    child.stderr.setEncoding("utf8").on("data", (d: string) => (out += d));
    const exited = new Promise<number | null>((resolve) => child.once("close", resolve));
    try {
      const running = "SELECT ID FROM information_schema.PROCESSLIST WHERE INFO LIKE '%AS ctrl_c_marker' AND INFO NOT LIKE '%PROCESSLIST%'";
      await waitFor(async () => (await db.query(running)).length === 1, { timeoutMs: 5000, what: "the CLI's SLEEP on the server" });
      const t0 = Date.now();
      child.kill("SIGINT");
      const code = await Promise.race([exited, new Promise<"timeout">((r) => setTimeout(() => r("timeout"), 10_000))]);
      expect(code).not.toBe("timeout");
      expect(out).toMatch(/ERROR 1317 \(70100\).*Query execution was interrupted/);
      expect(Date.now() - t0).toBeLessThan(5000);
      expect(await db.query(running)).toEqual([]);
    } finally {
      if (child.exitCode === null) child.kill("SIGKILL");
    }
  }, 30_000);

  test("COM_PROCESS_KILL from a connection on another worker closes the target (raw client)", async () => {
    const victim = await gw("shop");
    const sleeping = victim.query("SELECT SLEEP(30)").then(() => "completed", () => "failed");
    await new Promise((r) => setTimeout(r, 300));
    // a raw session on the other worker (bounded: 24 tries)
    let killer: Awaited<ReturnType<typeof rawLogin>> | null = null;
    for (let i = 0; i < 24 && killer === null; i++) {
      const k = await rawLogin({ port, user: "shop", password: USERS.shop.password, database: "shop" });
      if (workerOf(k.connectionId) !== workerOf(victim.threadId)) killer = k;
      else k.s.destroy();
    }
    expect(killer).not.toBeNull();
    try {
      const id = Buffer.alloc(4);
      id.writeUInt32LE(victim.threadId, 0);
      killer!.s.write(packet(0, Buffer.concat([Buffer.from([0x0c]), id])));
      const reply = await killer!.r.next();
      expect(reply.payload[0]).toBe(0x00); // OK
      expect(await sleeping).toBe("failed");
      await expect(victim.query("SELECT 1")).rejects.toBeTruthy();
      // an unknown id: 1094, as MariaDB says it
      id.writeUInt32LE(((workerOf(victim.threadId) << 24) | 0xfffff2) >>> 0, 0);
      killer!.s.write(packet(0, Buffer.concat([Buffer.from([0x0c]), id])));
      const err = (await killer!.r.next()).payload;
      expect([err[0], err.readUInt16LE(1)]).toEqual([0xff, 1094]);
    } finally {
      killer!.s.destroy();
    }
  }, 30_000);

  test("statements that only look like KILL pass through untouched", async () => {
    const c = await gw("shop");
    const [[row]] = (await c.query("  -- a comment\n SELECT 'KILL 5' AS k")) as unknown as [[{ k: string }]];
    expect(row.k).toBe("KILL 5");
    // KILL QUERY ID (a query id, not a thread id) reaches the server as written
    await expect(c.query("KILL QUERY ID 987654321")).rejects.toMatchObject({ errno: 1957, sqlMessage: "Unknown query id: 987654321" });
  });
});

describe("COM_CHANGE_USER is authenticated against mysqlgw's users", () => {
  test("mysql2 changeUser switches to the new user's backend account and resets the session", async () => {
    const c = await gw("shop");
    await c.query("SET @x = 1");
    const [[before]] = (await c.query("SELECT CURRENT_USER() AS u")) as unknown as [[{ u: string }]];
    expect(before.u).toBe("app@%");
    await c.changeUser({ user: "shop2", password: USERS.shop2.password, database: "shop" });
    const [[after]] = (await c.query("SELECT CURRENT_USER() AS u, @x AS x, DATABASE() AS d")) as unknown as [[{ u: string; x: unknown; d: string }]];
    expect(after).toEqual({ u: "app2@%", x: null, d: "shop" });
    // and back, with the same connection id
    const id = c.threadId;
    await c.changeUser({ user: "shop", password: USERS.shop.password });
    const [[back]] = (await c.query("SELECT CURRENT_USER() AS u")) as unknown as [[{ u: string }]];
    expect(back.u).toBe("app@%");
    expect(c.threadId).toBe(id);
  });

  test("a wrong password gives 1045/28000 as MariaDB does, and the connection stays as the previous user", async () => {
    // what MariaDB itself does, direct
    const direct = await connect({ port: db.port, user: "app", password: APP_PW });
    open.push(direct);
    const directErr = await direct.changeUser({ user: "app2", password: "wrong" }).then(() => null, (e: { errno: number; sqlState: string }) => e);
    expect(directErr).toMatchObject({ errno: 1045, sqlState: "28000" });
    const directAfter = await direct.query("SELECT CURRENT_USER() AS u").then(([rows]) => (rows as { u: string }[])[0].u, () => "closed");

    const c = await gw("shop");
    const err = await c.changeUser({ user: "shop2", password: "wrong" }).then(() => null, (e: { errno: number; sqlState: string; sqlMessage: string }) => e);
    expect(err).toMatchObject({ errno: 1045, sqlState: "28000", sqlMessage: "Access denied for user 'shop2'@'127.0.0.1' (using password: YES)" });
    const after = await c.query("SELECT CURRENT_USER() AS u").then(([rows]) => (rows as { u: string }[])[0].u, () => "closed");
    expect(directAfter).toBe("app@%");
    expect(after).toBe("app@%");
    // an unknown user is denied the same way
    const c2 = await gw("shop");
    await expect(c2.changeUser({ user: "nobody", password: "x" })).rejects.toMatchObject({ errno: 1045 });
  });

  test("a user without allow_load_data_local cannot take over a connection that allows it", async () => {
    const c = await gw("shop");
    if (ROUTED) {
      // a routed session runs on the new user's own pooled connections, which never have LOCAL_FILES: the change is safe
      await c.changeUser({ user: "noload", password: USERS.noload.password });
      const [[one]] = (await c.query("SELECT 1 AS x")) as unknown as [[{ x: number }]];
      expect(one.x).toBe(1);
    } else {
      await expect(c.changeUser({ user: "noload", password: USERS.noload.password })).rejects.toMatchObject({ errno: 1105 });
    }
    // the other way is fine: a noload connection never had LOCAL_FILES
    const d = await gw("noload");
    await d.changeUser({ user: "shop2", password: USERS.shop2.password });
    const [[u]] = (await d.query("SELECT CURRENT_USER() AS u")) as unknown as [[{ u: string }]];
    expect(u.u).toBe("app2@%");
  });

  test("after changeUser, KILL follows the new owner", async () => {
    const victim = await gw("shop");
    const killer = await gw("shop2");
    await expect(killer.query(`KILL QUERY ${victim.threadId}`)).rejects.toMatchObject({ errno: 1095 });
    await victim.changeUser({ user: "shop2", password: USERS.shop2.password });
    await killer.query(`KILL QUERY ${victim.threadId}`);
  });
});

describe("commands that pass through, with real clients", () => {
  test("PHP mysqli: ping, select_db, stat, multi_query (COM_SET_OPTION), change_user, server-side cursors, long data, stmt reset", async () => {
    const r = await php(`
      $m = new mysqli("127.0.0.1", "shop", "${USERS.shop.password}", "", ${port});
      $out["ping"] = $m->ping();
      $out["select_db"] = $m->select_db("shop");
      $out["db"] = $m->query("SELECT DATABASE()")->fetch_row()[0];
      $out["stat"] = (bool)preg_match('/^Uptime: \\d+/', $m->stat());
      // mysqlnd turns multi-statements on and off around it with COM_SET_OPTION
      $multi = [];
      if ($m->multi_query("SELECT 1; SELECT 2")) {
        do { if ($r = $m->store_result()) { $multi[] = (int)$r->fetch_row()[0]; $r->free(); } } while ($m->more_results() && $m->next_result());
      }
      $out["multi"] = $multi;
      $out["singleAgain"] = $m->query("SELECT 1; SELECT 2") === false ? $m->errno : 0;
      $m->query("DELETE FROM t");
      $s = $m->prepare("INSERT INTO t VALUES (?, ?)");
      $id = 0; $v = null;
      $s->bind_param("ib", $id, $v);
      for ($i = 1; $i <= 50; $i++) { $id = $i; $s->send_long_data(1, str_repeat("x", $i)); $s->execute(); }
      $out["reset"] = $s->reset();
      $s->close();
      $q = $m->prepare("SELECT id, v FROM t ORDER BY id");
      $q->attr_set(MYSQLI_STMT_ATTR_CURSOR_TYPE, MYSQLI_CURSOR_TYPE_READ_ONLY);
      $q->attr_set(MYSQLI_STMT_ATTR_PREFETCH_ROWS, 7);
      $q->execute();
      $q->bind_result($a, $b);
      $n = 0; $len = 0;
      while ($q->fetch()) { $n++; $len += strlen($b); }
      $out["cursorRows"] = $n; $out["cursorLen"] = $len;
      $q->close();
      $out["change_user"] = $m->change_user("shop2", "${USERS.shop2.password}", "shop");
      $out["user"] = $m->query("SELECT CURRENT_USER()")->fetch_row()[0];
      $out["bad_change"] = $m->change_user("shop2", "nope", "shop");
      $out["bad_errno"] = $m->errno;
      $m->close();
    `);
    expect(r.stderr).toBe("");
    expect(r.out).toEqual({
      ping: true,
      select_db: true,
      db: "shop",
      stat: true,
      multi: [1, 2],
      singleAgain: 1064,
      reset: true,
      cursorRows: 50,
      cursorLen: (50 * 51) / 2,
      change_user: true,
      user: "app2@%",
      bad_change: false,
      bad_errno: 1045,
    });
  }, 30_000);

  test("PHP PDO with ATTR_EMULATE_PREPARES=false", async () => {
    const r = await php(`
      $p = new PDO("mysql:host=127.0.0.1;port=${port};dbname=shop", "shop", "${USERS.shop.password}", [PDO::ATTR_EMULATE_PREPARES => false, PDO::ATTR_ERRMODE => PDO::ERRMODE_EXCEPTION]);
      $s = $p->prepare("SELECT ? + 1 AS n, CONCAT(?, '!') AS s");
      $s->execute([41, "hi"]);
      $out["row"] = $s->fetch(PDO::FETCH_ASSOC);
      try { $p->prepare("SELEC nope")->execute(); } catch (PDOException $e) { $out["err"] = $e->errorInfo[1]; }
    `);
    expect(r.stderr).toBe("");
    expect(r.out).toEqual({ row: { n: 42, s: "hi!" }, err: 1064 });
  }, 30_000);

  test("mysql2: ping, prepare/execute/unprepare, multi-statements", async () => {
    const c = await gw("shop", { multipleStatements: true });
    await c.ping();
    const stmt = await c.prepare("SELECT ? * 2 AS n");
    const [rows] = await stmt.execute([21]);
    expect(rows).toEqual([{ n: 42 }]);
    await stmt.close();
    const [multi] = await c.query("SELECT 1 AS a; SELECT 2 AS b");
    expect(multi).toEqual([[{ a: 1 }], [{ b: 2 }]]);
  });

  test("the mariadb connector: ping, reset (COM_RESET_CONNECTION), changeUser, batch, execute", async () => {
    const conn = await mariadb.createConnection({ host: "127.0.0.1", port, user: "shop", password: USERS.shop.password, database: "shop" });
    try {
      await conn.ping();
      await conn.query("SET @y = 5");
      await conn.reset();
      expect(await conn.query("SELECT @y AS y")).toEqual([{ y: null }]);
      await conn.query("DELETE FROM t");
      const res = await conn.batch("INSERT INTO t VALUES (?, ?)", [
        [1, "a"],
        [2, "b"],
        [3, "c"],
      ]);
      // one aggregate result: the connector used COM_STMT_BULK_EXECUTE (row by row it returns one result per row)
      expect(res).toMatchObject({ affectedRows: 3 });
      expect(await conn.execute("SELECT v FROM t WHERE id = ?", [2])).toEqual([{ v: "b" }]);
      await conn.changeUser({ user: "shop2", password: USERS.shop2.password });
      expect(await conn.query("SELECT CURRENT_USER() AS u")).toEqual([{ u: "app2@%" }]);
    } finally {
      await conn.end();
    }
  });
});

describe("LOAD DATA LOCAL INFILE follows the user's allow_load_data_local", () => {
  const sql = "LOAD DATA LOCAL INFILE 'numbers.txt' INTO TABLE loaded";
  const stream = (): Readable => Readable.from([Buffer.from("1\n2\n"), Buffer.from("3\n")]);

  test("allowed: the file goes through", async () => {
    const c = await gw("shop", { infileStreamFactory: stream });
    await c.query("DELETE FROM loaded");
    const [res] = await c.query({ sql, infileStreamFactory: stream });
    expect(res).toMatchObject({ affectedRows: 3 });
    const [[n]] = (await c.query("SELECT SUM(n) AS s FROM loaded")) as unknown as [[{ s: string }]];
    expect(Number(n.s)).toBe(6);
  });

  test("not allowed: the server refuses it cleanly and the connection goes on", async () => {
    const c = await gw("noload", { infileStreamFactory: stream });
    const err = await c.query({ sql, infileStreamFactory: stream }).then(() => null, (e: { errno: number }) => e);
    expect(err).toMatchObject({ errno: 4166, sqlState: "HY000" });
    const [[one]] = (await c.query("SELECT 1 AS one")) as unknown as [[{ one: number }]];
    expect(one.one).toBe(1);
  });

  test("the mariadb CLI (--local-infile) and PHP mysqli (MYSQLI_OPT_LOCAL_INFILE): loaded when allowed, 4166 when not", async () => {
    const file = path.join(tempDir("infile"), "numbers.txt");
    fs.writeFileSync(file, "10\n20\n30\n");
    const load = `LOAD DATA LOCAL INFILE '${file}' INTO TABLE loaded`;
    await db.query("DELETE FROM shop.loaded");
    const cli = (user: UserName) =>
      runMariadbCli({ port, user, password: USERS[user].password, database: "shop", sql: `${load}; SELECT SUM(n) FROM loaded`, args: ["--local-infile=1", "--skip-column-names"] });
    const ok = await cli("shop");
    expect({ code: ok.code, stderr: ok.stderr, out: ok.stdout.trim() }).toEqual({ code: 0, stderr: "", out: "60" });
    const refused = await cli("noload");
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/ERROR 4166 \(HY000\) at line 1: The used command is not allowed because the MariaDB server or client has disabled the local infile capability/);

    const script = path.join(tempDir("php"), "infile.php");
    fs.writeFileSync(script, `<?php
      mysqli_report(MYSQLI_REPORT_OFF);
      $out = [];
      foreach (["shop" => "${USERS.shop.password}", "noload" => "${USERS.noload.password}"] as $u => $pw) {
        $m = mysqli_init();
        $m->options(MYSQLI_OPT_LOCAL_INFILE, true);
        $m->real_connect("127.0.0.1", $u, $pw, "shop", ${port});
        $ok = $m->query("${load}");
        $out[$u] = $ok ? $m->affected_rows : $m->errno;
        $out[$u . "After"] = (int)$m->query("SELECT COUNT(*) FROM loaded")->fetch_row()[0];
        $m->close();
      }
      echo json_encode($out);
    `);
    const r = await runProcess("php", ["-d", "mysqli.allow_local_infile=1", script], { timeoutMs: 20_000 });
    expect(r.stderr).toBe("");
    expect(JSON.parse(r.stdout)).toEqual({ shop: 3, shopAfter: 6, noload: 4166, noloadAfter: 6 });
  }, 30_000);
});

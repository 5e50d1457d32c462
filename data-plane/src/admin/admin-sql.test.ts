import { AdminSqlError, parseAdminQuery, runSelect, textValue, type VirtualTable } from "./admin-sql";

const digests: VirtualTable = {
  columns: ["digest", "user", "count", "total_ms", "digest_text"],
  rows: () => [
    { digest: "a", user: "app", count: 10, total_ms: 5.5, digest_text: "SELECT ?" },
    { digest: "b", user: "app", count: 2, total_ms: 50, digest_text: "UPDATE t SET v = ?" },
    { digest: "c", user: "batch", count: 7, total_ms: 20, digest_text: "DELETE FROM t" },
    { digest: "d", user: "o'neil", count: 1, total_ms: 0.25, digest_text: "SELECT 1" },
  ],
};
const tables = new Map([["digests", digests]]);

async function run(sql: string): Promise<{ columns: string[]; rows: unknown[][] }> {
  const q = parseAdminQuery(sql);
  if (q.type !== "select") throw new Error(`not a select: ${q.type}`);
  return runSelect(q, tables);
}

async function errnoOf(sql: string): Promise<[number, string]> {
  try {
    await run(sql);
  } catch (err) {
    if (err instanceof AdminSqlError) return [err.errno, err.message];
    throw err;
  }
  throw new Error("no error");
}

describe("admin SQL", () => {
  test("SELECT * / columns, ORDER BY numeric DESC, LIMIT", async () => {
    expect(await run("SELECT * FROM digests ORDER BY total_ms DESC LIMIT 2")).toEqual({
      columns: ["digest", "user", "count", "total_ms", "digest_text"],
      rows: [
        ["b", "app", 2, 50, "UPDATE t SET v = ?"],
        ["c", "batch", 7, 20, "DELETE FROM t"],
      ],
    });
    expect((await run("select digest, COUNT from mysqlgw.digests order by count asc;")).rows).toEqual([
      ["d", 1],
      ["b", 2],
      ["c", 7],
      ["a", 10],
    ]);
    expect((await run("SELECT digest FROM `digests` ORDER BY user DESC, count LIMIT 1, 2")).rows).toEqual([["c"], ["b"]]);
    expect((await run("SELECT digest FROM digests LIMIT 2 OFFSET 3")).rows).toEqual([["d"]]);
  });

  test("WHERE col op value AND …, LIKE, quoted strings", async () => {
    expect((await run("SELECT digest FROM digests WHERE user = 'app' AND count > 5")).rows).toEqual([["a"]]);
    expect((await run("SELECT digest FROM digests WHERE user = 'o''neil'")).rows).toEqual([["d"]]);
    expect((await run("SELECT digest FROM digests WHERE user = \"o\\'neil\"")).rows).toEqual([["d"]]);
    expect((await run("SELECT digest FROM digests WHERE digest_text LIKE 'select%' ORDER BY digest")).rows).toEqual([["a"], ["d"]]);
    expect((await run("SELECT digest FROM digests WHERE total_ms <= 5.5 AND user != 'x' ORDER BY digest")).rows).toEqual([["a"], ["d"]]);
    expect((await run("SELECT digest FROM digests WHERE user <> 'app' AND count >= 7")).rows).toEqual([["c"]]);
  });

  test("clear errors: unknown table 1146, unknown column 1054, syntax 1064, writes 1227", async () => {
    const [e1, m1] = await errnoOf("SELECT * FROM users");
    expect(e1).toBe(1146);
    expect(m1).toContain("digests");
    const [e2, m2] = await errnoOf("SELECT nope FROM digests");
    expect(e2).toBe(1054);
    expect(m2).toContain("digest, user, count");
    expect((await errnoOf("SELECT * FROM digests WHERE user = 'a' OR user = 'b'"))[0]).toBe(1064);
    expect((await errnoOf("SELECT * FROM digests GROUP BY user"))[0]).toBe(1064);
    expect((await errnoOf("SELECT * FROM digests WHERE user = 'a"))[0]).toBe(1064);
    expect(() => parseAdminQuery("DELETE FROM digests")).toThrow(expect.objectContaining({ errno: 1227 }));
    expect(() => parseAdminQuery("INSERT INTO digests VALUES (1)")).toThrow(/read-only/);
    expect(() => parseAdminQuery("   ")).toThrow(expect.objectContaining({ errno: 1065 }));
  });

  test("what clients send on connect: SELECT @@var LIMIT 1, SHOW TABLES, SET, USE", () => {
    expect(parseAdminQuery("select @@version_comment limit 1")).toEqual({ type: "variables", names: ["@@version_comment"] });
    expect(parseAdminQuery("SELECT DATABASE(), @@session.autocommit")).toEqual({ type: "variables", names: ["DATABASE()", "@@session.autocommit"] });
    expect(parseAdminQuery("SHOW TABLES")).toEqual({ type: "show-tables" });
    expect(parseAdminQuery("SET NAMES utf8mb4")).toEqual({ type: "noop" });
    expect(parseAdminQuery("/* comment */ USE mysqlgw")).toEqual({ type: "noop" });
  });

  test("text values: NULL stays null, booleans 1/0, numbers rounded to µs", () => {
    expect([textValue(null), textValue(true), textValue(false), textValue(3), textValue(1.23456), textValue("x")]).toEqual([null, "1", "0", "3", "1.235", "x"]);
  });
});

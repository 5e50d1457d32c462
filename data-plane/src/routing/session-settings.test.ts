import { Buffer } from "node:buffer";
import { analyseSet, useStatementSchema } from "./session-settings";

const set = (sql: string) => analyseSet(Buffer.from(sql));

describe("analyseSet", () => {
  test.each([
    ["SET sql_mode = 'ANSI_QUOTES'", [{ name: "sql_mode", sql: "sql_mode = 'ANSI_QUOTES'" }]],
    ["set SESSION time_zone='+00:00', @@session.sql_select_limit = 10", [
      { name: "time_zone", sql: "time_zone = '+00:00'" },
      { name: "sql_select_limit", sql: "sql_select_limit = 10" },
    ]],
    ["SET @@sql_mode = CONCAT(@@sql_mode, ',STRICT_ALL_TABLES')", [{ name: "sql_mode", sql: "sql_mode = CONCAT(@@sql_mode, ',STRICT_ALL_TABLES')" }]],
    ["SET NAMES utf8mb4 COLLATE utf8mb4_unicode_ci", [{ name: "names", sql: "NAMES utf8mb4 COLLATE utf8mb4_unicode_ci" }]],
    ["SET CHARACTER SET latin1", [{ name: "names", sql: "CHARACTER SET latin1" }]],
    ["SET `time_zone` := 'UTC'", [{ name: "time_zone", sql: "time_zone = 'UTC'" }]],
  ])("%s is tracked", (sql, tracked) => {
    expect(set(sql)).toEqual({ tracked, pinReason: null, autocommit: false, globalOnly: false });
  });

  test.each([
    ["SET @x = 1", "user-variable"],
    ["SET sql_mode='', @x = 1", "user-variable"],
    ["SET my_unknown_var = 1", "session-variable"],
    ["SET TRANSACTION ISOLATION LEVEL SERIALIZABLE", "set-transaction"],
    ["SET STATEMENT max_statement_time=1 FOR SELECT 1", "set-statement"],
    ["SET sql_mode", "session-variable"],
  ])("%s pins (%s)", (sql, reason) => {
    const a = set(sql);
    expect(a.pinReason).toBe(reason);
    expect(a.tracked).toEqual([]);
  });

  test("autocommit is noted, not tracked; GLOBAL assignments have no session effect", () => {
    expect(set("SET autocommit=0")).toMatchObject({ autocommit: true, tracked: [], pinReason: null });
    expect(set("SET @@session.autocommit = 1, sql_mode=''")).toMatchObject({ autocommit: true, tracked: [{ name: "sql_mode" }] });
    expect(set("SET GLOBAL max_connections = 10")).toEqual({ tracked: [], pinReason: null, autocommit: false, globalOnly: true });
    expect(set("SET @@global.foo = 1")).toMatchObject({ globalOnly: true, pinReason: null });
  });
});

describe("useStatementSchema", () => {
  test.each([
    ["USE shop", "shop"],
    ["use `my``db`", "my`db"],
    ["USE shop;", "shop"],
    ["USE shop; SELECT 1", null],
    ["SELECT 1", null],
  ])("%s → %s", (sql, schema) => expect(useStatementSchema(Buffer.from(sql))).toBe(schema));
});

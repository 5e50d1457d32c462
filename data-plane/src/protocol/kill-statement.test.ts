import { parseKillStatement } from "./kill-statement";

describe("parseKillStatement", () => {
  it.each([
    ["KILL 5", { query: false, id: 5 }],
    ["kill query 7", { query: true, id: 7 }],
    ["KILL CONNECTION 4294967295", { query: false, id: 4294967295 }],
    ["  /* ctrl-c */ KILL  HARD QUERY\t12 ;  ", { query: true, id: 12 }],
    ["-- note\nKILL SOFT 3", { query: false, id: 3 }],
    ["# note\nKILL QUERY 9;", { query: true, id: 9 }],
  ])("recognises %j", (sql, want) => {
    expect(parseKillStatement(sql)).toEqual(want);
  });

  it.each([
    "SELECT 'KILL 5'",
    "KILL QUERY ID 5",
    "KILL USER app",
    "KILL CONNECTION_ID()",
    "KILL 5; SELECT 1",
    "KILL 99999999999",
    "KILL5",
    "KILL QUERY QUERY 5",
    "/*! KILL */ 5",
    "/* unterminated KILL 5",
    "KILLER 5",
    "",
  ])("leaves %j to the server", (sql) => {
    expect(parseKillStatement(sql)).toBeNull();
  });
});

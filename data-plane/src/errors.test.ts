import { AccessDeniedError, MalformedPacketError, MgwError, NoBackendAvailableError, SQL_ERRORS, toSqlError } from "./errors";

describe("errors", () => {
  it("maps every code to a server-range errno and a 5-character SQLSTATE", () => {
    for (const [code, m] of Object.entries(SQL_ERRORS)) {
      expect(code).toMatch(/^MGW_ERR_[A-Z]+_[A-Z_]+$/);
      expect(m.sqlState).toMatch(/^[0-9A-Z]{5}$/);
      expect(m.errno).toBeGreaterThan(1000);
    }
  });

  it("translates to the ERR packet fields clients expect", () => {
    expect(toSqlError(new AccessDeniedError("u", "10.0.0.1", false))).toEqual({
      errno: 1045,
      sqlState: "28000",
      message: "Access denied for user 'u'@'10.0.0.1' (using password: NO)",
    });
    expect(toSqlError(new MalformedPacketError("truncated"))).toEqual({ errno: 1043, sqlState: "08S01", message: "Bad handshake" });
    expect(toSqlError(new NoBackendAvailableError("none")).errno).toBe(1105);
    expect(toSqlError(new Error("x"))).toEqual({ errno: 1105, sqlState: "HY000", message: "mysqlgw: internal error" });
    expect(new MalformedPacketError("x")).toBeInstanceOf(MgwError);
    expect(new MalformedPacketError("x").name).toBe("MalformedPacketError");
  });
});

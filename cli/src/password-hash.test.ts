import { mysqlNativePasswordHash } from "./password-hash";

describe("mysqlNativePasswordHash", () => {
  it("matches MariaDB's PASSWORD()", () => {
    // SELECT PASSWORD('app-password'), PASSWORD('root') on MariaDB 10.11
    expect(mysqlNativePasswordHash("app-password")).toBe("*F142931D9296BB66D4600D47418DBC1475D27D29");
    expect(mysqlNativePasswordHash("root")).toBe("*81F5E21E35407D884A6CD4A731AEBFB6AF209E1B");
  });
});

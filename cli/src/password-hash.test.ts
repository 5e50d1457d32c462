import { cachingSha2PasswordHash, mysqlNativePasswordHash, sha256CryptHash } from "./password-hash";

describe("mysqlNativePasswordHash", () => {
  it("matches MariaDB's PASSWORD()", () => {
    // SELECT PASSWORD('app-password'), PASSWORD('root') on MariaDB 10.11
    expect(mysqlNativePasswordHash("app-password")).toBe("*F142931D9296BB66D4600D47418DBC1475D27D29");
    expect(mysqlNativePasswordHash("root")).toBe("*81F5E21E35407D884A6CD4A731AEBFB6AF209E1B");
  });
});

describe("cachingSha2PasswordHash", () => {
  it("uses SHA-256-crypt as glibc and Drepper's specification compute it", () => {
    // crypt("Hello world!", "$5$saltstring") from SHA-crypt.txt; the others from Python's crypt module
    expect(sha256CryptHash(Buffer.from("Hello world!"), Buffer.from("saltstring"), 5000)).toBe("5B8vYYiY.CVt1RlTTf8KbXBH3hsxY/GNooZaBBGWEc5");
    expect(sha256CryptHash(Buffer.from("a-much-longer-password-exceeding-thirty-two-bytes-for-mixing"), Buffer.from("0123456789abcdef"), 5000)).toBe(
      "gwsy5h1Z3qTkvTzU0JcHsX64Nf1WxxHSfvfLuXaKcj1",
    );
  });

  it("prints MySQL's mysql.user format with a fresh printable salt", () => {
    const h = cachingSha2PasswordHash("secret", Buffer.from("abcdefghij0123456789"));
    expect(h).toMatch(/^\$A\$005\$abcdefghij0123456789[./0-9A-Za-z]{43}$/);
    const r = cachingSha2PasswordHash("secret");
    expect(r).toHaveLength(70);
    expect(r.slice(7, 27)).toMatch(/^[!#%-[\]-~&]{20}$/);
    expect(r.slice(7, 27)).not.toMatch(/[$"'\\]/);
    expect(cachingSha2PasswordHash("secret")).not.toBe(r);
    expect(cachingSha2PasswordHash("")).toBe("");
  });
});

import { Buffer } from "node:buffer";
import { nativePasswordHash, parseNativePasswordHash, scrambleNativePassword, verifyNativePassword } from "./mysql-native-password";
import { scrambleCachingSha2Password } from "./caching-sha2-password";

const SECRET_HASH = "*14E65567ABDB5135D0CFD9A70B3032C179A49EE7"; // PASSWORD('secret') in MySQL/MariaDB
const nonce = Buffer.from("0123456789abcdefghij");

describe("mysql_native_password", () => {
  it("hashes like the server's PASSWORD()", () => {
    expect(nativePasswordHash("secret")).toBe(SECRET_HASH);
    expect(nativePasswordHash("")).toBe("");
  });

  it("verifies a real client's token from the stored hash only", () => {
    // token sent by mysql2 3.x and libmariadb 3.3 for password "secret" and this nonce
    const token = Buffer.from("f5cac3f3b3df2133feb57db682c71e6ed433a988", "hex");
    expect(scrambleNativePassword("secret", nonce).equals(token)).toBe(true);
    expect(verifyNativePassword(token, nonce, SECRET_HASH)).toBe(true);
    expect(verifyNativePassword(token, nonce, parseNativePasswordHash(SECRET_HASH)!)).toBe(true);
  });

  it("rejects a wrong password, a wrong nonce and malformed inputs", () => {
    expect(verifyNativePassword(scrambleNativePassword("Secret", nonce), nonce, SECRET_HASH)).toBe(false);
    const other = Buffer.from("jihgfedcba9876543210");
    expect(verifyNativePassword(scrambleNativePassword("secret", other), nonce, SECRET_HASH)).toBe(false);
    expect(verifyNativePassword(Buffer.alloc(19), nonce, SECRET_HASH)).toBe(false);
    expect(verifyNativePassword(Buffer.alloc(0), nonce, SECRET_HASH)).toBe(false);
    expect(verifyNativePassword(scrambleNativePassword("secret", nonce), nonce, "*XYZ")).toBe(false);
    expect(parseNativePasswordHash("14E65567ABDB5135D0CFD9A70B3032C179A49EE7")).toBeNull();
  });

  it("sends an empty token for an empty password", () => {
    expect(scrambleNativePassword("", nonce).length).toBe(0);
  });
});

describe("caching_sha2_password fast path", () => {
  it("matches the reference algorithm: SHA256(pw) XOR SHA256(SHA256(SHA256(pw)) + nonce)", () => {
    // same algorithm as mysql2 lib/auth_plugins/caching_sha2_password.js calculateToken("secret", nonce)
    const token = scrambleCachingSha2Password("secret", nonce);
    expect(token.length).toBe(32);
    expect(token.toString("hex")).toBe("7e4adda2f2d5ef09b4147518becb0cee2939376203650a8c2bb2815959364bd0");
    expect(scrambleCachingSha2Password("", nonce).length).toBe(0);
  });
});

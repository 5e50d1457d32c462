import { Buffer } from "node:buffer";
import { generateKeyPairSync } from "node:crypto";
import {
  cachingSha2PasswordHash,
  makeCachingSha2Salt,
  parseCachingSha2Verifier,
  sha256Crypt,
  sha256CryptHash,
  verifyCachingSha2Password,
  type CachingSha2Verifier,
} from "./sha256-crypt";
import { cachingSha2Stage2, clearPasswordFromPacket, decryptRsaPassword, verifyCachingSha2Scramble } from "./caching-sha2-server";
import { encryptPasswordWithPublicKey, scrambleCachingSha2Password } from "./caching-sha2-password";

describe("SHA-256-crypt", () => {
  it("matches Drepper's specification vector", () => {
    // SHA-crypt.txt: crypt("Hello world!", "$5$saltstring")
    expect(sha256Crypt("Hello world!", "saltstring")).toBe("$5$saltstring$5B8vYYiY.CVt1RlTTf8KbXBH3hsxY/GNooZaBBGWEc5");
  });

  it("matches glibc crypt(3) (computed with Python's crypt module)", () => {
    // python3 -c "import crypt; print(crypt.crypt(pw, '$5$' + salt))"
    expect(sha256Crypt("secret", "abcdefghij0123456")).toBe("$5$abcdefghij012345$suX2yUk6aU7W49feHFM3ML9FtjvDS3RvKZoGEbKlYq3");
    expect(sha256Crypt("", "emptypwsalt")).toBe("$5$emptypwsalt$nON0EHK7NCMIUIK1IhWsrJVMJoIHZMkpLNSrkfSEDr1");
    expect(sha256Crypt("a-much-longer-password-exceeding-thirty-two-bytes-for-mixing", "0123456789abcdef")).toBe(
      "$5$0123456789abcdef$gwsy5h1Z3qTkvTzU0JcHsX64Nf1WxxHSfvfLuXaKcj1",
    );
    expect(sha256Crypt("pässwörd", "X/.yz")).toBe("$5$X/.yz$f2BtIeoJWBzL/Gbo428jGip7nxMVrNRcCllML1GPvW4");
  });

  it("uses a 20-byte salt whole, as MySQL's my_crypt_genhash does", () => {
    const pw = Buffer.from("secret");
    const s20 = Buffer.from("abcdefghij0123456789");
    expect(sha256CryptHash(pw, s20, 5000)).not.toBe(sha256CryptHash(pw, s20.subarray(0, 16), 5000));
    expect(sha256CryptHash(pw, s20, 5000)).toHaveLength(43);
  });
});

describe("caching_sha2_password verifier ($A$005$…)", () => {
  const salt = Buffer.from("abcdefghij0123456789");

  it("builds MySQL's mysql.user format and verifies against it", () => {
    const stored = cachingSha2PasswordHash("secret", salt);
    expect(stored).toBe("$A$005$abcdefghij0123456789" + sha256CryptHash(Buffer.from("secret"), salt, 5000));
    expect(stored).toHaveLength(70);
    const v = parseCachingSha2Verifier(stored) as CachingSha2Verifier;
    expect(typeof v).toBe("object");
    expect(v.rounds).toBe(5000);
    expect(verifyCachingSha2Password(Buffer.from("secret"), v)).toBe(true);
    expect(verifyCachingSha2Password(Buffer.from("Secret"), v)).toBe(false);
    expect(verifyCachingSha2Password(Buffer.alloc(0), v)).toBe(false);
  });

  it("stores nothing for an empty password, as MySQL does", () => {
    expect(cachingSha2PasswordHash("")).toBe("");
  });

  it("makes salts without '$' or NUL, random each time", () => {
    const a = makeCachingSha2Salt();
    expect(a).toHaveLength(20);
    for (const c of a) expect(c >= 0x21 && c <= 0x7e && c !== 0x24).toBe(true);
    expect(a.equals(makeCachingSha2Salt())).toBe(false);
    for (const c of makeCachingSha2Salt(false)) expect(c >= 1 && c <= 0x7f && c !== 0x24).toBe(true);
    expect(cachingSha2PasswordHash("x")).not.toBe(cachingSha2PasswordHash("x"));
  });

  it("says what is wrong with a malformed verifier", () => {
    expect(parseCachingSha2Verifier("*14E65567ABDB5135D0CFD9A70B3032C179A49EE7")).toMatch(/must start with "\$A\$"/);
    expect(parseCachingSha2Verifier("$A$005$short")).toMatch(/must be 70 characters long/);
    const good = cachingSha2PasswordHash("secret", salt);
    expect(parseCachingSha2Verifier(good.slice(0, 3) + "0G5" + good.slice(6))).toMatch(/three hex digits/);
    expect(parseCachingSha2Verifier(good.slice(0, 3) + "000" + good.slice(6))).toMatch(/outside/);
    expect(parseCachingSha2Verifier(good.slice(0, 69) + "!")).toMatch(/base64/);
    expect(parseCachingSha2Verifier(good.slice(0, 10) + "$" + good.slice(11))).toMatch(/salt/);
    // MySQL's own "locked account" placeholder is well formed but matches no password
    const locked = parseCachingSha2Verifier("$A$005$THISISACOMBINATIONOFINVALIDSALTANDPASSWORDTHATMUSTNEVERBRBEUSED");
    expect(typeof locked).toBe("object");
    expect(verifyCachingSha2Password(Buffer.from(""), locked as CachingSha2Verifier)).toBe(false);
  });
});

describe("caching_sha2_password server side", () => {
  const nonce = Buffer.from("0123456789abcdefghij");

  it("verifies a client's fast-path token from SHA256(SHA256(pw)) only", () => {
    const stage2 = cachingSha2Stage2(Buffer.from("secret"));
    expect(verifyCachingSha2Scramble(scrambleCachingSha2Password("secret", nonce), nonce, stage2)).toBe(true);
    expect(verifyCachingSha2Scramble(scrambleCachingSha2Password("Secret", nonce), nonce, stage2)).toBe(false);
    expect(verifyCachingSha2Scramble(scrambleCachingSha2Password("secret", Buffer.from("jihgfedcba9876543210")), nonce, stage2)).toBe(false);
    expect(verifyCachingSha2Scramble(Buffer.alloc(31), nonce, stage2)).toBe(false);
  });

  it("decrypts the RSA full-path reply built as clients build it", () => {
    const { publicKey, privateKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
    const pem = publicKey.export({ type: "spki", format: "pem" });
    const enc = encryptPasswordWithPublicKey("secret", nonce, pem);
    expect(enc).toHaveLength(256);
    expect(decryptRsaPassword(enc, nonce, privateKey)?.toString()).toBe("secret");
    expect(decryptRsaPassword(Buffer.alloc(256, 7), nonce, privateKey)).toBeNull();
  });

  it("takes the clear password up to its NUL", () => {
    expect(clearPasswordFromPacket(Buffer.from("secret\0")).toString()).toBe("secret");
    expect(clearPasswordFromPacket(Buffer.from("secret")).toString()).toBe("secret");
  });
});

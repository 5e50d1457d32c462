import { createHash, randomFillSync } from "node:crypto";

/**
 * The mysql_native_password verifier of a password as stored in mysql.user and
 * in a policy's passwordHash: "*" + upper-case hex SHA1(SHA1(password)).
 * Same as MariaDB's SELECT PASSWORD('…').
 */
export function mysqlNativePasswordHash(password: string | Buffer): string {
  const stage1 = createHash("sha1").update(password).digest();
  return "*" + createHash("sha1").update(stage1).digest("hex").toUpperCase();
}

const B64 = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/**
 * SHA-256-crypt (Drepper's "$5$" scheme) of `password` with `salt` used whole
 * and `rounds` rounds: the 43-character hash part only. The data plane has
 * the same algorithm (data-plane/src/protocol/auth/sha256-crypt.ts); the CLI
 * keeps its own copy so that it depends on no data-plane code.
 */
export function sha256CryptHash(password: Buffer, salt: Buffer, rounds: number): string {
  const sha = () => createHash("sha256");
  const n = password.length;
  const b = sha().update(password).update(salt).update(password).digest();
  const ha = sha().update(password).update(salt);
  let i = n;
  for (; i > 32; i -= 32) ha.update(b);
  ha.update(b.subarray(0, i));
  for (let k = n; k > 0; k >>>= 1) ha.update((k & 1) !== 0 ? b : password);
  const a = ha.digest();
  const stretch = (d: Buffer, len: number): Buffer => {
    const out = Buffer.alloc(len);
    for (let j = 0; j < len; j += 32) d.copy(out, j, 0, Math.min(32, len - j));
    return out;
  };
  const hp = sha();
  for (let k = 0; k < n; k++) hp.update(password);
  const p = stretch(hp.digest(), n);
  const hs = sha();
  for (let k = 0; k < 16 + a[0]!; k++) hs.update(salt);
  const s = stretch(hs.digest(), salt.length);
  let c = a;
  for (let r = 0; r < rounds; r++) {
    const h = sha().update((r & 1) !== 0 ? p : c);
    if (r % 3 !== 0) h.update(s);
    if (r % 7 !== 0) h.update(p);
    c = h.update((r & 1) !== 0 ? c : p).digest();
  }
  let out = "";
  const order = [0, 10, 20, 21, 1, 11, 12, 22, 2, 3, 13, 23, 24, 4, 14, 15, 25, 5, 6, 16, 26, 27, 7, 17, 18, 28, 8, 9, 19, 29];
  for (let k = 0; k < order.length; k += 3) {
    let w = (c[order[k]!]! << 16) | (c[order[k + 1]!]! << 8) | c[order[k + 2]!]!;
    for (let q = 0; q < 4; q++, w >>>= 6) out += B64[w & 0x3f];
  }
  let w = (c[31]! << 8) | c[30]!;
  for (let q = 0; q < 3; q++, w >>>= 6) out += B64[w & 0x3f];
  return out;
}

/** 20 printable salt characters without '$', '"', '\\' or "'" (paste-safe in YAML and shells). */
function makeSalt(): Buffer {
  const b = randomFillSync(Buffer.alloc(20));
  for (let k = 0; k < 20; k++) {
    let v = 0x21 + (b[k]! % 94);
    while (v === 0x24 || v === 0x22 || v === 0x5c || v === 0x27) v += 1;
    b[k] = v;
  }
  return b;
}

/**
 * The caching_sha2_password verifier as MySQL 8 stores it in
 * mysql.user.authentication_string: "$A$005$" + 20-byte salt + SHA-256-crypt
 * hash (5000 rounds). "" for an empty password, as MySQL stores it.
 */
export function cachingSha2PasswordHash(password: string | Buffer, salt: Buffer = makeSalt()): string {
  const pw = typeof password === "string" ? Buffer.from(password, "utf8") : password;
  if (pw.length === 0) return "";
  return `$A$005$${salt.toString("latin1")}${sha256CryptHash(pw, salt, 5000)}`;
}

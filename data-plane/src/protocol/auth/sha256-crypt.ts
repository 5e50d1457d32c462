import { Buffer } from "node:buffer";
import { createHash, randomFillSync, timingSafeEqual } from "node:crypto";

/**
 * SHA-256-crypt (Ulrich Drepper, "Unix crypt using SHA-256 and SHA-512",
 * the "$5$" scheme of glibc's crypt(3)) and the caching_sha2_password
 * verifier MySQL 8 keeps in mysql.user.authentication_string:
 *
 *   "$A$" + 3 hex digits (rounds / 1000) + "$" + 20-byte salt + 43-char hash
 *
 * MySQL's my_crypt_genhash is Drepper's algorithm with the salt limit raised
 * from 16 to 20 bytes; with a salt of at most 16 bytes both agree with glibc.
 * The salt bytes are in 0x01..0x7f without '$' (MySQL's generate_user_salt).
 */

const B64 = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/** Rounds MySQL uses by default (caching_sha2_password_digest_rounds). */
export const CACHING_SHA2_DEFAULT_ROUNDS = 5000;
export const CACHING_SHA2_SALT_LENGTH = 20;
const HASH_LENGTH = 43;
const ROUNDS_MIN = 1000;
/** MySQL's limit: 0xFFF × 1000. */
const ROUNDS_MAX = 0xfff * 1000;

function sha256(...parts: Uint8Array[]): Buffer {
  const h = createHash("sha256");
  for (const p of parts) h.update(p);
  return h.digest();
}

/** `digest` repeated to `length` bytes (steps 16 and 20 of the spec). */
function stretch(digest: Buffer, length: number): Buffer {
  const out = Buffer.allocUnsafe(length);
  for (let i = 0; i < length; i += 32) digest.copy(out, i, 0, Math.min(32, length - i));
  return out;
}

/**
 * The 43-character SHA-256-crypt hash of `password` with `salt` and `rounds`
 * (no "$5$…$" prefix). `salt` is used whole: callers bound it (16 bytes for
 * glibc compatibility, 20 for MySQL).
 */
export function sha256CryptHash(password: Uint8Array, salt: Uint8Array, rounds: number): string {
  const pl = password.length;
  // steps 4-8: B = SHA256(pw + salt + pw)
  const b = sha256(password, salt, password);
  // steps 1-3, 9-12: A
  const ha = createHash("sha256").update(password).update(salt);
  let i = pl;
  for (; i > 32; i -= 32) ha.update(b);
  ha.update(b.subarray(0, i));
  for (let n = pl; n > 0; n >>>= 1) ha.update((n & 1) !== 0 ? b : password);
  const a = ha.digest();
  // steps 13-16: P
  const hdp = createHash("sha256");
  for (let k = 0; k < pl; k++) hdp.update(password);
  const p = stretch(hdp.digest(), pl);
  // steps 17-20: S
  const hds = createHash("sha256");
  for (let k = 0; k < 16 + a[0]; k++) hds.update(salt);
  const s = stretch(hds.digest(), salt.length);
  // step 21
  let c = a;
  for (let r = 0; r < rounds; r++) {
    const h = createHash("sha256");
    h.update((r & 1) !== 0 ? p : c);
    if (r % 3 !== 0) h.update(s);
    if (r % 7 !== 0) h.update(p);
    h.update((r & 1) !== 0 ? c : p);
    c = h.digest();
  }
  // step 22: the custom base64 in the spec's byte order
  let out = "";
  const put = (b2: number, b1: number, b0: number, n: number): void => {
    let w = (b2 << 16) | (b1 << 8) | b0;
    for (let k = 0; k < n; k++) {
      out += B64[w & 0x3f];
      w >>>= 6;
    }
  };
  put(c[0], c[10], c[20], 4);
  put(c[21], c[1], c[11], 4);
  put(c[12], c[22], c[2], 4);
  put(c[3], c[13], c[23], 4);
  put(c[24], c[4], c[14], 4);
  put(c[15], c[25], c[5], 4);
  put(c[6], c[16], c[26], 4);
  put(c[27], c[7], c[17], 4);
  put(c[18], c[28], c[8], 4);
  put(c[9], c[19], c[29], 4);
  put(0, c[31], c[30], 3);
  return out;
}

/** glibc's crypt(password, "$5$" + salt) for the default 5000 rounds (salt cut to 16 bytes). */
export function sha256Crypt(password: string | Uint8Array, salt: string): string {
  const pw = typeof password === "string" ? Buffer.from(password, "utf8") : password;
  const s = Buffer.from(salt, "latin1").subarray(0, 16);
  return `$5$${s.toString("latin1")}$${sha256CryptHash(pw, s, CACHING_SHA2_DEFAULT_ROUNDS)}`;
}

/** A parsed "$A$005$<salt><hash>" verifier. */
export interface CachingSha2Verifier {
  rounds: number;
  /** 20 bytes. */
  salt: Buffer;
  /** The 43 base64 characters, as ASCII bytes. */
  hash: Buffer;
}

const SALT_OK = (c: number): boolean => c >= 0x01 && c <= 0x7f && c !== 0x24;

/**
 * Parses a caching_sha2_password verifier in mysql.user format, or returns a
 * sentence saying what is wrong with it.
 */
export function parseCachingSha2Verifier(stored: string): CachingSha2Verifier | string {
  const raw = Buffer.from(stored, "latin1");
  const want = 7 + CACHING_SHA2_SALT_LENGTH + HASH_LENGTH;
  if (!stored.startsWith("$A$") || raw[6] !== 0x24) return 'must start with "$A$", three hex digits and "$" (as "$A$005$")';
  for (let i = 0; i < stored.length; i++) {
    const c = stored.charCodeAt(i);
    if (c < 0x01 || c > 0x7f) return "must contain only ASCII characters";
  }
  if (raw.length !== want) return `must be ${want} characters long ("$A$005$", a 20-character salt, a 43-character hash), got ${raw.length}`;
  const digits = stored.slice(3, 6);
  if (!/^[0-9A-Fa-f]{3}$/.test(digits)) return `round count "${digits}" is not three hex digits`;
  const rounds = parseInt(digits, 16) * 1000;
  if (rounds < ROUNDS_MIN || rounds > ROUNDS_MAX) return `round count ${rounds} is outside ${ROUNDS_MIN}..${ROUNDS_MAX}`;
  const salt = raw.subarray(7, 7 + CACHING_SHA2_SALT_LENGTH);
  for (const c of salt) if (!SALT_OK(c)) return "the salt may not contain '$' or NUL";
  const hash = raw.subarray(7 + CACHING_SHA2_SALT_LENGTH);
  for (const c of hash) if (B64.indexOf(String.fromCharCode(c)) < 0) return "the hash part must use the crypt base64 alphabet [./0-9A-Za-z]";
  return { rounds, salt: Buffer.from(salt), hash: Buffer.from(hash) };
}

/** 20 random salt bytes. `printable` keeps them in 0x21..0x7e (friendly to YAML and shells). */
export function makeCachingSha2Salt(printable = true): Buffer {
  const b = randomFillSync(Buffer.allocUnsafe(CACHING_SHA2_SALT_LENGTH));
  for (let i = 0; i < b.length; i++) {
    let v = printable ? 0x21 + (b[i] % 94) : b[i] & 0x7f;
    if (v === 0 || v === 0x24) v += 1;
    b[i] = v;
  }
  return b;
}

/** The mysql.user-format verifier of `password`; "" for an empty password (as MySQL stores it). */
export function cachingSha2PasswordHash(password: string | Uint8Array, salt: Buffer = makeCachingSha2Salt(), rounds = CACHING_SHA2_DEFAULT_ROUNDS): string {
  const pw = typeof password === "string" ? Buffer.from(password, "utf8") : password;
  if (pw.length === 0) return "";
  if (salt.length !== CACHING_SHA2_SALT_LENGTH) throw new RangeError("salt must be 20 bytes");
  const digits = (rounds / 1000).toString(16).toUpperCase().padStart(3, "0");
  return `$A$${digits}$${salt.toString("latin1")}${sha256CryptHash(pw, salt, rounds)}`;
}

/** Whether `password` matches the parsed verifier. Cost: `rounds` SHA-256 (≈ 16 ms for 5000 here, on the event loop). */
export function verifyCachingSha2Password(password: Uint8Array, v: CachingSha2Verifier): boolean {
  const h = Buffer.from(sha256CryptHash(password, v.salt, v.rounds), "latin1");
  return h.length === v.hash.length && timingSafeEqual(h, v.hash);
}

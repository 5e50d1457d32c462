import { Buffer } from "node:buffer";
import { createHash, timingSafeEqual } from "node:crypto";

/**
 * mysql_native_password.
 *   token  = SHA1(pw) XOR SHA1(nonce + SHA1(SHA1(pw)))
 *   stored = "*" + HEX(SHA1(SHA1(pw)))           (as in mysql.user)
 * The server side verifies from the stored hash only: SHA1(token XOR
 * SHA1(nonce + stored)) must equal stored.
 */

function sha1(...parts: Uint8Array[]): Buffer {
  const h = createHash("sha1");
  for (const p of parts) h.update(p);
  return h.digest();
}

/** The client's token for `password` and the server's 20-byte nonce; empty for an empty password. */
export function scrambleNativePassword(password: string | Buffer, nonce: Uint8Array): Buffer {
  const pw = typeof password === "string" ? Buffer.from(password, "utf8") : password;
  if (pw.length === 0) return Buffer.alloc(0);
  const stage1 = sha1(pw);
  const stage2 = sha1(stage1);
  const mix = sha1(nonce.subarray(0, 20), stage2);
  for (let i = 0; i < 20; i++) mix[i] ^= stage1[i];
  return mix;
}

/** "*" + 40 upper-case hex digits of SHA1(SHA1(password)); "" for an empty password. */
export function nativePasswordHash(password: string): string {
  if (password === "") return "";
  return "*" + sha1(sha1(Buffer.from(password, "utf8"))).toString("hex").toUpperCase();
}

const HASH_RE = /^\*[0-9A-Fa-f]{40}$/;

/** The 20 bytes of a "*HEX40" hash, or null if `hash` is not in that form. */
export function parseNativePasswordHash(hash: string): Buffer | null {
  if (!HASH_RE.test(hash)) return null;
  return Buffer.from(hash.slice(1), "hex");
}

/**
 * Checks a client token against the stored SHA1(SHA1(pw)) (20 bytes, or the
 * "*HEX40" string). Constant time in the token's content.
 */
export function verifyNativePassword(token: Uint8Array, nonce: Uint8Array, stored: Buffer | string): boolean {
  const stage2 = typeof stored === "string" ? parseNativePasswordHash(stored) : stored;
  if (stage2 === null || stage2.length !== 20) return false;
  if (token.length !== 20) return false;
  const mix = sha1(nonce.subarray(0, 20), stage2);
  for (let i = 0; i < 20; i++) mix[i] ^= token[i];
  return timingSafeEqual(sha1(mix), stage2);
}

import { Buffer } from "node:buffer";
import { constants, createHash, privateDecrypt, timingSafeEqual, type KeyObject } from "node:crypto";

/**
 * caching_sha2_password, server side (toward mysqlgw's own clients).
 *
 * The fast path needs SHA256(SHA256(pw)) ("stage 2"), which the stored
 * SHA-256-crypt verifier cannot give: like MySQL, the server learns it from a
 * successful full authentication and keeps it in memory only.
 *   token  = SHA256(pw) XOR SHA256(stage2 + nonce)
 *   check  = SHA256(token XOR SHA256(stage2 + nonce)) == stage2
 * Full path: the clear password (over TLS) or RSA-OAEP((pw + NUL) XOR nonce)
 * decrypted with the server's private key.
 */

function sha256(...parts: Uint8Array[]): Buffer {
  const h = createHash("sha256");
  for (const p of parts) h.update(p);
  return h.digest();
}

/** SHA256(SHA256(password)): what the fast-path cache keeps. */
export function cachingSha2Stage2(password: Uint8Array): Buffer {
  return sha256(sha256(password));
}

/** Checks a 32-byte fast-path token against a cached stage 2. Constant time in the token's content. */
export function verifyCachingSha2Scramble(token: Uint8Array, nonce: Uint8Array, stage2: Buffer): boolean {
  if (token.length !== 32 || stage2.length !== 32) return false;
  const mix = sha256(stage2, nonce.subarray(0, 20));
  for (let i = 0; i < 32; i++) mix[i] ^= token[i];
  return timingSafeEqual(sha256(mix), stage2);
}

/** The clear password from a full-path packet over TLS: the bytes up to the first NUL. */
export function clearPasswordFromPacket(payload: Uint8Array): Buffer {
  const end = payload.indexOf(0);
  return Buffer.from(payload.subarray(0, end < 0 ? payload.length : end));
}

/**
 * Decrypts the client's RSA reply (full path without TLS) into the password.
 * Returns null when the bytes do not decrypt (wrong key, garbage).
 */
export function decryptRsaPassword(encrypted: Uint8Array, nonce: Uint8Array, privateKey: KeyObject): Buffer | null {
  let plain: Buffer;
  try {
    plain = privateDecrypt({ key: privateKey, padding: constants.RSA_PKCS1_OAEP_PADDING }, encrypted);
  } catch {
    return null;
  }
  const n = nonce.subarray(0, 20);
  for (let i = 0; i < plain.length; i++) plain[i] ^= n[i % n.length];
  return clearPasswordFromPacket(plain);
}

import { Buffer } from "node:buffer";
import { constants, createHash, publicEncrypt } from "node:crypto";

/**
 * caching_sha2_password, client side (toward backends that ask for it).
 *   fast path: token = SHA256(pw) XOR SHA256(SHA256(SHA256(pw)) + nonce)
 *   full path without TLS: request the server's RSA public key (0x02), then
 *   send RSA-OAEP((pw + NUL) XOR nonce).
 */

function sha256(...parts: Uint8Array[]): Buffer {
  const h = createHash("sha256");
  for (const p of parts) h.update(p);
  return h.digest();
}

/** The fast-path token; empty for an empty password. */
export function scrambleCachingSha2Password(password: string | Buffer, nonce: Uint8Array): Buffer {
  const pw = typeof password === "string" ? Buffer.from(password, "utf8") : password;
  if (pw.length === 0) return Buffer.alloc(0);
  const stage1 = sha256(pw);
  const stage2 = sha256(stage1);
  const mix = sha256(stage2, nonce.subarray(0, 20));
  for (let i = 0; i < 32; i++) mix[i] ^= stage1[i];
  return mix;
}

/** The full-path payload: the password encrypted with the server's RSA public key (PEM). */
export function encryptPasswordWithPublicKey(password: string | Buffer, nonce: Uint8Array, publicKeyPem: string | Buffer): Buffer {
  const pw = typeof password === "string" ? Buffer.from(password, "utf8") : password;
  const plain = Buffer.alloc(pw.length + 1);
  pw.copy(plain);
  const n = nonce.subarray(0, 20);
  for (let i = 0; i < plain.length; i++) plain[i] ^= n[i % n.length];
  return publicEncrypt({ key: publicKeyPem, padding: constants.RSA_PKCS1_OAEP_PADDING }, plain);
}

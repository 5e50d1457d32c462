import * as crypto from "node:crypto";

/** The mysql_native_password verifier of `password`: "*" + hex(SHA1(SHA1(password))), as in mysql.user and policy files. */
export function nativePasswordHash(password: string): string {
  const sha1 = (b: Buffer): Buffer => crypto.createHash("sha1").update(b).digest();
  return "*" + sha1(sha1(Buffer.from(password, "utf8"))).toString("hex").toUpperCase();
}

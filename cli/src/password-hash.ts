import { createHash } from "node:crypto";

/**
 * The mysql_native_password verifier of a password as stored in mysql.user and
 * in a policy's passwordHash: "*" + upper-case hex SHA1(SHA1(password)).
 * Same as MariaDB's SELECT PASSWORD('…').
 */
export function mysqlNativePasswordHash(password: string | Buffer): string {
  const stage1 = createHash("sha1").update(password).digest();
  return "*" + createHash("sha1").update(stage1).digest("hex").toUpperCase();
}

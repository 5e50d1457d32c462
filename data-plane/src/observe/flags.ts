import * as path from "node:path";
import { parseNativePasswordHash, nativePasswordHash } from "../protocol/auth/mysql-native-password";
import { DEFAULT_DIGEST_TABLE_SIZE } from "./digest-table";

/** Deployment settings of the request log, the digest table and the admin port. */
export interface ObserveFlags {
  /** "" = off, "stdout", or an absolute file path (appended to by every worker). */
  requestLog: string;
  /** Share of statements logged (errors always), 0..1. */
  requestLogSample: number;
  /** Only statements at least this slow (plus errors); null = all. */
  requestLogSlowMs: number | null;
  /** Log raw SQL (with literals) besides the digest. */
  requestLogRawSql: boolean;
  /** Log session events (open, auth, close) too. */
  requestLogSessions: boolean;
  /** Digest table entries per worker; 0 = no digest table. */
  digestsMax: number;
  /** How often the supervisor publishes its top digests to etcd (ms); 0 = never. */
  digestsPublishIntervalMs: number;
  /** How many digests (by total time) are published. */
  digestsPublishTop: number;
  /** The admin SQL port; null = off. */
  adminListen: { host: string; port: number } | null;
  adminUser: string;
  /** "*HEX40" mysql_native_password hash of the admin password. */
  adminPasswordHash: string;
}

export const OBSERVE_OPTIONS = {
  "request-log": { type: "string" },
  "request-log-sample": { type: "string" },
  "request-log-slow": { type: "string" },
  "request-log-raw-sql": { type: "boolean" },
  "request-log-no-sessions": { type: "boolean" },
  "digests-max": { type: "string" },
  "digests-publish-interval": { type: "string" },
  "digests-publish-top": { type: "string" },
  "admin-listen": { type: "string" },
  "admin-user": { type: "string" },
  "admin-password-hash": { type: "string" },
} as const;

export const OBSERVE_USAGE = `  --request-log stdout|FILE     one JSON line per statement and session event [MYSQLGW_REQUEST_LOG]
                                (default: off; FILE is appended to by every worker)
  --request-log-sample RATIO    share of statements logged, errors always [MYSQLGW_REQUEST_LOG_SAMPLE] (default 1)
  --request-log-slow MS         log only statements at least this slow, and errors [MYSQLGW_REQUEST_LOG_SLOW]
  --request-log-raw-sql         also log each statement's raw text, literals included (default: digest only)
  --request-log-no-sessions     leave out session events (open, auth, close)
  --digests-max N               query digests kept per worker, least recently seen evicted [MYSQLGW_DIGESTS_MAX]
                                (default ${DEFAULT_DIGEST_TABLE_SIZE}; 0 = no digest table)
  --digests-publish-interval MS publish the top digests to etcd for GET /v1/digests [MYSQLGW_DIGESTS_PUBLISH_INTERVAL]
                                (default 5000; 0 = never)
  --digests-publish-top N       digests published, by total time [MYSQLGW_DIGESTS_PUBLISH_TOP] (default 100)
  --admin-listen HOST:PORT      admin SQL port (MySQL protocol, read-only virtual tables) [MYSQLGW_ADMIN_LISTEN]
                                (default: off; e.g. 127.0.0.1:6032)
  --admin-user USER             admin port user [MYSQLGW_ADMIN_USER] (default admin)
  --admin-password-hash HASH    its mysql_native_password hash, "*" + 40 hex [MYSQLGW_ADMIN_PASSWORD_HASH];
                                or the password itself in MYSQLGW_ADMIN_PASSWORD
`;

export interface ObserveFlagHelpers {
  pick(flag: string, envName: string): string | undefined;
  int(flag: string, envName: string, dflt: number, min: number): number;
  /** The raw parsed value of a (boolean) flag. */
  flag(name: string): string | boolean | undefined;
  error(message: string): Error;
  listen(raw: string | undefined, what: string): { host: string; port: number } | null;
}

export function parseObserveFlags(h: ObserveFlagHelpers): ObserveFlags {
  const rawLog = h.pick("request-log", "MYSQLGW_REQUEST_LOG");
  const requestLog = rawLog === undefined || rawLog === "" || rawLog === "off" ? "" : rawLog === "stdout" || rawLog === "-" ? "stdout" : path.resolve(rawLog);

  const rawSample = h.pick("request-log-sample", "MYSQLGW_REQUEST_LOG_SAMPLE");
  let requestLogSample = 1;
  if (rawSample !== undefined) {
    requestLogSample = Number(rawSample.trim());
    if (rawSample.trim() === "" || !Number.isFinite(requestLogSample) || requestLogSample < 0 || requestLogSample > 1) {
      throw h.error(`--request-log-sample (or MYSQLGW_REQUEST_LOG_SAMPLE) must be a ratio between 0 and 1 (e.g. 0.1), got "${rawSample}"`);
    }
  }
  const slowGiven = h.pick("request-log-slow", "MYSQLGW_REQUEST_LOG_SLOW") !== undefined;
  const requestLogSlowMs = slowGiven ? h.int("request-log-slow", "MYSQLGW_REQUEST_LOG_SLOW", 0, 0) : null;

  const adminListen = h.listen(h.pick("admin-listen", "MYSQLGW_ADMIN_LISTEN"), "--admin-listen (or MYSQLGW_ADMIN_LISTEN)");
  const adminUser = h.pick("admin-user", "MYSQLGW_ADMIN_USER") ?? "admin";
  let adminPasswordHash = h.pick("admin-password-hash", "MYSQLGW_ADMIN_PASSWORD_HASH") ?? "";
  if (adminPasswordHash === "") {
    const pw = h.pick("", "MYSQLGW_ADMIN_PASSWORD");
    if (pw !== undefined) adminPasswordHash = nativePasswordHash(pw);
  }
  if (adminPasswordHash !== "" && parseNativePasswordHash(adminPasswordHash) === null) {
    throw h.error(
      `--admin-password-hash (or MYSQLGW_ADMIN_PASSWORD_HASH) must be a mysql_native_password hash ("*" and 40 hex digits, as SELECT PASSWORD('…') gives); got "${adminPasswordHash.slice(0, 8)}…"`,
    );
  }
  if (adminListen !== null && adminPasswordHash === "") {
    throw h.error("--admin-listen needs the admin password: pass --admin-password-hash (or MYSQLGW_ADMIN_PASSWORD_HASH), or MYSQLGW_ADMIN_PASSWORD");
  }
  if (adminUser === "" || adminUser.length > 80) throw h.error(`--admin-user must be 1 to 80 characters, got "${adminUser}"`);

  return {
    requestLog,
    requestLogSample,
    requestLogSlowMs,
    requestLogRawSql: h.flag("request-log-raw-sql") === true,
    requestLogSessions: h.flag("request-log-no-sessions") !== true,
    digestsMax: h.int("digests-max", "MYSQLGW_DIGESTS_MAX", DEFAULT_DIGEST_TABLE_SIZE, 0),
    digestsPublishIntervalMs: h.int("digests-publish-interval", "MYSQLGW_DIGESTS_PUBLISH_INTERVAL", 5000, 0),
    digestsPublishTop: h.int("digests-publish-top", "MYSQLGW_DIGESTS_PUBLISH_TOP", 100, 1),
    adminListen,
    adminUser,
    adminPasswordHash,
  };
}

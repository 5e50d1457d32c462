import { createHash } from "node:crypto";
import { parse as parseYaml } from "yaml";
import { MgwError } from "../errors";
import { isRole, ROLES, type Role } from "./access";
import { ANONYMOUS, type Principal } from "./principal";

/**
 * The tokens file (--tokens-file), YAML or JSON. It holds the SHA-256 (hex) of
 * each bearer token, never the token itself; `mysqlgw token create` makes a
 * token and prints its line.
 *
 *   tokens:
 *     - { name: ci-deploy, role: admin,    sha256: 3f1c…64 hex }
 *     - { name: grafana,   role: viewer,   sha256: 9a0b… }
 *   certificates:            # with --tls-client-ca: client certificate subject CN → role
 *     - { cn: ops-laptop,   role: operator }
 */
export interface TokensConfig {
  readonly tokens: readonly { name: string; role: Role; sha256: string }[];
  readonly certificates: readonly { cn: string; role: Role }[];
}

const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$/;

/** Parses and checks a tokens file; every problem in one MGW_ERR_API_TOKENS_FILE message. */
export function parseTokensFile(text: string, file: string): TokensConfig {
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (err) {
    throw new MgwError("MGW_ERR_API_TOKENS_FILE", `${file} is neither YAML nor JSON (${(err as Error).message.split("\n")[0]}); see docs/security.md for its shape`);
  }
  const problems: string[] = [];
  const out = { tokens: [] as { name: string; role: Role; sha256: string }[], certificates: [] as { cn: string; role: Role }[] };
  if (doc === null || doc === undefined) doc = {};
  if (typeof doc !== "object" || Array.isArray(doc)) {
    throw new MgwError("MGW_ERR_API_TOKENS_FILE", `${file} must be a mapping with "tokens" (and optionally "certificates"); see docs/security.md`);
  }
  for (const k of Object.keys(doc as object)) {
    if (k !== "tokens" && k !== "certificates") problems.push(`unknown key "${k}" (only tokens and certificates)`);
  }
  const list = (key: string): Record<string, unknown>[] => {
    const v = (doc as Record<string, unknown>)[key];
    if (v === undefined || v === null) return [];
    if (!Array.isArray(v)) {
      problems.push(`${key} must be a list`);
      return [];
    }
    return v.map((e, i) => {
      if (typeof e !== "object" || e === null || Array.isArray(e)) {
        problems.push(`${key}[${i}] must be a mapping`);
        return {};
      }
      return e as Record<string, unknown>;
    });
  };
  const role = (where: string, v: unknown): Role => {
    if (typeof v === "string" && isRole(v)) return v;
    problems.push(`${where}.role ${JSON.stringify(v ?? null)} is not a role; use one of ${ROLES.join(", ")}`);
    return "viewer";
  };
  const names = new Set<string>();
  const hashes = new Set<string>();
  list("tokens").forEach((t, i) => {
    const where = `tokens[${i}]`;
    for (const k of Object.keys(t)) if (k !== "name" && k !== "role" && k !== "sha256") problems.push(`${where}: unknown key "${k}" (name, role, sha256)${k === "token" ? "; store the token's SHA-256, never the token (mysqlgw hash-token)" : ""}`);
    const name = typeof t.name === "string" ? t.name : "";
    if (!NAME_RE.test(name)) problems.push(`${where}.name ${JSON.stringify(t.name ?? null)} must be 1-64 letters, digits and . _ @ -`);
    else if (names.has(name)) problems.push(`${where}.name "${name}" is used twice; names must be unique (they are what the audit log records)`);
    names.add(name);
    const sha = typeof t.sha256 === "string" ? t.sha256.toLowerCase() : "";
    if (!/^[0-9a-f]{64}$/.test(sha)) problems.push(`${where}.sha256 must be 64 hex digits (the SHA-256 of the token: mysqlgw hash-token)`);
    else if (hashes.has(sha)) problems.push(`${where}.sha256 is the same as an earlier token's; each token must be different`);
    hashes.add(sha);
    out.tokens.push({ name, role: role(where, t.role), sha256: sha });
  });
  const cns = new Set<string>();
  list("certificates").forEach((c, i) => {
    const where = `certificates[${i}]`;
    for (const k of Object.keys(c)) if (k !== "cn" && k !== "role") problems.push(`${where}: unknown key "${k}" (cn, role)`);
    const cn = typeof c.cn === "string" ? c.cn : "";
    if (cn === "") problems.push(`${where}.cn is missing; give the client certificate's subject CN`);
    else if (cns.has(cn)) problems.push(`${where}.cn "${cn}" is listed twice`);
    cns.add(cn);
    out.certificates.push({ cn, role: role(where, c.role) });
  });
  if (problems.length > 0) {
    throw new MgwError("MGW_ERR_API_TOKENS_FILE", `${file} has ${problems.length} problem${problems.length === 1 ? "" : "s"}:\n- ${problems.join("\n- ")}`);
  }
  return out;
}

/** Hex SHA-256 of a token, as the tokens file stores it. */
export function tokenSha256(token: string): string {
  return createHash("sha256").update(token, "utf8").digest("hex");
}

export interface AuthenticatorOptions {
  /** From --tokens-file; null: no bearer tokens accepted. */
  tokens: TokensConfig | null;
  /** --tls-client-ca given: every call (but the open routes) needs a client certificate that chains to it. */
  clientCertificates: boolean;
  /** --mtls-role: the role of a verified certificate whose CN the tokens file does not list; null: such a certificate is refused. */
  mtlsRole: Role | null;
}

/** What authenticate() needs from a request. */
export interface Credentials {
  /** The Authorization header, if any. */
  authorization: string | undefined;
  /** The subject CN of the client certificate the TLS layer verified; null when none. */
  certificateCn: string | null;
  /** Why a certificate that was presented is not verified (the TLS layer's authorizationError), if one was. */
  certificateError?: string;
}

export interface Authenticator {
  /** False without --tokens-file and --tls-client-ca: every caller is ANONYMOUS (role admin). */
  readonly enabled: boolean;
  /** The caller, or MGW_ERR_API_UNAUTHENTICATED saying what to do. */
  authenticate(c: Credentials): Principal;
  /** Replaces the tokens (SIGHUP re-reads the file). */
  setTokens(tokens: TokensConfig): void;
}

const HOW_TO_AUTHENTICATE = "pass a token: mysqlgw --token TOKEN (or MYSQLGW_TOKEN), or the header \"Authorization: Bearer TOKEN\"; an admin creates one with mysqlgw token create";

export function createAuthenticator(options: AuthenticatorOptions): Authenticator {
  let byHash = new Map<string, Principal>();
  let byCn = new Map<string, Principal>();
  const setTokens = (t: TokensConfig | null): void => {
    byHash = new Map((t?.tokens ?? []).map((x) => [x.sha256, Object.freeze({ name: x.name, role: x.role, via: "token" as const })]));
    byCn = new Map((t?.certificates ?? []).map((x) => [x.cn, Object.freeze({ name: `CN=${x.cn}`, role: x.role, via: "certificate" as const })]));
  };
  setTokens(options.tokens);
  const enabled = options.tokens !== null || options.clientCertificates;
  return {
    enabled,
    setTokens,
    authenticate(c) {
      if (!enabled) return ANONYMOUS;
      if (options.clientCertificates && c.certificateCn === null) {
        throw new MgwError("MGW_ERR_API_UNAUTHENTICATED", `this API requires a client certificate signed by its --tls-client-ca${c.certificateError === undefined ? " and none was sent" : ` (the one sent was refused: ${c.certificateError})`}; pass mysqlgw --cert FILE --key FILE (curl --cert FILE --key FILE)`);
      }
      if (c.authorization !== undefined && c.authorization !== "") {
        const m = /^Bearer[ \t]+([^\s]+)[ \t]*$/i.exec(c.authorization);
        if (m === null) {
          throw new MgwError("MGW_ERR_API_UNAUTHENTICATED", `the Authorization header is not "Bearer TOKEN"; ${HOW_TO_AUTHENTICATE}`);
        }
        // The map is keyed by the token's SHA-256: no comparison of the token itself.
        const p = byHash.get(tokenSha256(m[1]!));
        if (p === undefined) {
          throw new MgwError("MGW_ERR_API_UNAUTHENTICATED", "the bearer token is not valid here (no token with its SHA-256 is in the control plane's --tokens-file); check the token, or ask an admin for one (mysqlgw token create)");
        }
        return p;
      }
      if (c.certificateCn !== null) {
        const p = byCn.get(c.certificateCn) ?? (options.mtlsRole === null ? undefined : { name: `CN=${c.certificateCn}`, role: options.mtlsRole, via: "certificate" as const });
        if (p !== undefined) return p;
        throw new MgwError("MGW_ERR_API_UNAUTHENTICATED", `the client certificate CN=${c.certificateCn} has no role; an admin lists it under "certificates" in the --tokens-file, or starts the control plane with --mtls-role`);
      }
      throw new MgwError("MGW_ERR_API_UNAUTHENTICATED", `this API requires authentication and the request carries no token; ${HOW_TO_AUTHENTICATE}`);
    },
  };
}

import { createHash, randomBytes } from "node:crypto";
import { CliError } from "../cli-error";

/** What a token looks like: recognisable in a leak scanner, 256 random bits. */
export const TOKEN_PREFIX = "mgw_";
const ROLES = ["viewer", "operator", "admin"];
const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$/;
/** Longest token read by hash-token. */
const MAX_TOKEN_BYTES = 4096;

export function tokenSha256(token: string): string {
  return createHash("sha256").update(token, "utf8").digest("hex");
}

export function newToken(): string {
  return TOKEN_PREFIX + randomBytes(32).toString("base64url");
}

/**
 * `mysqlgw token create --name NAME --role ROLE`: a new random token (printed
 * once, to give to the client) and the line for the control plane's
 * --tokens-file, which holds only its SHA-256.
 */
export function tokenCreateCommand(out: (line: string) => void, opts: { name: string; role: string }): void {
  if (!NAME_RE.test(opts.name)) throw new CliError("MGW_ERR_CLI_USAGE", `--name ${JSON.stringify(opts.name)} must be 1-64 letters, digits and . _ @ -`, "the name is what the audit log records", { exitCode: 2 });
  if (!ROLES.includes(opts.role)) throw new CliError("MGW_ERR_CLI_USAGE", `--role ${JSON.stringify(opts.role)} is not a role`, `use one of ${ROLES.join(", ")} (docs/security.md)`, { exitCode: 2 });
  const token = newToken();
  out(`# the token (shown once; give it to the client as MYSQLGW_TOKEN or --token, or "Authorization: Bearer …"):`);
  out(token);
  out(`# add under "tokens:" in the control plane's --tokens-file, then send it SIGHUP (or restart it):`);
  out(tokenLine(opts.name, opts.role, tokenSha256(token)));
}

/** `mysqlgw hash-token --name NAME --role ROLE`: the tokens-file line of a token read from stdin. */
export async function hashTokenCommand(out: (line: string) => void, opts: { name: string; role: string }, input: NodeJS.ReadableStream = process.stdin): Promise<void> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of input as AsyncIterable<Buffer | string>) {
    const b = typeof chunk === "string" ? Buffer.from(chunk) : chunk;
    size += b.length;
    if (size > MAX_TOKEN_BYTES) throw new CliError("MGW_ERR_CLI_USAGE", `the token is over ${MAX_TOKEN_BYTES} bytes`, "pipe only the token into hash-token", { exitCode: 2 });
    chunks.push(b);
  }
  const token = Buffer.concat(chunks).toString("utf8").trim();
  if (token === "" || /\s/.test(token)) throw new CliError("MGW_ERR_CLI_USAGE", "the token on stdin is empty or contains spaces", "pipe the token alone, e.g. printenv MYSQLGW_TOKEN | mysqlgw hash-token --name ci --role admin", { exitCode: 2 });
  if (!NAME_RE.test(opts.name)) throw new CliError("MGW_ERR_CLI_USAGE", `--name ${JSON.stringify(opts.name)} must be 1-64 letters, digits and . _ @ -`, "", { exitCode: 2 });
  if (!ROLES.includes(opts.role)) throw new CliError("MGW_ERR_CLI_USAGE", `--role ${JSON.stringify(opts.role)} is not a role`, `use one of ${ROLES.join(", ")}`, { exitCode: 2 });
  out(tokenLine(opts.name, opts.role, tokenSha256(token)));
}

function tokenLine(name: string, role: string, sha256: string): string {
  return `  - { name: ${name}, role: ${role}, sha256: ${sha256} }`;
}

import { CliError } from "../cli-error";
import { cachingSha2PasswordHash, mysqlNativePasswordHash } from "../password-hash";

/** Longest password read, in bytes. */
export const MAX_PASSWORD_BYTES = 4096;

/**
 * `mysqlgw hash-password`: reads a password from stdin (all of it, minus one
 * trailing newline) or, on a terminal, prompts without echo; prints both
 * verifiers as lines of a User document: passwordHash (mysql_native_password)
 * and cachingSha2PasswordHash (caching_sha2_password, MySQL 8's format).
 */
export async function hashPasswordCommand(out: (line: string) => void, input: NodeJS.ReadStream = process.stdin): Promise<void> {
  const password = input.isTTY ? await promptHidden(input, "Password: ") : await readAll(input);
  if (password === "") {
    throw new CliError("MGW_ERR_CLI_USAGE", "the password is empty", "type a password, or leave passwordHash out of the policy for a user without one");
  }
  out("# mysql_native_password verifier: the User's passwordHash");
  out(`passwordHash: ${JSON.stringify(mysqlNativePasswordHash(password))}`);
  out("# caching_sha2_password verifier (mysql.user format, random salt): the User's cachingSha2PasswordHash");
  out(`cachingSha2PasswordHash: ${JSON.stringify(cachingSha2PasswordHash(password))}`);
}

async function readAll(input: NodeJS.ReadableStream): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of input as AsyncIterable<Buffer | string>) {
    const b = typeof chunk === "string" ? Buffer.from(chunk) : chunk;
    size += b.length;
    if (size > MAX_PASSWORD_BYTES) throw new CliError("MGW_ERR_CLI_USAGE", `the password is over ${MAX_PASSWORD_BYTES} bytes`, "pipe only the password into hash-password");
    chunks.push(b);
  }
  return Buffer.concat(chunks).toString("utf8").replace(/\r?\n$/, "");
}

function promptHidden(input: NodeJS.ReadStream, prompt: string): Promise<string> {
  return new Promise((resolve, reject) => {
    process.stderr.write(prompt);
    let value = "";
    input.setRawMode(true);
    input.resume();
    input.setEncoding("utf8");
    const done = (err?: Error): void => {
      input.setRawMode(false);
      input.pause();
      input.removeListener("data", onData);
      process.stderr.write("\n");
      if (err) reject(err);
      else resolve(value);
    };
    const onData = (s: string): void => {
      for (const ch of s) {
        if (ch === "\r" || ch === "\n" || ch === "\u0004") return done();
        if (ch === "\u0003") return done(new CliError("MGW_ERR_CLI_USAGE", "interrupted", "", { exitCode: 130 }));
        if (ch === "\u007f" || ch === "\b") value = value.slice(0, -1);
        else if (value.length < MAX_PASSWORD_BYTES) value += ch;
      }
    };
    input.on("data", onData);
  });
}

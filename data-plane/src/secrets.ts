import { readFile } from "node:fs/promises";
import { SecretResolutionError } from "./errors";

/**
 * Resolves a BackendCredentials.secret_ref where the data plane runs:
 *   ""            no password
 *   "env:NAME"    the environment variable NAME (must be set; may be empty)
 *   "file:/path"  the file's contents, one trailing "\n" or "\r\n" removed
 * Resolved on every new backend connection, so a rotated file or variable is
 * picked up without a restart. Throws SecretResolutionError naming the ref.
 */
export async function resolveSecretRef(ref: string, env: NodeJS.ProcessEnv = process.env): Promise<string> {
  if (ref === "") return "";
  if (ref.startsWith("env:")) {
    const name = ref.slice(4);
    if (name === "") throw new SecretResolutionError(ref, `secret ref '${ref}' names no environment variable`);
    const value = env[name];
    if (value === undefined) {
      throw new SecretResolutionError(ref, `secret ref '${ref}': environment variable ${name} is not set in the data plane's environment`);
    }
    return value;
  }
  if (ref.startsWith("file:")) {
    const path = ref.slice(5);
    if (path === "") throw new SecretResolutionError(ref, `secret ref '${ref}' names no file`);
    let text: string;
    try {
      text = await readFile(path, "utf8");
    } catch (cause) {
      const code = (cause as NodeJS.ErrnoException).code ?? "error";
      throw new SecretResolutionError(ref, `secret ref '${ref}': cannot read ${path} (${code})`, { cause });
    }
    return text.replace(/\r?\n$/, "");
  }
  throw new SecretResolutionError(ref, `secret ref '${ref}' has an unknown scheme; use "env:NAME" or "file:/path"`);
}

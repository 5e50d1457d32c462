import { readFile } from "node:fs/promises";
import { MgwError } from "../errors";

/**
 * Resolves a HealthCheck.credentials.secret_ref in the control plane's
 * environment, as the data plane does for its own refs:
 *   ""            no password
 *   "env:NAME"    the environment variable NAME (must be set; may be empty)
 *   "file:/path"  the file's contents, one trailing "\n" or "\r\n" removed
 * Resolved before every probe, so a rotated secret is picked up without a
 * restart. Throws MgwError MGW_ERR_MONITOR_SECRET naming the ref.
 */
export async function resolveMonitorSecret(ref: string, env: NodeJS.ProcessEnv = process.env): Promise<string> {
  if (ref === "") return "";
  if (ref.startsWith("env:")) {
    const name = ref.slice(4);
    if (name === "") throw new MgwError("MGW_ERR_MONITOR_SECRET", `secret ref '${ref}' names no environment variable`);
    const value = env[name];
    if (value === undefined) {
      throw new MgwError("MGW_ERR_MONITOR_SECRET", `secret ref '${ref}': environment variable ${name} is not set in the control plane's environment`);
    }
    return value;
  }
  if (ref.startsWith("file:")) {
    const path = ref.slice(5);
    if (path === "") throw new MgwError("MGW_ERR_MONITOR_SECRET", `secret ref '${ref}' names no file`);
    try {
      return (await readFile(path, "utf8")).replace(/\r?\n$/, "");
    } catch (cause) {
      const code = (cause as NodeJS.ErrnoException).code ?? "error";
      throw new MgwError("MGW_ERR_MONITOR_SECRET", `secret ref '${ref}': cannot read ${path} on the control plane host (${code})`, { cause });
    }
  }
  throw new MgwError("MGW_ERR_MONITOR_SECRET", `secret ref '${ref}' has an unknown scheme; use "env:NAME" or "file:/path"`);
}

import { Code, ConnectError } from "@connectrpc/connect";
import { PolicyViolationsSchema } from "@mysqlgw/proto";
import type { AdminClient } from "../client";
import { CliError, fromApiError } from "../cli-error";
import { locateViolations, type LoadedPolicy } from "../policy-files";

/** What every command gets: where to write, and the API. */
export interface CommandContext {
  readonly api: string;
  readonly timeoutMs: number;
  readonly client: AdminClient;
  stdout(line: string): void;
  stderr(line: string): void;
}

/**
 * Runs an API call and converts its failure into a CliError; violations of a
 * loaded policy are mapped back to file, document and field.
 */
export async function callApi<T>(ctx: CommandContext, call: () => Promise<T>, loaded?: LoadedPolicy): Promise<T> {
  try {
    return await call();
  } catch (err) {
    if (loaded !== undefined && err instanceof ConnectError && err.code === Code.InvalidArgument) {
      const violations = err.findDetails(PolicyViolationsSchema).flatMap((d) => d.violations);
      if (violations.length > 0) {
        const lines = locateViolations(violations, loaded.sources);
        throw new CliError("MGW_ERR_CLI_POLICY_INVALID", lines[0]!, "", { lines, cause: err });
      }
    }
    throw fromApiError(err, ctx.api);
  }
}

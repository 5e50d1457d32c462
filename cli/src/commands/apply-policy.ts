import * as os from "node:os";
import { loadPolicy } from "../policy-files";
import { countLabel, formatChanges } from "../output";
import { callApi, type CommandContext } from "./context";

export interface ApplyOptions {
  file: string;
  dryRun?: boolean;
}

/** Who applied, recorded with the version: "cli:alice@laptop". */
export function appliedBy(): string {
  let user = process.env.USER ?? "unknown";
  try {
    user = os.userInfo().username;
  } catch {
    // no passwd entry (containers): keep $USER
  }
  return `cli:${user}@${os.hostname()}`;
}

/** `mysqlgw apply -f FILE|DIR [--dry-run]` */
export async function applyPolicyCommand(ctx: CommandContext, opts: ApplyOptions): Promise<void> {
  const loaded = loadPolicy(opts.file);
  const dryRun = opts.dryRun === true;
  const res = await callApi(ctx, () => ctx.client.applyPolicy(
    { policy: loaded.policy, dryRun, appliedBy: appliedBy() },
    { timeoutMs: ctx.timeoutMs },
  ), loaded);
  for (const line of formatChanges(res.changes)) ctx.stdout(line);
  if (res.changes.length === 0) {
    ctx.stdout(`no changes: version ${res.version} is current`);
  } else if (dryRun) {
    ctx.stdout(`dry run: would apply ${countLabel(res.changes.length)} as version ${res.version + 1n}; nothing was written`);
  } else {
    ctx.stdout(`applied: version ${res.version} (${countLabel(res.changes.length)})`);
  }
}

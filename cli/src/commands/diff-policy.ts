import { loadPolicy } from "../policy-files";
import { countLabel, formatChanges } from "../output";
import { callApi, type CommandContext } from "./context";

/** `mysqlgw diff -f FILE|DIR`: what apply would change; writes nothing. */
export async function diffPolicyCommand(ctx: CommandContext, opts: { file: string }): Promise<void> {
  const loaded = loadPolicy(opts.file);
  const res = await callApi(ctx, () => ctx.client.diffPolicy({ policy: loaded.policy }, { timeoutMs: ctx.timeoutMs }), loaded);
  for (const line of formatChanges(res.changes)) ctx.stdout(line);
  ctx.stdout(res.changes.length === 0
    ? `no changes against version ${res.baseVersion}`
    : `${countLabel(res.changes.length)} against version ${res.baseVersion}`);
}

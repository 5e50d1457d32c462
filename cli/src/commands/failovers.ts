import { timestampMs } from "@bufbuild/protobuf/wkt";
import { FailoverRecord_Outcome, type FailoverRecord } from "@mysqlgw/proto";
import { formatTable } from "../output";
import { callApi, type CommandContext } from "./context";

/**
 * `mysqlgw failovers [--cluster C]`: the automatic failovers the monitor
 * recorded, newest first, with each step's time after detection.
 */
export async function failoversCommand(ctx: CommandContext, opts: { cluster?: string }): Promise<void> {
  const res = await callApi(ctx, () => ctx.client.listFailovers({ cluster: opts.cluster ?? "" }, { timeoutMs: ctx.timeoutMs }));
  if (res.failovers.length === 0) {
    ctx.stdout(`no failover recorded${opts.cluster !== undefined ? ` for cluster ${opts.cluster}` : ""}`);
    return;
  }
  const rows = res.failovers.map((f) => {
    const at = (t: FailoverRecord["detectedAt"]): string => (t === undefined || f.detectedAt === undefined ? "-" : `+${timestampMs(t) - timestampMs(f.detectedAt)}ms`);
    return [
      f.cluster,
      f.epoch.toString(),
      f.detectedAt === undefined ? "-" : new Date(timestampMs(f.detectedAt)).toISOString(),
      f.oldPrimary,
      f.newPrimary === "" ? "-" : f.newPrimary,
      f.outcome === FailoverRecord_Outcome.PROMOTED ? "PROMOTED" : f.outcome === FailoverRecord_Outcome.ABORTED ? "ABORTED" : "UNKNOWN",
      at(f.confirmedAt),
      at(f.chosenAt),
      at(f.caughtUpAt),
      at(f.promotedAt),
      at(f.repointedAt),
      at(f.rolesPublishedAt),
    ];
  });
  for (const line of formatTable(["CLUSTER", "EPOCH", "DETECTED", "OLD", "NEW", "OUTCOME", "CONFIRMED", "CHOSEN", "CAUGHT UP", "PROMOTED", "RE-POINTED", "PUBLISHED"], rows)) ctx.stdout(line);
  for (const f of res.failovers) {
    if (f.error !== "") ctx.stderr(`${f.cluster} epoch ${f.epoch}: ${f.error}`);
  }
}

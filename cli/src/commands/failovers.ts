import { timestampMs } from "@bufbuild/protobuf/wkt";
import { FailoverRecord_Kind, FailoverRecord_Outcome, type FailoverRecord } from "@mysqlgw/proto";
import { formatTable } from "../output";
import { callApi, type CommandContext } from "./context";

/**
 * `mysqlgw failovers [--cluster C]`: the automatic failovers the monitor
 * recorded and the planned switchovers, newest first, with each step's time
 * after detection (a switchover: after it was asked for).
 */
export async function failoversCommand(ctx: CommandContext, opts: { cluster?: string }): Promise<void> {
  const res = await callApi(ctx, () => ctx.client.listFailovers({ cluster: opts.cluster ?? "" }, { timeoutMs: ctx.timeoutMs }));
  if (res.failovers.length === 0) {
    ctx.stdout(`no failover recorded${opts.cluster !== undefined ? ` for cluster ${opts.cluster}` : ""}`);
    return;
  }
  // planned switchovers (mysqlgw switchover) add their kind and hold/drain/release steps; DETECTED is when one was asked for
  const switchovers = res.failovers.some((f) => f.kind === FailoverRecord_Kind.SWITCHOVER);
  const rows = res.failovers.map((f) => {
    const at = (t: FailoverRecord["detectedAt"]): string => (t === undefined || f.detectedAt === undefined ? "-" : `+${timestampMs(t) - timestampMs(f.detectedAt)}ms`);
    const row = [
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
    if (switchovers) {
      row.splice(6, 0, f.kind === FailoverRecord_Kind.SWITCHOVER ? "SWITCHOVER" : "FAILOVER");
      row.splice(9, 0, at(f.holdStartedAt), at(f.drainedAt));
      row.push(at(f.releasedAt));
    }
    return row;
  });
  const head = ["CLUSTER", "EPOCH", "DETECTED", "OLD", "NEW", "OUTCOME", "CONFIRMED", "CHOSEN", "CAUGHT UP", "PROMOTED", "RE-POINTED", "PUBLISHED"];
  if (switchovers) {
    head.splice(6, 0, "KIND");
    head.splice(9, 0, "HOLD", "DRAINED");
    head.push("RELEASED");
  }
  for (const line of formatTable(head, rows)) ctx.stdout(line);
  for (const f of res.failovers) {
    if (f.error !== "") ctx.stderr(`${f.cluster} epoch ${f.epoch}: ${f.error}`);
  }
}

import { timestampMs, type Timestamp } from "@bufbuild/protobuf/wkt";
import { createClient, type Client } from "@connectrpc/connect";
import { apiTransport } from "../client";
import { FailoverRecord_Outcome, ReplicationService, type FailoverRecord, type SwitchoverResponse } from "@mysqlgw/proto";
import type { Command } from "commander";
import { CliError } from "../cli-error";
import { appliedBy } from "./apply-policy";
import { callApi, type CommandContext } from "./context";

type ReplicationClient = Client<typeof ReplicationService>;

/** Header the control plane records as requested_by (control-plane/src/replication/requested-by.ts). */
const REQUESTED_BY_HEADER = "x-mysqlgw-requested-by";

export interface SwitchoverOptions {
  cluster: string;
  to?: string;
  holdTimeout: string;
  drainTimeout: string;
  dryRun: boolean;
}

/** "5s", "500ms", "1.5s", "2m" → ms; null for anything else. */
export function parseDuration(text: string): number | null {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m)$/.exec(text.trim());
  if (m === null) return null;
  const n = Number(m[1]);
  return Math.round(m[2] === "ms" ? n : m[2] === "s" ? n * 1000 : n * 60_000);
}

/** The timeline of a switchover record, one line per step, with its time since the request. */
export function switchoverTimeline(r: FailoverRecord): string[] {
  const t0 = r.detectedAt === undefined ? NaN : timestampMs(r.detectedAt);
  const out: string[] = [];
  let prev = t0;
  const step = (t: Timestamp | undefined, what: string): void => {
    if (t === undefined) return;
    const ms = timestampMs(t);
    out.push(`  +${String(ms - t0).padStart(5)} ms  (${String(ms - prev).padStart(5)} ms)  ${what}`);
    prev = ms;
  };
  step(r.chosenAt, `planned: ${r.oldPrimary} → ${r.newPrimary}`);
  step(r.holdStartedAt, "data planes hold new writes and transactions");
  step(r.drainedAt, `open transactions finished${r.transactionsEnded > 0 ? ` (${r.transactionsEnded} ended at the drain window)` : ""}; ${r.oldPrimary} set read_only`);
  step(r.caughtUpAt, `${r.newPrimary} applied ${r.oldPrimary}'s last transaction`);
  step(r.promotedAt, `${r.newPrimary} promoted`);
  step(r.repointedAt, `re-pointed to ${r.newPrimary}: ${r.repointed.join(", ") || "none"}`);
  step(r.rolesPublishedAt, "new roles published by the monitor");
  step(r.releasedAt, r.outcome === FailoverRecord_Outcome.PROMOTED ? `held statements released to ${r.newPrimary}` : `aborted; held statements released to ${r.oldPrimary}`);
  if (r.holdStartedAt !== undefined && r.releasedAt !== undefined) out.push(`  writes held for ${timestampMs(r.releasedAt) - timestampMs(r.holdStartedAt)} ms`);
  return out;
}

/**
 * `mysqlgw switchover --cluster C [--to B] [--hold-timeout 5s]
 * [--drain-timeout 3s] [--dry-run]`: a planned switchover
 * (ReplicationService.Switchover; docs/monitor.md). Prints the plan, then the
 * timeline; exits 1 when it was aborted.
 */
export async function switchoverCommand(ctx: CommandContext, client: ReplicationClient, o: SwitchoverOptions): Promise<void> {
  const hold = parseDuration(o.holdTimeout);
  const drain = parseDuration(o.drainTimeout);
  if (hold === null) throw new CliError("MGW_ERR_CLI_USAGE", `--hold-timeout ${JSON.stringify(o.holdTimeout)} is not a duration`, "pass e.g. --hold-timeout 5s", { exitCode: 2 });
  if (drain === null) throw new CliError("MGW_ERR_CLI_USAGE", `--drain-timeout ${JSON.stringify(o.drainTimeout)} is not a duration`, "pass e.g. --drain-timeout 3s", { exitCode: 2 });
  const d = (ms: number) => ({ seconds: BigInt(Math.floor(ms / 1000)), nanos: (ms % 1000) * 1_000_000 });
  ctx.stdout(`${o.dryRun ? "planning" : "running"} a switchover of ${o.cluster}${o.to !== undefined ? ` to ${o.to}` : ""} (writes held at most ${hold} ms, open transactions ended after ${drain} ms)…`);
  // the switchover itself may take the whole hold window, plus the checks before it
  const timeoutMs = Math.max(ctx.timeoutMs, hold + 30_000);
  const res: SwitchoverResponse = await callApi(ctx, () =>
    client.switchover(
      { cluster: o.cluster, to: o.to ?? "", holdTimeout: d(hold), drainTimeout: d(drain), dryRun: o.dryRun },
      { timeoutMs, headers: { [REQUESTED_BY_HEADER]: appliedBy() } },
    ),
  );
  const r = res.record;
  const op = res.operation;
  if (r !== undefined) {
    ctx.stdout(`${r.cluster}: ${r.oldPrimary} → ${r.newPrimary} (epoch ${r.epoch})`);
    for (const c of r.candidates) ctx.stdout(`  candidate ${c}`);
  }
  if (o.dryRun) {
    ctx.stdout("would run (nothing was changed):");
    for (const s of op?.steps ?? []) ctx.stdout(`  ${s}`);
    return;
  }
  if (r === undefined) return;
  for (const line of switchoverTimeline(r)) ctx.stdout(line);
  if (r.outcome !== FailoverRecord_Outcome.PROMOTED) {
    throw new CliError("MGW_ERR_CLI_API", `switchover of ${r.cluster} aborted: ${r.error}`, `${r.oldPrimary} is the primary again; mysqlgw failovers --cluster ${r.cluster} shows the record`, { exitCode: 1 });
  }
  if (r.error !== "") ctx.stderr(`warning: ${r.error}`);
  ctx.stdout(`switchover of ${r.cluster} done: ${r.newPrimary} is the primary`);
}

/** Registers `mysqlgw switchover`. `client` makes the ReplicationService client (tests inject one). */
export function registerSwitchoverCommand(
  program: Command,
  context: () => CommandContext,
  client: (api: string) => ReplicationClient = (api) => createClient(ReplicationService, apiTransport(api)), // with --token and the TLS files
): void {
  program
    .command("switchover")
    .description("planned switchover: hold writes on the data planes, let open transactions finish, promote a replica, re-point the others and the old primary, release the writes (docs/monitor.md)")
    .requiredOption("--cluster <name>", "the cluster")
    .option("--to <backend>", "the replica to promote (default: the most advanced healthy one)")
    .option("--hold-timeout <duration>", "longest writes are held (e.g. 5s)", "5s")
    .option("--drain-timeout <duration>", "longest open transactions may run before they are ended (e.g. 3s)", "3s")
    .option("--dry-run", "check and print what would run; change nothing", false)
    .action(async (o: SwitchoverOptions) => {
      const c = context();
      await switchoverCommand(c, client(c.api), o);
    });
}

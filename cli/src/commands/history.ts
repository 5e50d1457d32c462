import { Code, ConnectError } from "@connectrpc/connect";
import { PolicyViolationsSchema, ResourceChange_Action, type ResourceChange, type VersionSummary } from "@mysqlgw/proto";
import type { HistoryClient } from "../client";
import { CliError } from "../cli-error";
import { countLabel, formatChanges, formatTable } from "../output";
import { appliedBy } from "./apply-policy";
import { callApi, type CommandContext } from "./context";

export interface HistoryOptions {
  limit?: string;
  before?: string;
  json?: boolean;
}

const SIGN: Record<ResourceChange_Action, string> = {
  [ResourceChange_Action.UNSPECIFIED]: "?",
  [ResourceChange_Action.ADD]: "+",
  [ResourceChange_Action.UPDATE]: "~",
  [ResourceChange_Action.DELETE]: "-",
};

/** Changes shown per version before "+N more". */
const SHOWN_CHANGES = 4;

/** "+User bi, ~Listener demo-rw (port)". */
export function summarizeChanges(changes: readonly ResourceChange[]): string {
  if (changes.length === 0) return "(no change)";
  const parts = changes.slice(0, SHOWN_CHANGES).map((c) => {
    const fields = c.action === ResourceChange_Action.UPDATE && c.fields.length > 0 ? ` (${c.fields.slice(0, 3).join(", ")}${c.fields.length > 3 ? ", …" : ""})` : "";
    return `${SIGN[c.action]}${c.kind} ${c.name}${fields}`;
  });
  if (changes.length > SHOWN_CHANGES) parts.push(`+${changes.length - SHOWN_CHANGES} more`);
  return parts.join(", ");
}

/** "2026-11-22 12:01:02Z" (UTC), or "-". */
function when(v: VersionSummary): string {
  const t = v.appliedAt;
  if (t === undefined) return "-";
  return new Date(Number(t.seconds) * 1000 + Math.floor(t.nanos / 1e6)).toISOString().replace("T", " ").replace(/\.\d{3}Z$/, "Z");
}

function positive(flag: string, value: string | undefined, max: bigint): bigint {
  if (value === undefined) return 0n;
  if (!/^[0-9]{1,20}$/.test(value) || BigInt(value) < 1n || BigInt(value) > max) {
    throw new CliError("MGW_ERR_CLI_USAGE", `${flag} ${JSON.stringify(value)} is not a number from 1 to ${max}`, `pass e.g. ${flag} 10`, { exitCode: 2 });
  }
  return BigInt(value);
}

/** `mysqlgw history [--limit N] [--before V] [--json]`: applied config versions, newest first. */
export async function historyCommand(ctx: CommandContext, client: HistoryClient, opts: HistoryOptions): Promise<void> {
  const limit = positive("--limit", opts.limit, 1000n);
  const before = positive("--before", opts.before, 0xffffffffffffffffn);
  const res = await callApi(ctx, () => client.listVersions({ limit: Number(limit), before }, { timeoutMs: ctx.timeoutMs }));
  if (opts.json === true) {
    ctx.stdout(
      JSON.stringify(
        {
          currentVersion: String(res.currentVersion),
          nextBefore: String(res.nextBefore),
          versions: res.versions.map((v) => ({
            version: String(v.version),
            appliedAt: when(v),
            appliedBy: v.appliedBy,
            digest: v.digest,
            changes: v.changes.map((c) => ({ action: SIGN[c.action], kind: c.kind, name: c.name, fields: c.fields })),
          })),
        },
        null,
        2,
      ),
    );
    return;
  }
  if (res.currentVersion === 0n) {
    ctx.stdout("no config version yet: nothing was applied (mysqlgw apply -f POLICY)");
    return;
  }
  const rows = res.versions.map((v) => [`${v.version}${v.version === res.currentVersion ? " *" : ""}`, when(v), v.appliedBy === "" ? "-" : v.appliedBy, summarizeChanges(v.changes)]);
  for (const line of formatTable(["VERSION", "APPLIED (UTC)", "BY", "CHANGES"], rows)) ctx.stdout(line);
  ctx.stdout(`* current version; roll back with: mysqlgw rollback VERSION (see its changes first with --dry-run)`);
  if (res.nextBefore !== 0n) ctx.stdout(`older versions: mysqlgw history --before ${res.nextBefore}`);
}

export interface RollbackOptions {
  dryRun?: boolean;
}

/** `mysqlgw rollback VERSION [--dry-run]`: applies an earlier version's policy as a new version. */
export async function rollbackCommand(ctx: CommandContext, client: HistoryClient, versionArg: string, opts: RollbackOptions): Promise<void> {
  if (!/^[0-9]{1,20}$/.test(versionArg) || BigInt(versionArg) < 1n) {
    throw new CliError("MGW_ERR_CLI_USAGE", `VERSION ${JSON.stringify(versionArg)} is not a version number`, "pass a version that mysqlgw history lists, e.g. mysqlgw rollback 3", { exitCode: 2 });
  }
  const version = BigInt(versionArg);
  const dryRun = opts.dryRun === true;
  const res = await callApi(ctx, async () => {
    try {
      return await client.rollbackPolicy({ version, dryRun, appliedBy: appliedBy() }, { timeoutMs: ctx.timeoutMs });
    } catch (err) {
      throw violationsError(err, version) ?? err;
    }
  });
  for (const line of formatChanges(res.changes)) ctx.stdout(line);
  if (res.changes.length === 0) {
    ctx.stdout(`no changes: version ${res.version} is current and equals version ${version}`);
  } else if (dryRun) {
    ctx.stdout(`dry run: rolling back to version ${version} would apply ${countLabel(res.changes.length)} as version ${res.version + 1n}; nothing was written`);
  } else {
    ctx.stdout(`rolled back: version ${res.version} restores version ${version} (${countLabel(res.changes.length)})`);
  }
}

/** An old policy that today's validation refuses: every problem on its own line. */
function violationsError(err: unknown, version: bigint): CliError | null {
  if (!(err instanceof ConnectError) || err.code !== Code.InvalidArgument) return null;
  const violations = err.findDetails(PolicyViolationsSchema).flatMap((d) => d.violations);
  if (violations.length === 0) return null;
  const lines = [
    `version ${version} cannot be restored as it is: today's validation refuses it (${violations.length} problem${violations.length === 1 ? "" : "s"}); nothing was written — fix these in a policy file and apply it instead:`,
    ...violations.map((v) => `  ${v.kind === "" ? "policy" : `${v.kind} ${v.name}`}${v.field === "" ? "" : ` field ${v.field}`}: ${v.description}`),
  ];
  return new CliError("MGW_ERR_CLI_POLICY_INVALID", lines[0]!, "", { lines, cause: err });
}

import { toJson } from "@bufbuild/protobuf";
import { timestampMs } from "@bufbuild/protobuf/wkt";
import { ListAuditRecordsResponseSchema } from "@mysqlgw/proto";
import type { AuditClient } from "../client";
import { CliError } from "../cli-error";
import { formatTable } from "../output";
import { callApi, type CommandContext } from "./context";

export interface AuditOptions {
  limit?: string;
  before?: string;
  json?: boolean;
}

/**
 * `mysqlgw audit [--limit N] [--before S] [--json]`: the API's audit log,
 * newest first — who called which mutating method (or was refused), from
 * where, the outcome, and what it changed.
 */
export async function auditCommand(ctx: CommandContext, client: AuditClient, opts: AuditOptions): Promise<void> {
  const limit = opts.limit === undefined ? 0 : Number(opts.limit);
  if (!Number.isInteger(limit) || limit < 0 || limit > 1000) throw new CliError("MGW_ERR_CLI_USAGE", `--limit ${JSON.stringify(opts.limit)} is not a number from 1 to 1000`, "", { exitCode: 2 });
  if (opts.before !== undefined && !/^[0-9]{1,20}$/.test(opts.before)) throw new CliError("MGW_ERR_CLI_USAGE", `--before ${JSON.stringify(opts.before)} is not a sequence number`, "pass the number printed after \"older records:\"", { exitCode: 2 });
  const res = await callApi(ctx, () => client.listAuditRecords({ limit, before: BigInt(opts.before ?? "0") }, { timeoutMs: ctx.timeoutMs }));
  if (opts.json === true) {
    ctx.stdout(JSON.stringify(toJson(ListAuditRecordsResponseSchema, res, { alwaysEmitImplicit: true }), null, 2));
    return;
  }
  if (res.records.length === 0) {
    ctx.stdout("no audit record");
    return;
  }
  const rows = res.records.map((r) => [
    r.sequence.toString(),
    r.at === undefined ? "-" : new Date(timestampMs(r.at)).toISOString().replace(/\.\d{3}Z$/, "Z"),
    r.principal === "" ? "-" : r.principal,
    r.role === "" ? "-" : r.role,
    r.peer === "" ? "-" : r.peer,
    r.method,
    r.status,
    r.resultingVersion === 0n ? "-" : r.resultingVersion.toString(),
  ]);
  const [header, ...lines] = formatTable(["SEQ", "AT", "PRINCIPAL", "ROLE", "PEER", "METHOD", "STATUS", "VERSION"], rows);
  ctx.stdout(header!);
  res.records.forEach((r, i) => {
    ctx.stdout(lines[i]!);
    for (const c of r.changes) ctx.stdout(`      ${c}`);
    if (r.error !== "") ctx.stdout(`      error: ${r.error.split("\n")[0]}`);
  });
  if (res.nextBefore !== 0n) ctx.stdout(`older records: mysqlgw audit --before ${res.nextBefore}`);
}

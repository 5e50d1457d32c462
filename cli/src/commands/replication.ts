import { timestampMs } from "@bufbuild/protobuf/wkt";
import { ConnectError, createClient, type Client } from "@connectrpc/connect";
import { OperationRecordSchema, ReplicationService, type OperationRecord } from "@mysqlgw/proto";
import type { Command } from "commander";
import { CliError, fromApiError } from "../cli-error";
import { apiTransport } from "../client";
import { formatTable } from "../output";
import { appliedBy } from "./apply-policy";
import type { CommandContext } from "./context";

export type ReplicationClient = Client<typeof ReplicationService>;

/** Header the control plane records as the operation's requested_by (control-plane/src/replication/requested-by.ts). */
export const REQUESTED_BY_HEADER = "x-mysqlgw-requested-by";

/** ReplicationService client, on the same port, protocol, token and TLS files as the AdminService (apiTransport). */
export function createReplicationClient(baseUrl: string): ReplicationClient {
  return createClient(ReplicationService, apiTransport(baseUrl));
}

interface TargetOptions {
  cluster: string;
  backend: string;
  dryRun: boolean;
}

type Verb = "attach" | "detach" | "pause" | "resume" | "rejoin" | "unregister";

/**
 * `mysqlgw backend register|unregister|pause|resume|rejoin`, `mysqlgw replica
 * attach|detach` and `mysqlgw operations` (docs/monitor.md, "Replication
 * operations"). `context` builds the API context when a command runs;
 * `client` makes the ReplicationService client (tests inject one).
 */
export function registerReplicationCommands(program: Command, context: () => CommandContext, client: (api: string) => ReplicationClient = createReplicationClient): void {
  const run = async (fn: (c: CommandContext, r: ReplicationClient) => Promise<void>): Promise<void> => {
    const c = context();
    await fn(c, client(c.api));
  };
  const target = (cmd: Command): Command =>
    cmd
      .requiredOption("--cluster <name>", "the cluster")
      .requiredOption("--backend <name>", "the backend, by its name in the policy")
      .option("--dry-run", "check and show the statements it would run; change nothing", false);

  const backend = program.command("backend").description("replication operations on one backend: register, unregister, pause, resume, rejoin (docs/monitor.md)");
  backend
    .command("register")
    .description("add a server to a cluster's policy as a new config version, after checking that it answers with a server_id of its own")
    .requiredOption("--cluster <name>", "the cluster")
    .requiredOption("--name <name>", "the new backend's name, unique in the cluster")
    .requiredOption("--address <host:port>", "the server's address")
    .option("--weight <n>", "relative share of new connections (default 1)")
    .option("--dry-run", "check and show what it would do; change nothing", false)
    .action((opts: { cluster: string; name: string; address: string; weight?: string; dryRun: boolean }) =>
      run(async (c, r) => {
        let weight = 0;
        if (opts.weight !== undefined) {
          weight = Number(opts.weight);
          if (!Number.isInteger(weight) || weight < 1 || weight > 1_000_000) throw new CliError("MGW_ERR_CLI_USAGE", `--weight ${JSON.stringify(opts.weight)} is not a whole number from 1 to 1000000`, "pass e.g. --weight 2", { exitCode: 2 });
        }
        const { operation: rec } = await call(c, () => r.registerBackend({ cluster: opts.cluster, backend: { name: opts.name, address: opts.address, weight }, dryRun: opts.dryRun }, callOptions(c)));
        report(c, rec, opts.dryRun);
      }),
    );
  target(backend.command("unregister").description("remove a backend from a cluster's policy as a new config version (refused for the primary, the last backend, or one others replicate from)"))
    .action((opts: TargetOptions) => run((c, r) => verb(c, r, "unregister", opts)));
  target(backend.command("pause").description("the primary: SET GLOBAL read_only=1; a replica: STOP SLAVE"))
    .action((opts: TargetOptions) => run((c, r) => verb(c, r, "pause", opts)));
  target(backend.command("resume").description("undo pause: the primary writable again, a replica's threads started (refused for a fenced former primary)"))
    .action((opts: TargetOptions) => run((c, r) => verb(c, r, "resume", opts)));
  target(backend.command("rejoin").description("make a former primary (or any backend that replicates from nobody) a read_only replica of the current primary, refused if it has transactions the primary lacks; unfences it"))
    .action((opts: TargetOptions) => run((c, r) => verb(c, r, "rejoin", opts)));

  const replica = program.command("replica").description("attach a backend to the primary as a replica, or detach it");
  target(replica.command("attach").description("read_only, CHANGE MASTER TO the primary (MASTER_USE_GTID=slave_pos), START SLAVE; refused for the primary or a backend with transactions the primary lacks"))
    .action((opts: TargetOptions) => run((c, r) => verb(c, r, "attach", opts)));
  target(replica.command("detach").description("STOP SLAVE; RESET SLAVE ALL — the backend stays read_only"))
    .action((opts: TargetOptions) => run((c, r) => verb(c, r, "detach", opts)));

  program
    .command("operations")
    .description("replication operations recorded (register, attach, pause, rejoin, …), newest first, with who asked and the outcome")
    .option("--cluster <name>", "only this cluster's operations")
    .option("--limit <n>", "how many (default 50, at most 1000)")
    .option("--steps", "also print each operation's steps", false)
    .option("--json", "print JSON", false)
    .action((opts: { cluster?: string; limit?: string; steps: boolean; json: boolean }) =>
      run(async (c, r) => {
        const limit = opts.limit === undefined ? 0 : Number(opts.limit);
        if (!Number.isInteger(limit) || limit < 0 || limit > 1000) throw new CliError("MGW_ERR_CLI_USAGE", `--limit ${JSON.stringify(opts.limit)} is not a number from 1 to 1000`, "pass e.g. --limit 20", { exitCode: 2 });
        const res = await call(c, () => r.listOperations({ cluster: opts.cluster ?? "", limit }, { timeoutMs: c.timeoutMs }));
        for (const line of formatOperations(res.operations, opts)) c.stdout(line);
      }),
    );
}

async function verb(c: CommandContext, r: ReplicationClient, v: Verb, o: TargetOptions): Promise<void> {
  const req = { cluster: o.cluster, backend: o.backend, dryRun: o.dryRun };
  const opts = callOptions(c);
  const { operation: rec } = await call(c, async (): Promise<{ operation?: OperationRecord }> => {
    switch (v) {
      case "attach":
        return r.attachReplica(req, opts);
      case "detach":
        return r.detachReplica(req, opts);
      case "pause":
        return r.pauseBackend(req, opts);
      case "resume":
        return r.resumeBackend(req, opts);
      case "rejoin":
        return r.rejoinBackend(req, opts);
      default:
        return r.unregisterBackend(req, opts);
    }
  });
  report(c, rec, o.dryRun);
}

function callOptions(c: CommandContext): { timeoutMs: number; headers: Record<string, string> } {
  return { timeoutMs: c.timeoutMs, headers: { [REQUESTED_BY_HEADER]: appliedBy() } };
}

/** The call; on failure the steps that ran (from the error's OperationRecord) are printed, then the CliError thrown. */
async function call<T>(c: CommandContext, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof ConnectError) {
      const rec = err.findDetails(OperationRecordSchema)[0];
      if (rec !== undefined) for (const line of stepLines(rec)) c.stdout(line);
      // every problem of an invalid policy (register), one line each
      const lines = err.rawMessage.split("\n").filter((l) => l !== "");
      if (lines.length > 1) throw new CliError("MGW_ERR_CLI_API", lines[0]!, "", { lines, cause: err });
    }
    throw fromApiError(err, c.api);
  }
}

function stepLines(rec: OperationRecord): string[] {
  return rec.steps.map((s) => `  ${s}`);
}

/** Each step, then one line: what was done (or would be). */
function report(c: CommandContext, rec: OperationRecord | undefined, dryRun: boolean): void {
  if (rec === undefined) throw new CliError("MGW_ERR_CLI_API", "the control plane answered without the operation", "check that --api points at a mysqlgw control plane of a matching version");
  for (const line of stepLines(rec)) c.stdout(line);
  const what = `${rec.operation} ${rec.cluster}/${rec.backend}`;
  if (dryRun) c.stdout(`dry run: ${what} would run the steps above; nothing was changed`);
  else c.stdout(`done: ${what}${rec.sequence === 0n ? " (not recorded: etcd did not take the record; see the control plane's log)" : ` (operation ${rec.sequence})`}${rec.configVersion !== 0n ? `, config version ${rec.configVersion}` : ""}`);
}

/** `mysqlgw operations`: a table, newest first, then (with --steps) each one's steps; JSON with --json. */
export function formatOperations(ops: readonly OperationRecord[], opts: { cluster?: string; steps?: boolean; json?: boolean }): string[] {
  if (opts.json === true) return [JSON.stringify(ops.map((o) => ({ ...o, $typeName: undefined, sequence: String(o.sequence), configVersion: String(o.configVersion), startedAt: iso(o.startedAt), finishedAt: iso(o.finishedAt) })), null, 2)];
  if (ops.length === 0) return [`no operation recorded${opts.cluster !== undefined ? ` for cluster ${opts.cluster}` : ""}`];
  const rows = ops.map((o) => [
    String(o.sequence),
    iso(o.startedAt),
    o.cluster,
    o.backend,
    o.operation,
    o.ok ? "ok" : "failed",
    o.requestedBy,
    o.ok ? "" : o.error.split("\n")[0]!,
  ]);
  const out = formatTable(["SEQ", "STARTED", "CLUSTER", "BACKEND", "OPERATION", "RESULT", "REQUESTED BY", "ERROR"], rows);
  if (opts.steps === true) {
    for (const o of ops) {
      out.push("", `${o.sequence} ${o.operation} ${o.cluster}/${o.backend}:`);
      out.push(...(o.steps.length === 0 ? ["  (no steps)"] : stepLines(o)));
    }
  }
  return out;
}

function iso(t: OperationRecord["startedAt"]): string {
  return t === undefined ? "-" : new Date(timestampMs(t)).toISOString();
}

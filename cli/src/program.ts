import { Command, CommanderError, Option } from "commander";
import { createAdminClient, createAuditClient, createHistoryClient, DEFAULT_TIMEOUT_MS, setApiAuth, type AdminClient, type AuditClient, type HistoryClient } from "./client";
import { auditCommand, type AuditOptions } from "./commands/audit";
import { hashTokenCommand, tokenCreateCommand } from "./commands/token";
import { CliError } from "./cli-error";
import { applyPolicyCommand } from "./commands/apply-policy";
import { backendsCommand } from "./commands/backends";
import { failoversCommand } from "./commands/failovers";
import type { CommandContext } from "./commands/context";
import { registerDemo } from "./commands/demo";
import { diffPolicyCommand } from "./commands/diff-policy";
import { explainCommand } from "./commands/explain";
import { getResourcesCommand } from "./commands/get-resources";
import { hashPasswordCommand } from "./commands/hash-password";
import { historyCommand, rollbackCommand } from "./commands/history";
import { registerReplicationCommands } from "./commands/replication";
import { statusCommand } from "./commands/status";
import { registerSwitchoverCommand } from "./commands/switchover";
import { topCommand, type TopOptions } from "./commands/top";
import { DEFAULT_JAEGER, traceCommand, type TraceOptions } from "./commands/trace";

export const DEFAULT_API = "http://127.0.0.1:7070";

export interface ProgramIo {
  stdout(line: string): void;
  stderr(line: string): void;
  /** Tests inject an in-memory client; otherwise one is made for --api. */
  createClient?(api: string): AdminClient;
  /** Likewise for the HistoryService (history, rollback). */
  createHistoryClient?(api: string): HistoryClient;
  /** Likewise for the AuditService (audit). */
  createAuditClient?(api: string): AuditClient;
}

/**
 * Builds the `mysqlgw` command tree. Actions throw CliError; run() turns that
 * into stderr lines and an exit code.
 */
export function buildProgram(io: ProgramIo): Command {
  const program = new Command("mysqlgw")
    .description("mysqlgw: a MySQL gateway run as configuration-as-code")
    .addOption(new Option("--api <url>", "control plane URL").env("MYSQLGW_API").default(DEFAULT_API))
    .addOption(new Option("--timeout <ms>", "bound on each API call, in milliseconds").default(String(DEFAULT_TIMEOUT_MS)))
    .addOption(new Option("--token <token>", "bearer token for the API (prefer the env variable: arguments show in ps)").env("MYSQLGW_TOKEN"))
    .addOption(new Option("--ca-file <path>", "CA certificate (PEM) that signed the control plane's, for https:// --api").env("MYSQLGW_CA_FILE"))
    .addOption(new Option("--cert <path>", "client certificate (PEM) for a control plane with --tls-client-ca").env("MYSQLGW_CERT"))
    .addOption(new Option("--key <path>", "the client certificate's private key (PEM)").env("MYSQLGW_KEY"))
    .showSuggestionAfterError(true)
    .exitOverride()
    .configureOutput({
      writeOut: (s) => io.stdout(s.replace(/\n$/, "")),
      writeErr: (s) => io.stderr(s.replace(/\n$/, "")),
      outputError: (s, write) => write(`${s.trimEnd()} — see mysqlgw --help\n`),
    });

  const ctx = (): CommandContext => {
    const g = program.opts<{ api: string; timeout: string; token?: string; caFile?: string; cert?: string; key?: string }>();
    if ((g.cert === undefined) !== (g.key === undefined)) throw new CliError("MGW_ERR_CLI_USAGE", "--cert and --key go together", "pass both (the client certificate and its key)", { exitCode: 2 });
    setApiAuth({ token: g.token, caFile: g.caFile, certFile: g.cert, keyFile: g.key });
    let api: URL;
    try {
      api = new URL(g.api);
      if (api.protocol !== "http:" && api.protocol !== "https:") throw new Error("not http");
    } catch {
      throw new CliError("MGW_ERR_CLI_USAGE", `--api ${JSON.stringify(g.api)} is not an http:// URL`, `pass e.g. --api ${DEFAULT_API}`, { exitCode: 2 });
    }
    const timeoutMs = Number(g.timeout);
    if (!Number.isInteger(timeoutMs) || timeoutMs <= 0) {
      throw new CliError("MGW_ERR_CLI_USAGE", `--timeout ${JSON.stringify(g.timeout)} is not a number of milliseconds`, "pass e.g. --timeout 30000", { exitCode: 2 });
    }
    const base = g.api.replace(/\/+$/, "");
    return {
      api: base,
      timeoutMs,
      client: (io.createClient ?? createAdminClient)(base),
      stdout: io.stdout,
      stderr: io.stderr,
    };
  };

  program
    .command("apply")
    .description("validate a policy, show the diff and write it as a new config version")
    .requiredOption("-f, --file <path>", "policy file, or a directory of *.yaml/*.yml files")
    .option("--dry-run", "show the diff and write nothing", false)
    .action((opts: { file: string; dryRun: boolean }) => applyPolicyCommand(ctx(), opts));

  program
    .command("diff")
    .description("show what applying a policy would change")
    .requiredOption("-f, --file <path>", "policy file, or a directory of *.yaml/*.yml files")
    .action((opts: { file: string }) => diffPolicyCommand(ctx(), opts));

  program
    .command("get")
    .description("print the current resources as policy YAML (KIND: clusters, listeners, users, gateway, rules, quotas or policy)")
    .argument("<kind>", "clusters | listeners | users | gateway | rules | policy (singular accepted)")
    .argument("[name]", "only the resource with this name")
    .option("-o, --output <format>", "yaml or json", "yaml")
    .option("--version <n>", "a past config version instead of the current one")
    .action((kind: string, name: string | undefined, opts: { output: string; version?: string }) => getResourcesCommand(ctx(), kind, name, opts));

  program
    .command("history")
    .description("applied config versions, newest first: when, by whom, and what each changed")
    .option("--limit <n>", "how many versions (default 20, at most 1000)")
    .option("--before <version>", "only versions older than this one (the next page)")
    .option("--json", "print JSON", false)
    .action((opts: { limit?: string; before?: string; json: boolean }) => {
      const c = ctx();
      return historyCommand(c, (io.createHistoryClient ?? createHistoryClient)(c.api), opts);
    });

  program
    .command("rollback")
    .description("make an earlier config version's policy current again, written as a new version (validated and diffed like apply)")
    .argument("<version>", "the version to restore (mysqlgw history lists them)")
    .option("--dry-run", "show the diff and write nothing", false)
    .action((version: string, opts: { dryRun: boolean }) => {
      const c = ctx();
      return rollbackCommand(c, (io.createHistoryClient ?? createHistoryClient)(c.api), version, opts);
    });

  program
    .command("audit")
    .description("the API's audit log, newest first: mutating calls and refused ones — who, from where, the outcome, what changed, the resulting version")
    .option("--limit <n>", "how many records (default 50, at most 1000)")
    .option("--before <seq>", "only records older than this sequence (the next page)")
    .option("--json", "print JSON", false)
    .action((opts: AuditOptions) => {
      const c = ctx();
      return auditCommand(c, (io.createAuditClient ?? createAuditClient)(c.api), opts);
    });

  const token = program.command("token").description("API bearer tokens (docs/security.md)");
  token
    .command("create")
    .description("print a new random token and the line to add to the control plane's --tokens-file (which holds only its SHA-256)")
    .requiredOption("--name <name>", "the token's name: what the audit log records")
    .requiredOption("--role <role>", "viewer, operator or admin")
    .action((opts: { name: string; role: string }) => tokenCreateCommand(io.stdout, opts));

  program
    .command("hash-token")
    .description("print the --tokens-file line of a token read from stdin (its SHA-256, never the token)")
    .requiredOption("--name <name>", "the token's name: what the audit log records")
    .requiredOption("--role <role>", "viewer, operator or admin")
    .action((opts: { name: string; role: string }) => hashTokenCommand(io.stdout, opts));

  program
    .command("status")
    .description("data planes and the config version each serves")
    .action(() => statusCommand(ctx()));

  program
    .command("backends")
    .description("backend state (UP/DOWN) and role (PRIMARY/REPLICA) as the monitor sees them, and the monitor's leader")
    .option("--cluster <name>", "only this cluster's backends")
    .action((opts: { cluster?: string }) => backendsCommand(ctx(), opts));

  program
    .command("failovers")
    .description("automatic failovers the monitor recorded, newest first, with their timeline (docs/monitor.md)")
    .option("--cluster <name>", "only this cluster's failovers")
    .action((opts: { cluster?: string }) => failoversCommand(ctx(), opts));

  program
    .command("top")
    .description("the query digests of every data plane by total time (GET /v1/digests), refreshed live; docs/observability.md")
    .option("--interval <seconds>", "between refreshes", "2")
    .option("--limit <n>", "digests shown", "20")
    .option("--user <name>", "only this mysqlgw user's digests")
    .option("--schema <name>", "only digests run in this schema")
    .option("--count <n>", "refreshes before exiting (0: until Ctrl-C)", "0")
    .option("--once", "print one screen and exit", false)
    .option("--json", "print the API's JSON instead of a table", false)
    .action((opts: TopOptions) =>
      topCommand(ctx(), opts, {
        tty: process.stdout.isTTY === true,
        width: () => process.stdout.columns ?? 0,
        sleep: (ms) =>
          new Promise<boolean>((resolve) => {
            const stop = (): void => {
              clearTimeout(t);
              resolve(false);
            };
            const t = setTimeout(() => {
              process.off("SIGINT", stop);
              resolve(true);
            }, ms);
            process.once("SIGINT", stop);
          }),
      }));

  program
    .command("hash-password")
    .description("print the mysql_native_password and caching_sha2_password verifiers (passwordHash, cachingSha2PasswordHash) of a password read from stdin (or prompted without echo)")
    .action(() => hashPasswordCommand(io.stdout));

  program
    .command("explain")
    .description("show how the data plane would classify and route a statement: kind, flags, digest, tables, the matching query rule, the route and why")
    .requiredOption("--user <name>", "the mysqlgw user the statement comes from")
    .requiredOption("--sql <statement>", "the statement text")
    .option("--schema <name>", "the session's current schema")
    .option("--listener <name>", "the listener it arrives on (default: the policy's first listener; its role decides)")
    .option("-f, --file <path...>", "policy files or directories to explain against, instead of the current policy")
    .option("--in-transaction", "as inside a transaction", false)
    .option("--autocommit-off", "as after SET autocommit=0", false)
    .option("--json", "print JSON", false)
    .action((opts: { user: string; sql: string; schema?: string; listener?: string; file?: string[]; inTransaction: boolean; autocommitOff: boolean; json: boolean }) =>
      explainCommand(ctx(), opts));

  program
    .command("trace")
    .description("print one trace from Jaeger as an indented timeline (session → statement → route, pool acquire, backend, transfer), or list candidate traces by user, slowness or error")
    .argument("[trace-id]", "32 hex digits (from a request-log line, the application, or the list)")
    .addOption(new Option("--jaeger <url>", "Jaeger query HTTP API").env("MYSQLGW_JAEGER").default(DEFAULT_JAEGER))
    .option("--service <name>", "service.name of the data planes' spans (--otlp-service-name)", "mysqlgw")
    .option("--user <name>", "list: statements of this mysqlgw user")
    .option("--listener <name>", "list: statements on this listener")
    .option("--since <duration>", "list: how far back (e.g. 5m, 2h)", "1h")
    .option("--slow", "list: only statements of at least --min-duration", false)
    .option("--min-duration <duration>", "list: what --slow means (e.g. 100ms, 1s)", "100ms")
    .option("--errors", "list: only failing statements", false)
    .option("--limit <n>", "list: at most this many traces", "20")
    .option("--json", "print JSON", false)
    .action((traceId: string | undefined, opts: TraceOptions) => {
      const timeoutMs = Number(program.opts<{ timeout: string }>().timeout);
      return traceCommand({ stdout: io.stdout, stderr: io.stderr, timeoutMs: Number.isInteger(timeoutMs) && timeoutMs > 0 ? timeoutMs : 10_000 }, traceId, opts);
    });

  registerReplicationCommands(program, ctx);
  registerSwitchoverCommand(program, ctx);
  registerDemo(program);
  return program;
}

/** Runs the CLI; resolves to the process exit code. */
export async function run(argv: readonly string[], io: ProgramIo): Promise<number> {
  const program = buildProgram(io);
  try {
    await program.parseAsync([...argv], { from: "user" });
    return 0;
  } catch (err) {
    if (err instanceof CommanderError) {
      // Help and version are "errors" to commander; usage problems were printed already.
      return err.exitCode === 0 ? 0 : 2;
    }
    if (err instanceof CliError) {
      for (const line of err.render()) io.stderr(line);
      return err.exitCode;
    }
    io.stderr(`error: ${err instanceof Error ? err.message : String(err)} — this is a bug in mysqlgw; please report it with the command you ran`);
    return 1;
  }
}

import { toJsonString } from "@bufbuild/protobuf";
import { ConfigVersionSchema } from "@mysqlgw/proto";
import { CliError } from "../cli-error";
import { policyDocuments, toYamlDocuments } from "../output";
import type { Kind } from "../policy-files";
import { callApi, type CommandContext } from "./context";

const KIND_OF: Record<string, Kind | "policy"> = {
  cluster: "Cluster", clusters: "Cluster",
  listener: "Listener", listeners: "Listener",
  user: "User", users: "User",
  gateway: "Gateway", gateways: "Gateway",
  rule: "QueryRule", rules: "QueryRule", queryrule: "QueryRule", queryrules: "QueryRule",
  quota: "Quota", quotas: "Quota",
  policy: "policy", policies: "policy", all: "policy",
};

export interface GetOptions {
  output?: string;
  version?: string;
}

/**
 * `mysqlgw get KIND [NAME] [-o yaml|json] [--version N]`: YAML documents in the
 * shape `apply` takes, or JSON (a list of those documents; for `policy`, the
 * whole ConfigVersion).
 */
export async function getResourcesCommand(ctx: CommandContext, kindArg: string, name: string | undefined, opts: GetOptions): Promise<void> {
  const kind = KIND_OF[kindArg.toLowerCase()];
  if (kind === undefined) {
    throw new CliError("MGW_ERR_CLI_USAGE", `unknown kind ${JSON.stringify(kindArg)}`, "use clusters, listeners, users, gateway, rules, quotas or policy", { exitCode: 2 });
  }
  const output = opts.output ?? "yaml";
  if (output !== "yaml" && output !== "json") {
    throw new CliError("MGW_ERR_CLI_USAGE", `unknown output format ${JSON.stringify(output)}`, "use -o yaml or -o json", { exitCode: 2 });
  }
  if (kind === "policy" && name !== undefined) {
    throw new CliError("MGW_ERR_CLI_USAGE", "get policy takes no name", "use get clusters|listeners|users NAME for one resource", { exitCode: 2 });
  }
  let version = 0n;
  if (opts.version !== undefined) {
    if (!/^[0-9]{1,20}$/.test(opts.version)) throw new CliError("MGW_ERR_CLI_USAGE", `--version ${JSON.stringify(opts.version)} is not a version number`, "pass --version N with N ≥ 1", { exitCode: 2 });
    version = BigInt(opts.version);
  }
  const res = await callApi(ctx, () => ctx.client.getPolicy({ version }, { timeoutMs: ctx.timeoutMs }));
  const config = res.config;
  if (config === undefined) {
    ctx.stderr("note: no configuration has been applied yet (mysqlgw apply -f FILE)");
    if (output === "json") ctx.stdout(kind === "policy" ? "{}" : "[]");
    return;
  }
  if (kind === "policy" && output === "json") {
    ctx.stdout(JSON.stringify(JSON.parse(toJsonString(ConfigVersionSchema, config)), null, 2));
    return;
  }
  const policy = config.policy;
  const docs = policy === undefined ? [] : policyDocuments(policy, { kind: kind === "policy" ? undefined : kind, name });
  if (name !== undefined && docs.length === 0) {
    throw new CliError("MGW_ERR_CLI_NOT_FOUND", `no ${kind} named ${JSON.stringify(name)} in version ${config.version}`,
      `list them with mysqlgw get ${kind.toLowerCase()}s`);
  }
  if (output === "json") {
    ctx.stdout(JSON.stringify(docs, null, 2));
    return;
  }
  const when = config.appliedAt === undefined ? "" : ` at ${new Date(Number(config.appliedAt.seconds) * 1000).toISOString()}`;
  const header = `mysqlgw config version ${config.version}, applied${when}${config.appliedBy === "" ? "" : ` by ${config.appliedBy}`}`;
  ctx.stdout(toYamlDocuments(docs, header).trimEnd());
}

import { durationMs, timestampMs } from "@bufbuild/protobuf/wkt";
import { BackendHealth_Role, BackendHealth_State } from "@mysqlgw/proto";
import { formatAge, formatTable } from "../output";
import { callApi, type CommandContext } from "./context";

/**
 * `mysqlgw backends [--cluster C]`: each backend's state and role as the
 * monitor last wrote them, and which control plane leads the monitor. Warns
 * (stderr) when no monitor leads and about DOWN backends.
 */
export async function backendsCommand(ctx: CommandContext, opts: { cluster?: string }, now: () => number = Date.now): Promise<void> {
  const res = await callApi(ctx, () => ctx.client.listBackendHealth({ cluster: opts.cluster ?? "" }, { timeoutMs: ctx.timeoutMs }));
  ctx.stdout(`monitor leader: ${res.monitorLeader === "" ? "none" : res.monitorLeader}`);
  if (res.monitorLeader === "") {
    ctx.stderr("warning: no control plane leads the monitor — is every control plane running with --no-monitor, or is etcd unreachable?");
  }
  if (res.backends.length === 0) {
    ctx.stdout(`no backend health${opts.cluster !== undefined ? ` for cluster ${opts.cluster}` : ""} — clusters need health.credentials to be probed`);
    return;
  }
  const rows = res.backends.map((b) => [
    b.cluster,
    b.backend,
    b.address,
    stateName(b.state),
    roleName(b.role),
    b.serverId === 0 ? "-" : String(b.serverId),
    b.gtidCurrentPos === "" ? "-" : b.gtidCurrentPos,
    b.replicationLag === undefined ? "-" : `${Math.round(durationMs(b.replicationLag) / 1000)}s`,
    b.sourceAddress === "" ? "-" : b.sourceAddress,
    b.checkedAt === undefined ? "-" : `${formatAge(now() - timestampMs(b.checkedAt))} ago`,
  ]);
  for (const line of formatTable(["CLUSTER", "BACKEND", "ADDRESS", "STATE", "ROLE", "SERVER ID", "GTID", "LAG", "SOURCE", "CHECKED"], rows)) ctx.stdout(line);
  for (const b of res.backends) {
    if (b.state === BackendHealth_State.DOWN) ctx.stderr(`warning: ${b.cluster}/${b.backend} is DOWN: ${b.lastError}`);
    if (b.roleDisagreement !== "") ctx.stderr(`warning: ${b.cluster}/${b.backend}: ${b.roleDisagreement}`);
  }
}

function stateName(s: BackendHealth_State): string {
  return s === BackendHealth_State.UP ? "UP" : s === BackendHealth_State.DOWN ? "DOWN" : "UNKNOWN";
}

function roleName(r: BackendHealth_Role): string {
  return r === BackendHealth_Role.PRIMARY ? "PRIMARY" : r === BackendHealth_Role.REPLICA ? "REPLICA" : "UNKNOWN";
}

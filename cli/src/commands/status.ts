import { formatAge, formatTable } from "../output";
import { callApi, type CommandContext } from "./context";

/**
 * `mysqlgw status`: every registered data plane and the config version it
 * serves against the current one. Warns (stderr) about data planes behind.
 */
export async function statusCommand(ctx: CommandContext, now: () => number = Date.now): Promise<void> {
  const res = await callApi(ctx, () => ctx.client.listDataPlanes({}, { timeoutMs: ctx.timeoutMs }));
  const current = res.currentVersion;
  ctx.stdout(`control plane ${ctx.api}: current config version ${current}${current === 0n ? " (nothing applied yet)" : ""}`);
  if (res.dataPlanes.length === 0) {
    ctx.stdout("no data planes registered");
    return;
  }
  const rows = res.dataPlanes.map((d) => {
    const started = d.startedAt === undefined ? NaN : Number(d.startedAt.seconds) * 1000 + Math.floor(d.startedAt.nanos / 1e6);
    return [
      d.id,
      String(d.pid),
      String(d.workers),
      `${d.configVersion}/${current}`,
      d.listeners.length === 0 ? "-" : d.listeners.join(","),
      d.configSource === "" ? "-" : d.configSource,
      formatAge(now() - started),
    ];
  });
  for (const line of formatTable(["DATA PLANE", "PID", "WORKERS", "VERSION", "LISTENERS", "SOURCE", "AGE"], rows)) ctx.stdout(line);
  for (const d of res.dataPlanes) {
    if (d.configVersion !== current) {
      ctx.stderr(`warning: data plane ${d.id} serves version ${d.configVersion}, current is ${current} — check its log if this lasts more than a few seconds`);
    }
    if (d.configSource === "disk") {
      ctx.stderr(`warning: data plane ${d.id} serves its last good copy from disk — it cannot read etcd; check its --etcd setting and etcd's health`);
    }
  }
}

import type { DigestsAnswer } from "@mysqlgw/proto";
import { apiGet } from "../client";
import { CliError, fromApiError } from "../cli-error";
import { formatTable } from "../output";
import type { CommandContext } from "./context";

/** What GET /v1/digests answers (control-plane/src/digests/published-digests.ts). */
export type { DigestsAnswer };

export interface TopOptions {
  interval: string;
  limit: string;
  user?: string;
  schema?: string;
  once: boolean;
  json: boolean;
  /** Refreshes before exiting (0: until interrupted). */
  count: string;
}

/** Terminal control: cursor home, clear screen. */
const CLEAR = "\u001b[H\u001b[2J";

function positiveInt(raw: string, what: string, max: number): number {
  if (!/^\d+$/.test(raw) || Number(raw) < 1 || Number(raw) > max) {
    throw new CliError("MGW_ERR_CLI_USAGE", `${what} must be a whole number from 1 to ${max}, got "${raw}"`, "", { exitCode: 2 });
  }
  return Number(raw);
}

/** Fetches the merged digests from the control plane. */
export async function fetchDigests(ctx: Pick<CommandContext, "api" | "timeoutMs">, q: { limit: number; user?: string; schema?: string }): Promise<DigestsAnswer> {
  const url = new URL("/v1/digests", ctx.api);
  url.searchParams.set("limit", String(q.limit));
  if (q.user !== undefined) url.searchParams.set("user", q.user);
  if (q.schema !== undefined) url.searchParams.set("schema", q.schema);
  let res: Awaited<ReturnType<typeof apiGet>>;
  try {
    res = await apiGet(url, ctx.timeoutMs); // with --token and the TLS files
  } catch (err) {
    throw fromApiError(err, ctx.api);
  }
  const text = res.text;
  if (!res.ok) {
    let message = text.trim();
    try {
      message = (JSON.parse(text) as { message?: string }).message ?? message;
    } catch {
      // not JSON: keep the text
    }
    throw new CliError("MGW_ERR_CLI_API", `GET /v1/digests: ${res.status} ${message}`, res.status === 404 ? "upgrade the control plane (it has no /v1/digests)" : res.status === 401 || res.status === 403 ? "" : "see the control plane's log");
  }
  return JSON.parse(text) as DigestsAnswer;
}

const ms = (x: number): string => (x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(2));

/** One screen of `mysqlgw top`. */
export function renderTop(a: DigestsAnswer, now: Date, width: number): string[] {
  const planes = a.dataPlanes.length === 0 ? "no data plane publishes digests yet (is --digests-publish-interval 0?)" : `${a.dataPlanes.length} data plane${a.dataPlanes.length === 1 ? "" : "s"}: ${a.dataPlanes.map((p) => p.id).join(", ")}`;
  const lines = [`mysqlgw top — ${now.toISOString().slice(11, 19)} UTC — ${planes}`, ""];
  if (a.digests.length === 0) return [...lines, "no statements counted yet"];
  const rows = a.digests.map((d) => [ms(d.totalMs), String(d.count), ms(d.avgMs), ms(d.p99Ms), ms(d.maxMs), String(d.errors), String(d.rows), d.user, d.schema === "" ? "-" : d.schema, d.digestText]);
  const table = formatTable(["TOTAL_MS", "COUNT", "AVG_MS", "P99_MS", "MAX_MS", "ERRORS", "ROWS", "USER", "SCHEMA", "DIGEST"], rows);
  return [...lines, ...table.map((l) => (width > 20 && l.length > width ? `${l.slice(0, width - 1)}…` : l))];
}

/**
 * `mysqlgw top`: the query digests of every data plane, by total time,
 * refreshed every --interval seconds until interrupted (or --count screens);
 * --once prints one screen (or one JSON answer with --json) and exits.
 */
export async function topCommand(ctx: Pick<CommandContext, "api" | "timeoutMs" | "stdout">, opts: TopOptions, io: { width(): number; sleep(ms: number): Promise<boolean>; tty: boolean }): Promise<void> {
  const limit = positiveInt(opts.limit, "--limit", 1000);
  const intervalMs = Math.round(Number(opts.interval) * 1000);
  if (!Number.isFinite(intervalMs) || intervalMs < 100 || intervalMs > 3_600_000) {
    throw new CliError("MGW_ERR_CLI_USAGE", `--interval must be seconds between 0.1 and 3600, got "${opts.interval}"`, "", { exitCode: 2 });
  }
  const count = opts.once ? 1 : opts.count === "0" ? Infinity : positiveInt(opts.count, "--count", 1_000_000);
  for (let i = 0; i < count; i++) {
    const a = await fetchDigests(ctx, { limit, user: opts.user, schema: opts.schema });
    if (opts.json) ctx.stdout(JSON.stringify(a, null, opts.once ? 2 : undefined));
    else {
      const screen = renderTop(a, new Date(), io.width());
      // a live view redraws in place; --once (or not a terminal) just prints
      ctx.stdout((io.tty && !opts.once ? CLEAR : "") + screen.join("\n"));
    }
    if (i + 1 < count && !(await io.sleep(intervalMs))) return;
  }
}

import { durationMs } from "@bufbuild/protobuf/wkt";
import type { Tracing } from "@mysqlgw/proto";

/** Gateway.tracing of one config version, compiled (docs/policy.md "Gateway"). */
export interface TracingSettings {
  /** Share of traces exported, 0..1 (absent in policy: 1). */
  readonly samplingRatio: number;
  /** Statements at least this slow are always exported; 0: no duration rule. */
  readonly slowThresholdMs: number;
  /** Failing statements are always exported (policy dropErrors false). */
  readonly keepErrors: boolean;
}

export const DEFAULT_TRACING: TracingSettings = { samplingRatio: 1, slowThresholdMs: 0, keepErrors: true };

export function compileTracing(t: Tracing | undefined): TracingSettings {
  if (t === undefined) return DEFAULT_TRACING;
  const r = t.samplingRatio;
  const ms = t.slowThreshold === undefined ? 0 : durationMs(t.slowThreshold);
  return {
    samplingRatio: r === undefined || !Number.isFinite(r) ? 1 : Math.min(1, Math.max(0, r)),
    slowThresholdMs: Number.isFinite(ms) && ms > 0 ? ms : 0,
    keepErrors: !t.dropErrors,
  };
}

/** What tracing needs to know of a cluster beyond the StatementRecord. */
export interface TracedCluster {
  readonly backends: readonly { readonly name: string; readonly host: string; readonly port: number }[];
  /** The backends' greeting as last seen (ClusterRuntime.serverVersion): "…-MariaDB…" → db.system.name mariadb. */
  readonly runtime: { readonly serverVersion: string | null };
}

/** The config version the worker serves, as the tracing observer reads it at each statement. */
export interface TracingView {
  settings: TracingSettings;
  clusters: ReadonlyMap<string, TracedCluster>;
}

/** This worker's current view; the listener manager replaces it at each applied config version. */
export const tracingView: TracingView = { settings: DEFAULT_TRACING, clusters: new Map() };

export function setTracingView(settings: TracingSettings, clusters: ReadonlyMap<string, TracedCluster>): void {
  tracingView.settings = settings;
  tracingView.clusters = clusters;
}

import { durationMs } from "@bufbuild/protobuf/wkt";
import type { Tracing } from "@mysqlgw/proto";

/** Longest slowThreshold accepted: a statement slower than an hour is kept by the error rule or a timeout anyway. */
export const MAX_SLOW_THRESHOLD_MS = 3_600_000;

/**
 * Gateway.tracing: samplingRatio within 0..1 (absent: 1), slowThreshold
 * between 0 (no duration rule) and 1 h. Reports through `add(field, description)`
 * with fields relative to the Gateway ("tracing.samplingRatio").
 */
export function checkTracing(t: Tracing, add: (field: string, description: string) => void): void {
  const r = t.samplingRatio;
  if (r !== undefined && !(Number.isFinite(r) && r >= 0 && r <= 1)) {
    add("tracing.samplingRatio", `${r} is not a ratio; use a number from 0 (only slow and failing statements) to 1 (every statement), e.g. 0.01`);
  }
  if (t.slowThreshold !== undefined) {
    const ms = durationMs(t.slowThreshold);
    if (!(ms >= 0 && ms <= MAX_SLOW_THRESHOLD_MS)) {
      add("tracing.slowThreshold", `${ms} ms is out of range; use 0s (no duration rule) to 3600s, e.g. 0.5s`);
    }
  }
}

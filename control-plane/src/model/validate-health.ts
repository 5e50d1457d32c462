import { durationMs } from "@bufbuild/protobuf/wkt";
import type { Cluster } from "@mysqlgw/proto";
import type { PolicyViolationInit } from "../errors";
import { checkSecretRef } from "./validate";

const MIN_INTERVAL_MS = 100;
const MAX_INTERVAL_MS = 3_600_000;
const MAX_TIMEOUT_MS = 60_000;
const MAX_FAILURE_THRESHOLD = 100;

/**
 * Cluster.health: positive durations within sane bounds, a threshold of at
 * most 100, and credentials with a user and a well-formed secret reference
 * (resolved where the control plane runs). Pushes violations onto `out`.
 */
export function checkClusterHealth(c: Cluster, index: number, out: PolicyViolationInit[]): void {
  const h = c.health;
  if (h === undefined) return;
  const add = (field: string, description: string): void => {
    out.push({ kind: "Cluster", name: c.name, index, field: `health.${field}`, description });
  };
  const checkDuration = (field: string, d: typeof h.interval, min: number, max: number, example: string): void => {
    if (d === undefined) return;
    const ms = durationMs(d);
    if (!(ms >= min && ms <= max)) add(field, `${ms} ms is out of range; use ${min} ms to ${max / 1000} s (e.g. ${example}) or leave it out for the default`);
  };
  checkDuration("interval", h.interval, MIN_INTERVAL_MS, MAX_INTERVAL_MS, "1s");
  checkDuration("timeout", h.timeout, 1, MAX_TIMEOUT_MS, "1s");
  checkDuration("maxReplicationLag", h.maxReplicationLag, 1, Number.MAX_SAFE_INTEGER, "30s");
  if (h.failureThreshold > MAX_FAILURE_THRESHOLD) {
    add("failureThreshold", `${h.failureThreshold} is too large; use 1..${MAX_FAILURE_THRESHOLD} (0 or absent means 3)`);
  }
  const cr = h.credentials;
  if (cr !== undefined) {
    if (cr.user === "") add("credentials.user", "the monitor account's user is missing; name an account with REPLICATION CLIENT / SLAVE MONITOR (e.g. mgw_monitor)");
    const problem = checkSecretRef(cr.secretRef);
    if (problem !== null) add("credentials.secretRef", problem.replaceAll("data plane", "control plane"));
  }
}

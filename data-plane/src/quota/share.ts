/**
 * A worker's share of fleet-wide figures. The fleet is the data planes live
 * in etcd's registry (`<prefix>/v1/dataplanes/`); each data plane takes
 * 1/dataPlanes of a figure and splits it evenly over its workers, so a worker
 * takes figure / (dataPlanes × workerCount).
 *
 * Rates are real numbers and split exactly. Concurrency slots are whole: the
 * fleet's workers are numbered (rank of the data plane among the sorted
 * registry ids × workerCount + worker index) and the first `figure mod total`
 * get one slot more, so the shares add up to the figure exactly. A worker can
 * get 0 slots when the figure is below the fleet's worker count: its
 * statements then wait (QUEUE) or are refused (REJECT) — the strict reading of
 * a fleet-wide limit (docs/policy.md says to set it at least that high).
 */
export interface FleetPosition {
  /** Live data planes (this one included), ≥ 1. */
  readonly dataPlanes: number;
  /** This data plane's index among them, sorted by id (0-based). */
  readonly rank: number;
  /** This worker's index in its data plane, and the data plane's worker count (≥ 1). */
  readonly workerIndex: number;
  readonly workerCount: number;
}

export const SOLO: FleetPosition = { dataPlanes: 1, rank: 0, workerIndex: 0, workerCount: 1 };

/** Workers in the fleet (every data plane assumed to run as many as this one). */
export function fleetWorkers(f: FleetPosition): number {
  return Math.max(1, f.dataPlanes) * Math.max(1, f.workerCount);
}

/** This worker's part of a rate (per second). */
export function rateShare(figure: number, f: FleetPosition): number {
  return figure / fleetWorkers(f);
}

/**
 * This worker's bucket size: the fleet-wide burst (0: one second of the
 * rate, at least 1) split like the rate, but never below one whole token —
 * a bucket smaller than one token could never admit anything.
 */
export function burstShare(burst: number, ratePerSecond: number, f: FleetPosition): number {
  const whole = burst > 0 ? burst : Math.max(1, ratePerSecond);
  return Math.max(1, whole / fleetWorkers(f));
}

/** This worker's whole number of concurrency slots (see above). */
export function slotShare(figure: number, f: FleetPosition): number {
  const total = fleetWorkers(f);
  const global = Math.min(Math.max(0, f.rank), Math.max(1, f.dataPlanes) - 1) * Math.max(1, f.workerCount) + Math.min(Math.max(0, f.workerIndex), Math.max(1, f.workerCount) - 1);
  return Math.floor(figure / total) + (global < figure % total ? 1 : 0);
}

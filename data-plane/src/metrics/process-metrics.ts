import { collectDefaultMetrics, type Registry } from "prom-client";

const enabled = new WeakSet<Registry>();

/**
 * prom-client's standard process and Node.js metrics (process_cpu_seconds_total,
 * process_resident_memory_bytes, nodejs_eventloop_lag_seconds, nodejs_heap_size_used_bytes,
 * nodejs_gc_duration_seconds, …) in `registry`, each series labelled with
 * `worker` (the worker index, or "supervisor") so that the supervisor's merge
 * keeps one series per process. Costs a 10 ms event-loop-delay timer and a GC
 * observer; only turned on with --metrics-listen. Idempotent per registry.
 */
export function enableProcessMetrics(registry: Registry, worker: string): void {
  if (enabled.has(registry)) return;
  enabled.add(registry);
  collectDefaultMetrics({ register: registry, labels: { worker } });
}

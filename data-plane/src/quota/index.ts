// Fleet-wide quotas (Policy.quotas): see docs/policy.md "Quotas" and docs/data-plane.md.
import { metrics } from "../metrics";
import { registerQuotaMetrics } from "../metrics/quota-metrics";
import { QuotaRegistry } from "./quota-registry";

/** This process's quotas: every session of a worker is admitted through them. */
export const quotas = new QuotaRegistry();
registerQuotaMetrics(metrics.registry, quotas);

export { QuotaRegistry, ListenerQuotas, NO_QUOTAS, compileQuotas, type CompiledQuotas } from "./quota-registry";
export { SessionQuotas } from "./session-quotas";
export { realClock, type QuotaClock } from "./clock";

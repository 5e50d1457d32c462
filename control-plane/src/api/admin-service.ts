import { create } from "@bufbuild/protobuf";
import { handlerGuard } from "./handler-guard";
import type { HandlerContext, ServiceImpl } from "@connectrpc/connect";
import { AdminService, PolicySchema, type ApplyPolicyRequest, type Policy } from "@mysqlgw/proto";
import { isMgwError, MgwError, type PolicyViolationInit } from "../errors";
import { diffPolicies } from "../model/diff";
import { normalizePolicy } from "../model/normalize";
import { validatePolicy } from "../model/validate";
import type { ConfigStore } from "../store/config-store";
import { applyFailureResult, type ControlPlaneMetrics } from "../metrics";
import { appliedByOf } from "./principal";

/** The subset of a pino logger the service uses. */
export interface ServiceLogger {
  info(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

export interface AdminServiceOptions {
  store: ConfigStore;
  /** Reported by GetHealth. */
  buildVersion?: string;
  logger?: ServiceLogger;
  /** The id of the control plane leading the monitor ("" if none); ListBackendHealth reports it. */
  monitorLeader?: () => Promise<string>;
  /** Counts every call by method and code, and ApplyPolicy by result. */
  metrics?: Pick<ControlPlaneMetrics, "apiRequest" | "applied" | "configVersion">;
}

export type AdminServiceImpl = ServiceImpl<typeof AdminService>;

/**
 * The one implementation of mysqlgw.admin.v1.AdminService, served over gRPC,
 * Connect and REST alike. Handlers throw ConnectErrors only.
 */
export function createAdminService(options: AdminServiceOptions): AdminServiceImpl {
  const { store } = options;
  const buildVersion = options.buildVersion ?? "0.0.0";
  const log = options.logger;

  /** The leader is advisory: a failed read leaves it empty rather than failing the call. */
  async function leaderOrEmpty(): Promise<string> {
    if (options.monitorLeader === undefined) return "";
    try {
      return await options.monitorLeader();
    } catch (err) {
      log?.error({ err: (err as Error).message }, "cannot read the monitor leader");
      return "";
    }
  }

  const metrics = options.metrics;
  const guard = handlerGuard({ metrics, logger: log });

  /** apply(), counted by result. */
  async function countedApply(req: ApplyPolicyRequest, ctx?: HandlerContext) {
    try {
      const r = await apply(req, appliedByOf(ctx, req.appliedBy));
      if (!req.dryRun) metrics?.configVersion(r.version);
      metrics?.applied(req.dryRun ? "dry_run" : r.changed ? "applied" : "unchanged");
      return r;
    } catch (err) {
      metrics?.applied(applyFailureResult(isMgwError(err) ? err.code : ""));
      throw err;
    }
  }

  // Applies through this process run one at a time, so that they never race
  // each other; the etcd transaction still guards against other replicas.
  let applyChain: Promise<unknown> = Promise.resolve();
  function serialized<T>(fn: () => Promise<T>): Promise<T> {
    const run = applyChain.then(fn, fn);
    applyChain = run.catch(() => undefined);
    return run;
  }

  async function apply(req: ApplyPolicyRequest, appliedBy: string) {
    const policy = checked(req.policy);
    if (req.dryRun) {
      const cur = await store.getCurrent();
      const curVersion = cur?.version ?? 0n;
      if (req.expectedVersion !== 0n && curVersion !== req.expectedVersion) throw versionMismatch(req.expectedVersion, curVersion);
      return { version: curVersion, changed: false, changes: diffPolicies(cur?.policy, policy) };
    }
    return serialized(() => write(req, policy, appliedBy));
  }

  /** `appliedBy`: the authenticated caller and what the client said (appliedByOf). */
  async function write(req: ApplyPolicyRequest, policy: Policy, appliedBy: string) {
    for (let attempt = 0; ; attempt++) {
      const cur = await store.getCurrent();
      const curVersion = cur?.version ?? 0n;
      if (req.expectedVersion !== 0n && curVersion !== req.expectedVersion) {
        throw versionMismatch(req.expectedVersion, curVersion);
      }
      const changes = diffPolicies(cur?.policy, policy);
      try {
        const r = await store.applyIfChanged(policy, curVersion, appliedBy);
        if (r.changed) log?.info({ version: r.version.toString(), changes: changes.length, appliedBy }, "config version applied");
        return { version: r.version, changed: r.changed, changes: r.changed ? changes : [] };
      } catch (err) {
        if (!isMgwError(err, "MGW_ERR_STORE_CONFLICT")) throw err;
        if (req.expectedVersion !== 0n) {
          const now = (await store.getCurrent())?.version ?? 0n;
          throw versionMismatch(req.expectedVersion, now);
        }
        // Another apply won the race: diff and try once more against what it wrote.
        if (attempt >= 1) {
          throw new MgwError("MGW_ERR_STORE_CONFLICT", "another apply changed the configuration at the same time, twice; run the command again", { cause: err });
        }
      }
    }
  }

  return {
    applyPolicy: guard("ApplyPolicy", countedApply),
    getPolicy: guard("GetPolicy", async (req) => {
      if (req.version === 0n) return { config: await store.getCurrent() };
      const config = await store.getVersion(req.version);
      if (config === undefined) {
        const cur = (await store.getCurrent())?.version ?? 0n;
        throw new MgwError("MGW_ERR_POLICY_NOT_FOUND", `config version ${req.version} does not exist; versions go from 1 to ${cur}` +
          (cur === 0n ? " (nothing applied yet: apply a policy first)" : ""));
      }
      return { config };
    }),
    diffPolicy: guard("DiffPolicy", async (req) => {
      const policy = checked(req.policy);
      const cur = await store.getCurrent();
      return { baseVersion: cur?.version ?? 0n, changes: diffPolicies(cur?.policy, policy) };
    }),
    listDataPlanes: guard("ListDataPlanes", async () => {
      const [dataPlanes, cur] = await Promise.all([store.listDataPlanes(), store.getCurrent()]);
      return { dataPlanes, currentVersion: cur?.version ?? 0n };
    }),
    listBackendHealth: guard("ListBackendHealth", async (req) => {
      const [backends, monitorLeader] = await Promise.all([store.listBackendHealth(req.cluster), leaderOrEmpty()]);
      return { backends, monitorLeader };
    }),
    listFailovers: guard("ListFailovers", async (req) => ({ failovers: await store.listFailovers(req.cluster) })),
    getHealth: guard("GetHealth", async () => {
      try {
        const cur = await store.getCurrent();
        return { status: "SERVING", etcdReachable: true, currentVersion: cur?.version ?? 0n, buildVersion };
      } catch (err) {
        if (!isMgwError(err)) throw err;
        const reachable = !isMgwError(err, "MGW_ERR_STORE_UNAVAILABLE");
        return { status: "NOT_SERVING", etcdReachable: reachable, etcdError: err.message, buildVersion };
      }
    }),
  };
}

/** Validates, then normalises; throws MGW_ERR_POLICY_INVALID listing every problem. */
function checked(policy: Policy | undefined): Policy {
  const p = policy ?? create(PolicySchema);
  const violations = validatePolicy(p);
  if (violations.length > 0) {
    throw new MgwError("MGW_ERR_POLICY_INVALID", describeViolations(violations), { violations });
  }
  return normalizePolicy(p);
}

const PLURAL: Record<string, string> = { Cluster: "clusters", Listener: "listeners", User: "users" };

/** "policy is invalid (2 problems):\n- Listener orders-rw (listeners[1]) field port: …" */
export function describeViolations(violations: readonly PolicyViolationInit[]): string {
  const lines = violations.map((v) => {
    const where = v.kind === "" ? "policy" : `${v.kind} ${v.name === "" ? "(unnamed)" : v.name} (${PLURAL[v.kind] ?? v.kind}[${v.index}])`;
    return `- ${where}${v.field === "" ? "" : ` field ${v.field}`}: ${v.description}`;
  });
  const n = violations.length;
  return `policy is invalid (${n} problem${n === 1 ? "" : "s"}); nothing was written:\n${lines.join("\n")}`;
}

function versionMismatch(expected: bigint, current: bigint): MgwError {
  return new MgwError("MGW_ERR_POLICY_VERSION_MISMATCH", `the current version is ${current}, not the expected ${expected}; review the diff against version ${current} and apply again`);
}

import { create } from "@bufbuild/protobuf";
import { handlerGuard } from "./handler-guard";
import { Code, ConnectError, createHandlerContext, type HandlerContext, type ServiceImpl } from "@connectrpc/connect";
import {
  AdminService,
  ApplyPolicyRequestSchema,
  GetPolicyRequestSchema,
  HistoryService,
  ResourceChangeSchema,
  VersionSummarySchema,
  type ConfigVersion,
  type ResourceChange,
  type VersionSummary,
} from "@mysqlgw/proto";
import { MgwError } from "../errors";
import { diffPolicies } from "../model/diff";
import type { ControlPlaneMetrics } from "../metrics";
import type { AdminServiceImpl, ServiceLogger } from "./admin-service";

/** Versions ListVersions returns when the request says 0. */
export const DEFAULT_HISTORY_LIMIT = 20;
/** Most versions one ListVersions returns. */
export const MAX_HISTORY_LIMIT = 1000;
/** Version reads in flight at once while listing. */
const READ_CONCURRENCY = 8;

/** Reads config versions: the ConfigStore itself, or versionsFromAdmin(). */
export interface VersionReader {
  getCurrent(): Promise<ConfigVersion | undefined>;
  getVersion(version: bigint): Promise<ConfigVersion | undefined>;
}

export interface HistoryServiceOptions {
  versions: VersionReader;
  /** Rollback goes through the one apply path (validation, diff, serialised writes, metrics, log). */
  admin: Pick<AdminServiceImpl, "applyPolicy">;
  logger?: ServiceLogger;
  /** Counts every call by method and code. */
  metrics?: Pick<ControlPlaneMetrics, "apiRequest">;
}

export type HistoryServiceImpl = ServiceImpl<typeof HistoryService>;

/**
 * mysqlgw.admin.v1.HistoryService: the applied config versions and rollback.
 * Versions are immutable once written (etcd versions/<n>), so listing needs no
 * transaction; a rollback is an ordinary apply of the old policy, written as
 * the next version (history is never rewritten). Handlers throw ConnectErrors only.
 */
export function createHistoryService(options: HistoryServiceOptions): HistoryServiceImpl {
  const { versions, admin, logger: log, metrics } = options;

  const guard = handlerGuard({ metrics, logger: log });

  return {
    listVersions: guard("ListVersions", async (req) => {
      const limit = req.limit === 0 ? DEFAULT_HISTORY_LIMIT : req.limit;
      if (limit > MAX_HISTORY_LIMIT) throw new MgwError("MGW_ERR_API_BAD_REQUEST", `limit ${limit} is over ${MAX_HISTORY_LIMIT}; ask for fewer and page with before`);
      const cur = await versions.getCurrent();
      const current = cur?.version ?? 0n;
      const newest = req.before === 0n ? current : minBig(req.before - 1n, current);
      if (cur === undefined || newest < 1n) return { versions: [], currentVersion: current, nextBefore: 0n };
      const oldest = newest - BigInt(limit) + 1n > 1n ? newest - BigInt(limit) + 1n : 1n;
      // each version and the one before the oldest (to diff against)
      const wanted: bigint[] = [];
      for (let v = newest; v >= oldest - 1n && v >= 1n; v--) wanted.push(v);
      const read = await readAll(wanted, (v) => (v === current ? Promise.resolve(cur) : versions.getVersion(v)));
      const out: VersionSummary[] = [];
      for (let i = 0; i < wanted.length && wanted[i]! >= oldest; i++) {
        const v = read[i];
        if (v === undefined) continue; // not stored (never expected): skipped rather than failing the listing
        let prev: ConfigVersion | undefined;
        for (let j = i + 1; j < read.length && prev === undefined; j++) prev = read[j];
        out.push(summary(v, prev));
      }
      return { versions: out, currentVersion: current, nextBefore: oldest > 1n ? oldest : 0n };
    }),

    rollbackPolicy: guard("RollbackPolicy", async (req, ctx) => {
      if (req.version === 0n) throw new MgwError("MGW_ERR_API_BAD_REQUEST", "version is missing; name the version to roll back to (mysqlgw history lists them)");
      const old = await versions.getVersion(req.version);
      if (old === undefined) {
        const cur = (await versions.getCurrent())?.version ?? 0n;
        throw new MgwError(
          "MGW_ERR_POLICY_NOT_FOUND",
          `config version ${req.version} does not exist; versions go from 1 to ${cur}` + (cur === 0n ? " (nothing applied yet: apply a policy first)" : " (mysqlgw history lists them)"),
        );
      }
      const who = req.appliedBy === "" ? "api" : req.appliedBy;
      const r = await admin.applyPolicy(
        create(ApplyPolicyRequestSchema, {
          policy: old.policy,
          dryRun: req.dryRun,
          appliedBy: `${who} (rollback to version ${req.version})`,
          expectedVersion: req.expectedVersion,
        }),
        ctx,
      );
      if (r.changed) log?.info({ version: String(r.version), restoredVersion: String(req.version), appliedBy: who }, "config rolled back");
      return { version: r.version ?? 0n, changed: r.changed ?? false, changes: (r.changes ?? []) as ResourceChange[], restoredVersion: req.version };
    }),
  };
}

/**
 * A VersionReader over AdminService.GetPolicy, for a server given only the
 * AdminService implementation. Its reads are counted in GetPolicy's metrics;
 * pass the ConfigStore itself where it is at hand.
 */
export function versionsFromAdmin(admin: Pick<AdminServiceImpl, "getPolicy">): VersionReader {
  const ctx = (): HandlerContext =>
    createHandlerContext({ service: AdminService, method: AdminService.method.getPolicy, protocolName: "internal", requestMethod: "POST", url: "/internal/history" });
  return {
    async getCurrent() {
      return (await admin.getPolicy(create(GetPolicyRequestSchema, { version: 0n }), ctx())).config as ConfigVersion | undefined;
    },
    async getVersion(version: bigint) {
      try {
        return (await admin.getPolicy(create(GetPolicyRequestSchema, { version }), ctx())).config as ConfigVersion | undefined;
      } catch (err) {
        if (err instanceof ConnectError && err.code === Code.NotFound) return undefined;
        throw err;
      }
    },
  };
}

function summary(v: ConfigVersion, prev: ConfigVersion | undefined): VersionSummary {
  const changes = v.policy === undefined ? [] : diffPolicies(prev?.policy, v.policy);
  return create(VersionSummarySchema, {
    version: v.version,
    digest: v.digest,
    appliedAt: v.appliedAt,
    appliedBy: v.appliedBy,
    changes: changes.map((c) => create(ResourceChangeSchema, { action: c.action, kind: c.kind, name: c.name, fields: c.fields })),
  });
}

/** fn over every item, at most READ_CONCURRENCY at once, results in order. */
async function readAll<T, R>(items: readonly T[], fn: (item: T) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    for (let i = next++; i < items.length; i = next++) out[i] = await fn(items[i]!);
  };
  await Promise.all(Array.from({ length: Math.min(READ_CONCURRENCY, items.length) }, worker));
  return out;
}

function minBig(a: bigint, b: bigint): bigint {
  return a < b ? a : b;
}

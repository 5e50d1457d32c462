import { create, fromJsonString, toJsonString } from "@bufbuild/protobuf";
import { timestampMs, timestampNow } from "@bufbuild/protobuf/wkt";
import { ClientClosedError, Etcd3, EtcdError, GRPCCancelledError, GRPCDeadlineExceededError, GRPCGenericError, GRPCUnavailableError } from "etcd3";
import { etcdSecurityOptions } from "@mysqlgw/proto";
import { isBrokenCircuitError, noop } from "cockatiel";
import { BackendHealthSchema, ConfigVersionSchema, DataPlaneSchema, etcdKeys, FailoverRecordSchema, type BackendHealth, type FailoverRecord, type ConfigVersion, type DataPlane, type EtcdKeys, type Policy } from "@mysqlgw/proto";
import { MgwError } from "../errors";
import { policyDigest } from "../model/normalize";
import type { ApplyResult, ConfigStore } from "./config-store";

export interface EtcdConfigStoreOptions {
  /** etcd client URLs, e.g. ["http://127.0.0.1:2379"]. */
  endpoints: string[];
  /** Key prefix (see etcdKeys). Default "/mysqlgw". */
  prefix?: string;
  /** Bound on every etcd call, in ms (etcd3 would otherwise wait and retry). Default 3000. */
  callTimeoutMs?: number;
  /** Called for data-plane keys that cannot be decoded (they are skipped). */
  onWarning?: (message: string, details: Record<string, unknown>) => void;
}

export const DEFAULT_ETCD_CALL_TIMEOUT_MS = 3000;

/**
 * ConfigStore on etcd, layout from etcdKeys(prefix); values are the proto3 JSON
 * of ConfigVersion / DataPlane. An apply is one transaction that compares the
 * mod revision of `current` with the one read, then puts versions/<N+1> and
 * current.
 */
export function createEtcdConfigStore(options: EtcdConfigStoreOptions): ConfigStore {
  const endpoints = options.endpoints;
  const keys: EtcdKeys = etcdKeys(options.prefix);
  const timeoutMs = options.callTimeoutMs ?? DEFAULT_ETCD_CALL_TIMEOUT_MS;
  const description = `etcd at ${endpoints.join(",")}`;
  const client = new Etcd3({
    hosts: endpoints,
    ...etcdSecurityOptions(), // --etcd-ca/--etcd-cert/--etcd-key
    dialTimeout: timeoutMs,
    // No retries and no circuit breaker: every call fails within its deadline,
    // and a caller that wants to retry does so knowingly.
    faultHandling: { host: () => noop, global: noop },
    defaultCallOptions: (ctx) => (ctx.isStream ? {} : { deadline: Date.now() + timeoutMs }),
  });

  /** Runs one etcd operation with a hard time bound and converts its errors. */
  async function call<T>(what: string, op: () => Promise<T>): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new EtcdTimeoutError(timeoutMs)), timeoutMs + 250);
    });
    try {
      return await Promise.race([op(), timeout]);
    } catch (err) {
      throw convertEtcdError(err, description, what);
    } finally {
      clearTimeout(timer);
    }
  }

  async function readCurrent(): Promise<{ config: ConfigVersion | undefined; modRevision: string | null }> {
    const res = await call("read the current config", () => client.get(keys.currentConfig).exec());
    const kv = res.kvs[0];
    if (kv === undefined) return { config: undefined, modRevision: null };
    return { config: decodeConfig(keys.currentConfig, kv.value.toString("utf8")), modRevision: kv.mod_revision };
  }

  return {
    description,
    async getCurrent() {
      return (await readCurrent()).config;
    },
    async getVersion(version) {
      const key = keys.configVersion(version);
      const s = await call(`read config version ${version}`, () => client.get(key).string());
      return s === null ? undefined : decodeConfig(key, s);
    },
    async applyIfChanged(policy: Policy, expectedVersion: bigint, appliedBy: string): Promise<ApplyResult> {
      const { config: cur, modRevision } = await readCurrent();
      const readVersion = cur?.version ?? 0n;
      if (readVersion !== expectedVersion) {
        throw new MgwError("MGW_ERR_STORE_CONFLICT", `current version is ${readVersion}, expected ${expectedVersion}`);
      }
      const digest = policyDigest(policy);
      if (cur !== undefined && cur.digest === digest) return { version: readVersion, changed: false };
      const next = readVersion + 1n;
      const value = toJsonString(ConfigVersionSchema, create(ConfigVersionSchema, {
        version: next,
        policy,
        digest,
        appliedAt: timestampNow(),
        appliedBy,
      }));
      const versionKey = keys.configVersion(next);
      const res = await call("write the new config version", () => {
        const txn = modRevision === null
          ? client.if(keys.currentConfig, "Create", "==", 0)
          : client.if(keys.currentConfig, "Mod", "==", modRevision);
        return txn
          .and(versionKey, "Create", "==", 0)
          .then(client.put(versionKey).value(value), client.put(keys.currentConfig).value(value))
          .commit();
      });
      if (!res.succeeded) {
        throw new MgwError("MGW_ERR_STORE_CONFLICT", `the current config in ${description} changed while applying version ${next}`);
      }
      return { version: next, changed: true };
    },
    async listDataPlanes() {
      const all = await call("list data planes", () => client.getAll().prefix(keys.dataPlanesPrefix).strings());
      const out: DataPlane[] = [];
      for (const [key, value] of Object.entries(all)) {
        try {
          out.push(fromJsonString(DataPlaneSchema, value, { ignoreUnknownFields: true }));
        } catch (err) {
          options.onWarning?.("skipping a data plane key that does not decode", { key, err: String(err) });
        }
      }
      return out.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    },
    async listBackendHealth(cluster) {
      const prefix = cluster === "" ? keys.healthPrefix : `${keys.healthPrefix}${cluster}/`;
      const all = await call("list backend health", () => client.getAll().prefix(prefix).strings());
      const out: BackendHealth[] = [];
      for (const [key, value] of Object.entries(all)) {
        try {
          out.push(fromJsonString(BackendHealthSchema, value, { ignoreUnknownFields: true }));
        } catch (err) {
          options.onWarning?.("skipping a backend health key that does not decode", { key, err: String(err) });
        }
      }
      return out.sort((a, b) => (a.cluster === b.cluster ? (a.backend < b.backend ? -1 : 1) : a.cluster < b.cluster ? -1 : 1));
    },
    async listFailovers(cluster) {
      const prefix = cluster === "" ? keys.failoverHistoryPrefix : `${keys.failoverHistoryPrefix}${cluster}/`;
      const all = await call("list failovers", () => client.getAll().prefix(prefix).strings());
      const out: FailoverRecord[] = [];
      for (const [key, value] of Object.entries(all)) {
        try {
          out.push(fromJsonString(FailoverRecordSchema, value, { ignoreUnknownFields: true }));
        } catch (err) {
          options.onWarning?.("skipping a failover record that does not decode", { key, err: String(err) });
        }
      }
      const at = (r: FailoverRecord): number => (r.detectedAt === undefined ? 0 : timestampMs(r.detectedAt));
      return out.sort((a, b) => at(b) - at(a) || (a.cluster < b.cluster ? -1 : 1));
    },
    async close() {
      client.close();
    },
  };
}

function decodeConfig(key: string, value: string): ConfigVersion {
  try {
    // Unknown fields are tolerated: a newer control plane may have written them.
    return fromJsonString(ConfigVersionSchema, value, { ignoreUnknownFields: true });
  } catch (err) {
    throw new MgwError("MGW_ERR_STORE_CORRUPT", `etcd key ${key} does not hold a ConfigVersion (${(err as Error).message}); restore it with a known good policy through \`mysqlgw apply\``, { cause: err });
  }
}

class EtcdTimeoutError extends Error {
  constructor(ms: number) {
    super(`no answer within ${ms} ms`);
  }
}

/**
 * The one place where etcd client errors become MgwErrors. Anything that means
 * "etcd did not answer" becomes MGW_ERR_STORE_UNAVAILABLE.
 */
export function convertEtcdError(err: unknown, description: string, what: string): Error {
  if (err instanceof MgwError) return err;
  const detail = err instanceof Error ? err.message.split("\n")[0] : String(err);
  if (err instanceof EtcdTimeoutError || err instanceof GRPCUnavailableError || err instanceof GRPCDeadlineExceededError ||
      err instanceof GRPCCancelledError || err instanceof ClientClosedError || isBrokenCircuitError(err)) {
    return new MgwError(
      "MGW_ERR_STORE_UNAVAILABLE",
      `${description} is unreachable (could not ${what}: ${detail}); check that etcd is running and healthy (etcdctl endpoint health) and that --etcd points at its client URL`,
      { cause: err },
    );
  }
  if (err instanceof GRPCGenericError || err instanceof EtcdError) {
    return new MgwError(
      "MGW_ERR_STORE_REJECTED",
      `${description} refused to ${what} (${detail}); check etcd's log — a policy larger than etcd's --max-request-bytes (1.5 MiB by default) is refused`,
      { cause: err },
    );
  }
  return err instanceof Error ? err : new Error(String(err));
}

import { clone, create } from "@bufbuild/protobuf";
import { timestampNow } from "@bufbuild/protobuf/wkt";
import { BackendHealthSchema, ConfigVersionSchema, DataPlaneSchema, PolicySchema, type BackendHealth, type ConfigVersion, type DataPlane, type Policy } from "@mysqlgw/proto";
import { MgwError } from "../errors";
import { policyDigest } from "../model/normalize";
import type { ApplyResult, ConfigStore } from "./config-store";

/** A ConfigStore in memory with the same semantics as the etcd one, for tests. */
export interface MemoryConfigStore extends ConfigStore {
  /** Registers or replaces a data plane (what a data plane's lease key would hold). */
  putDataPlane(dp: DataPlane): void;
  /** Test hook: what the monitor would have written. */
  putBackendHealth(h: BackendHealth): void;
  /** While true, every call fails as if the store were unreachable. */
  setUnavailable(unavailable: boolean): void;
  /** Runs once inside the next applyIfChanged, between its read and its write (to simulate a race). */
  beforeNextWrite(hook: () => void): void;
  /** Every version written, oldest first. */
  readonly history: readonly ConfigVersion[];
}

export function createMemoryConfigStore(): MemoryConfigStore {
  const history: ConfigVersion[] = [];
  const dataPlanes = new Map<string, DataPlane>();
  const health = new Map<string, BackendHealth>();
  let unavailable = false;
  let hook: (() => void) | null = null;
  const check = (): void => {
    if (unavailable) throw new MgwError("MGW_ERR_STORE_UNAVAILABLE", "memory store is unavailable (test); call setUnavailable(false)");
  };
  const current = (): ConfigVersion | undefined => history[history.length - 1];

  return {
    description: "memory store",
    history,
    async getCurrent() {
      check();
      const c = current();
      return c && clone(ConfigVersionSchema, c);
    },
    async getVersion(version) {
      check();
      const c = history.find((v) => v.version === version);
      return c && clone(ConfigVersionSchema, c);
    },
    async applyIfChanged(policy: Policy, expectedVersion: bigint, appliedBy: string): Promise<ApplyResult> {
      check();
      const readVersion = current()?.version ?? 0n;
      if (readVersion !== expectedVersion) {
        throw new MgwError("MGW_ERR_STORE_CONFLICT", `current version is ${readVersion}, expected ${expectedVersion}`);
      }
      const digest = policyDigest(policy);
      if (current()?.digest === digest) return { version: readVersion, changed: false };
      if (hook) {
        const h = hook;
        hook = null;
        h();
      }
      // The transaction's compare: current must not have moved since the read.
      if ((current()?.version ?? 0n) !== readVersion) {
        throw new MgwError("MGW_ERR_STORE_CONFLICT", "the current config changed while applying");
      }
      const next = readVersion + 1n;
      history.push(create(ConfigVersionSchema, {
        version: next,
        policy: clone(PolicySchema, policy),
        digest,
        appliedAt: timestampNow(),
        appliedBy,
      }));
      return { version: next, changed: true };
    },
    async listDataPlanes() {
      check();
      return [...dataPlanes.values()].sort((a, b) => (a.id < b.id ? -1 : 1)).map((d) => clone(DataPlaneSchema, d));
    },
    async listBackendHealth(cluster) {
      check();
      return [...health.values()]
        .filter((h) => cluster === "" || h.cluster === cluster)
        .sort((a, b) => (a.cluster === b.cluster ? (a.backend < b.backend ? -1 : 1) : a.cluster < b.cluster ? -1 : 1))
        .map((h) => clone(BackendHealthSchema, h));
    },
    async listFailovers() {
      check();
      return [];
    },
    async close() {},
    putBackendHealth(h) {
      health.set(`${h.cluster}/${h.backend}`, clone(BackendHealthSchema, h));
    },
    putDataPlane(dp) {
      dataPlanes.set(dp.id, clone(DataPlaneSchema, dp));
    },
    setUnavailable(u) {
      unavailable = u;
    },
    beforeNextWrite(h) {
      hook = h;
    },
  };
}

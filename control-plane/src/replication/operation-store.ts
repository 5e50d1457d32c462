import { create, fromJsonString, toJsonString } from "@bufbuild/protobuf";
import { EtcdLockFailedError, type Etcd3, type Lock } from "etcd3";
import { ClusterEpochSchema, OperationRecordSchema, type ClusterEpoch, type EtcdKeys, type OperationRecord } from "@mysqlgw/proto";
import { MgwError } from "../errors";
import { convertEtcdError } from "../store/etcd-config-store";

/**
 * What the replication operations keep in etcd: the per-cluster lock they
 * share with switchover and failover, their records, and the fencing epoch
 * (read, and a rejoined backend taken off its fenced list). Every call is
 * bounded; etcd failures become MgwError MGW_ERR_STORE_UNAVAILABLE/REJECTED.
 */
export interface OperationStore {
  /**
   * Runs `fn` holding the etcd3 lock keys.clusterLock(cluster) (an etcd3 Lock:
   * that key created under a lease of `lockTtlSeconds`, kept alive while held,
   * gone with the process). Waits up to `waitMs` for a holder to let go, then
   * throws MGW_ERR_REPLICATION_BUSY.
   */
  withClusterLock<T>(cluster: string, waitMs: number, fn: () => Promise<T>): Promise<T>;
  /** Stores `rec` as the next operation (sequence assigned here, returned in the record). */
  record(rec: OperationRecord): Promise<OperationRecord>;
  /** Newest first; `cluster` "" for all. */
  list(cluster: string, limit: number): Promise<OperationRecord[]>;
  /** The cluster's epoch, undefined when it never failed over. */
  readEpoch(cluster: string): Promise<ClusterEpoch | undefined>;
  /**
   * Takes `backend` off the cluster epoch's fenced list (conditional on the
   * key not changing in between; re-read and retried twice). False when it was
   * not fenced.
   */
  unfence(cluster: string, backend: string): Promise<boolean>;
}

export interface EtcdOperationStoreOptions {
  client: Etcd3;
  keys: EtcdKeys;
  /** For messages: "etcd at http://…". */
  description: string;
  callTimeoutMs: number;
  /** TTL of the lock's lease. Default 10 s. */
  lockTtlSeconds?: number;
  /** Records kept: recording one deletes those older than the newest `retention`. Default 10 000; 0: all. */
  retention?: number;
}

export const DEFAULT_OPERATIONS_RETENTION = 10_000;

const LOCK_RETRY_MS = 200;
const RECORD_ATTEMPTS = 5;

export function createEtcdOperationStore(o: EtcdOperationStoreOptions): OperationStore {
  const { client, keys, description, callTimeoutMs } = o;
  const ttl = o.lockTtlSeconds ?? 10;
  const retention = o.retention ?? DEFAULT_OPERATIONS_RETENTION;

  async function call<T>(what: string, op: () => Promise<T>): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new MgwError("MGW_ERR_STORE_UNAVAILABLE", `${description} is unreachable (could not ${what}: no answer within ${callTimeoutMs} ms); check that etcd is running and healthy (etcdctl endpoint health)`)), callTimeoutMs + 250);
    });
    try {
      return await Promise.race([op(), timeout]);
    } catch (err) {
      throw convertEtcdError(err, description, what);
    } finally {
      clearTimeout(timer);
    }
  }

  async function readEpochKv(cluster: string): Promise<{ epoch: ClusterEpoch; modRevision: string } | undefined> {
    const key = keys.clusterEpoch(cluster);
    const res = await call(`read the epoch of cluster ${cluster}`, () => client.get(key).exec());
    const kv = res.kvs[0];
    if (kv === undefined) return undefined;
    try {
      return { epoch: fromJsonString(ClusterEpochSchema, kv.value.toString("utf8"), { ignoreUnknownFields: true }), modRevision: kv.mod_revision };
    } catch (err) {
      throw new MgwError("MGW_ERR_STORE_CORRUPT", `etcd key ${key} does not hold a ClusterEpoch (${(err as Error).message}); fix or delete it with etcdctl`, { cause: err });
    }
  }

  return {
    async withClusterLock(cluster, waitMs, fn) {
      const name = keys.clusterLock(cluster);
      const deadline = Date.now() + waitMs;
      let lock: Lock | null = null;
      for (let attempt = 0; attempt < 10_000; attempt++) {
        const l = client.lock(name).ttl(ttl);
        try {
          await call(`take the lock ${name}`, () => l.acquire());
          lock = l;
          break;
        } catch (err) {
          if (!(err instanceof EtcdLockFailedError) && !((err as { cause?: unknown }).cause instanceof EtcdLockFailedError)) {
            // a grant that succeeded must not linger
            void l.release().catch(() => undefined);
            throw err;
          }
          if (Date.now() + LOCK_RETRY_MS > deadline) {
            throw new MgwError(
              "MGW_ERR_REPLICATION_BUSY",
              `another replication change of cluster ${cluster} is under way (a switchover, a failover or another operation holds the lock ${name}) and did not finish within ${waitMs} ms; nothing was done — run the command again once it is over (mysqlgw operations, mysqlgw failovers)`,
            );
          }
          await new Promise((r) => setTimeout(r, LOCK_RETRY_MS));
        }
      }
      if (lock === null) throw new MgwError("MGW_ERR_REPLICATION_BUSY", `could not take the lock ${name}; run the command again`);
      try {
        return await fn();
      } finally {
        await call(`release the lock ${name}`, () => lock.release()).catch(() => undefined);
      }
    },

    async record(rec) {
      for (let attempt = 0; attempt < RECORD_ATTEMPTS; attempt++) {
        const last = await call("read the last operation", () => client.getAll().prefix(keys.operationsPrefix).sort("Key", "Descend").limit(1).keys());
        const lastSeq = last.length === 0 ? 0n : BigInt(last[0]!.slice(keys.operationsPrefix.length).replace(/^0+(?=\d)/, ""));
        const seq = lastSeq + 1n;
        const stored = create(OperationRecordSchema, { ...rec, sequence: seq });
        const key = keys.operation(seq);
        const res = await call("record the operation", () => client.if(key, "Create", "==", 0).then(client.put(key).value(toJsonString(OperationRecordSchema, stored))).commit());
        if (res.succeeded) {
          if (retention > 0 && seq > BigInt(retention)) {
            // everything before the oldest record kept (bounded growth); a failure here loses nothing
            await call("delete old operations", () => client.delete().inRange({ start: keys.operationsPrefix, end: keys.operation(seq - BigInt(retention) + 1n) }).exec()).catch(() => undefined);
          }
          return stored;
        }
      }
      throw new MgwError("MGW_ERR_STORE_CONFLICT", `could not record the operation: ${RECORD_ATTEMPTS} others were recorded at the same moment; it ran (see its steps) but is missing from mysqlgw operations`);
    },

    async list(cluster, limit) {
      const all = await call("list operations", () => client.getAll().prefix(keys.operationsPrefix).sort("Key", "Descend").strings());
      const out: OperationRecord[] = [];
      // keys are zero-padded sequences: descending key order is newest first
      for (const value of Object.values(all)) {
        if (out.length >= limit) break;
        try {
          const r = fromJsonString(OperationRecordSchema, value, { ignoreUnknownFields: true });
          if (cluster === "" || r.cluster === cluster) out.push(r);
        } catch {
          // a record that does not decode is skipped
        }
      }
      return out.sort((a, b) => (a.sequence > b.sequence ? -1 : a.sequence < b.sequence ? 1 : 0));
    },

    async readEpoch(cluster) {
      return (await readEpochKv(cluster))?.epoch;
    },

    async unfence(cluster, backend) {
      for (let attempt = 0; attempt < 3; attempt++) {
        const cur = await readEpochKv(cluster);
        if (cur === undefined || !cur.epoch.fenced.includes(backend)) return false;
        const next = create(ClusterEpochSchema, { ...cur.epoch, fenced: cur.epoch.fenced.filter((f) => f !== backend) });
        const key = keys.clusterEpoch(cluster);
        const res = await call(`write the epoch of cluster ${cluster}`, () =>
          client.if(key, "Mod", "==", cur.modRevision).then(client.put(key).value(toJsonString(ClusterEpochSchema, next))).commit(),
        );
        if (res.succeeded) return true;
      }
      throw new MgwError("MGW_ERR_STORE_CONFLICT", `the epoch of cluster ${cluster} kept changing while ${backend} was taken off its fenced list; run the command again`);
    },
  };
}

/**
 * An OperationStore in memory, for tests: `lockHeld` makes every lock wait
 * fail as if another control plane held it; `epochs` is the fencing state.
 */
export interface MemoryOperationStore extends OperationStore {
  readonly records: OperationRecord[];
  readonly epochs: Map<string, ClusterEpoch>;
  lockHeld: boolean;
}

export function createMemoryOperationStore(): MemoryOperationStore {
  const records: OperationRecord[] = [];
  const epochs = new Map<string, ClusterEpoch>();
  const held = new Set<string>();
  const store: MemoryOperationStore = {
    records,
    epochs,
    lockHeld: false,
    async withClusterLock(cluster, waitMs, fn) {
      if (store.lockHeld || held.has(cluster)) {
        throw new MgwError("MGW_ERR_REPLICATION_BUSY", `another replication change of cluster ${cluster} is under way (memory store) and did not finish within ${waitMs} ms; nothing was done — run the command again once it is over`);
      }
      held.add(cluster);
      try {
        return await fn();
      } finally {
        held.delete(cluster);
      }
    },
    async record(rec) {
      const stored = create(OperationRecordSchema, { ...rec, sequence: BigInt(records.length + 1) });
      records.push(stored);
      return stored;
    },
    async list(cluster, limit) {
      return records.filter((r) => cluster === "" || r.cluster === cluster).reverse().slice(0, limit);
    },
    async readEpoch(cluster) {
      return epochs.get(cluster);
    },
    async unfence(cluster, backend) {
      const e = epochs.get(cluster);
      if (e === undefined || !e.fenced.includes(backend)) return false;
      epochs.set(cluster, create(ClusterEpochSchema, { ...e, fenced: e.fenced.filter((f) => f !== backend) }));
      return true;
    },
  };
  return store;
}

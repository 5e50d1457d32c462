import { create, fromJsonString, toJsonString } from "@bufbuild/protobuf";
import { timestampNow } from "@bufbuild/protobuf/wkt";
import { Etcd3 } from "etcd3";
import { etcdSecurityOptions } from "@mysqlgw/proto";
import { noop } from "cockatiel";
import { AuditRecordSchema, etcdKeys, type AuditRecord } from "@mysqlgw/proto";
import { MgwError } from "../errors";
import { DEFAULT_AUDIT_RETENTION, type AuditLog } from "../api/audit";
import { convertEtcdError, DEFAULT_ETCD_CALL_TIMEOUT_MS } from "./etcd-config-store";

export interface EtcdAuditLogOptions {
  endpoints: string[];
  prefix?: string;
  callTimeoutMs?: number;
  /** Records kept; each append deletes those more than this many sequences old. 0: keep all. Default 100 000. */
  retention?: number;
}

/** Tries to take the next sequence before giving up (another control plane took each one first). */
const APPEND_ATTEMPTS = 5;

/**
 * The audit log in etcd: one AuditRecord (proto3 JSON) per call at
 * <prefix>/v1/audit/<20-digit sequence>. The next sequence is the newest key's
 * plus one, taken with a transaction that puts the key only if it does not
 * exist yet, so control planes writing at once never share a sequence.
 * Appends through one instance run one at a time.
 */
export function createEtcdAuditLog(options: EtcdAuditLogOptions): AuditLog {
  const keys = etcdKeys(options.prefix);
  const timeoutMs = options.callTimeoutMs ?? DEFAULT_ETCD_CALL_TIMEOUT_MS;
  const retention = BigInt(options.retention ?? DEFAULT_AUDIT_RETENTION);
  const description = `etcd at ${options.endpoints.join(",")}`;
  const client = new Etcd3({
    hosts: options.endpoints,
    ...etcdSecurityOptions(), // --etcd-ca/--etcd-cert/--etcd-key
    dialTimeout: timeoutMs,
    faultHandling: { host: () => noop, global: noop },
    defaultCallOptions: (ctx) => (ctx.isStream ? {} : { deadline: Date.now() + timeoutMs }),
  });

  async function call<T>(what: string, op: () => Promise<T>): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs + 250);
    });
    try {
      return await Promise.race([op(), timeout]);
    } catch (err) {
      throw convertEtcdError(err, description, what);
    } finally {
      clearTimeout(timer);
    }
  }

  const seqOf = (key: string): bigint => BigInt(key.slice(keys.auditPrefix.length));

  async function newest(): Promise<bigint> {
    const ks = await call("read the newest audit record", () => client.getAll().prefix(keys.auditPrefix).sort("Key", "Descend").limit(1).keys());
    return ks.length === 0 ? 0n : seqOf(ks[0]!);
  }

  let chain: Promise<unknown> = Promise.resolve();
  async function append(init: Parameters<AuditLog["append"]>[0]): Promise<bigint> {
    for (let attempt = 0; attempt < APPEND_ATTEMPTS; attempt++) {
      const sequence = (await newest()) + 1n;
      const key = keys.audit(sequence);
      const value = toJsonString(AuditRecordSchema, create(AuditRecordSchema, { ...init, sequence, at: init.at ?? timestampNow() }));
      const res = await call("write an audit record", () => client.if(key, "Create", "==", 0).then(client.put(key).value(value)).commit());
      if (!res.succeeded) continue;
      if (retention > 0n && sequence > retention) {
        // every record older than the retention, including any an earlier failed delete left
        const end = keys.audit(sequence - retention + 1n);
        await call("delete old audit records", () => client.delete().inRange({ start: keys.auditPrefix, end }).exec());
      }
      return sequence;
    }
    throw new MgwError("MGW_ERR_STORE_CONFLICT", `could not take an audit sequence in ${APPEND_ATTEMPTS} attempts (other control planes wrote at the same time)`);
  }

  return {
    append(init) {
      const run = chain.then(() => append(init));
      chain = run.catch(() => undefined);
      return run;
    },
    async list(limit, before) {
      const end = before === 0n ? undefined : keys.audit(before);
      const all = await call("list audit records", () => {
        const q = client.getAll();
        (end === undefined ? q.prefix(keys.auditPrefix) : q.inRange({ start: keys.auditPrefix, end })).sort("Key", "Descend").limit(limit + 1);
        return q.exec();
      });
      const records: AuditRecord[] = [];
      for (const kv of all.kvs.slice(0, limit)) {
        try {
          records.push(fromJsonString(AuditRecordSchema, kv.value.toString("utf8"), { ignoreUnknownFields: true }));
        } catch (err) {
          throw new MgwError("MGW_ERR_STORE_CORRUPT", `etcd key ${kv.key.toString("utf8")} does not hold an AuditRecord (${(err as Error).message})`, { cause: err });
        }
      }
      const more = all.kvs.length > limit;
      return { records, nextBefore: more && records.length > 0 ? records[records.length - 1]!.sequence : 0n };
    },
    async close() {
      client.close();
    },
  };
}

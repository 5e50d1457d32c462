import cluster from "node:cluster";
import { create, fromJsonString, toJsonString } from "@bufbuild/protobuf";
import { timestampNow } from "@bufbuild/protobuf/wkt";
import { Etcd3, type Lease } from "etcd3";
import { etcdSecurityOptions } from "@mysqlgw/proto";
import type { Logger } from "pino";
import { SwitchoverAckSchema, SwitchoverHoldSchema, type EtcdKeys } from "@mysqlgw/proto";
import { createEtcdHealthSource, parseEpochKey, type EtcdHealthSource } from "../config/etcd-health-source";
import { createSwitchoverHolds, type HoldReport, type SwitchoverHoldsReceiver } from "../session/switchover-hold";
import { withTimeout } from "../config/with-timeout";

/**
 * Planned switchovers between etcd and the workers (docs/monitor.md,
 * "Planned switchover"). The supervisor watches `<prefix>/v1/switchover/hold/`
 * and relays each cluster's SwitchoverHold to every worker (IPC
 * `mgw:switchover`, or straight to the in-process receiver with --workers 0);
 * workers report their open transactions, held statements and ended
 * transactions (`mgw:switchover-report`), and the supervisor writes their sum
 * as this data plane's SwitchoverAck at `<prefix>/v1/switchover/ack/<cluster>/<id>`,
 * under a lease of its own (gone with the process). `drained` is true once
 * every live worker reported the hold's epoch with no open transaction.
 * A starting worker asks for the holds known (`mgw:switchover-sync`).
 */
export interface SwitchoverRelay {
  start(): void;
  stop(): Promise<void>;
}

interface HoldMessage {
  t: "mgw:switchover";
  cluster: string;
  hold: string | null;
}

export interface SwitchoverRelayOptions {
  endpoints: string[];
  keys: EtcdKeys;
  /** This data plane's id (the ack key's last segment). */
  id: string;
  timeoutMs: number;
  logger: Logger;
  /** With --workers 0: the supervisor serves the listeners itself. */
  local: boolean;
}

/** Ack lease TTL, seconds. */
const ACK_LEASE_TTL_S = 5;
/** An unchanged ack is rewritten this often. */
const ACK_REFRESH_MS = 1000;

export function createSwitchoverRelay(options: SwitchoverRelayOptions): SwitchoverRelay {
  const { keys, logger: log, id } = options;
  const holds = new Map<string, { json: string; epoch: bigint }>();
  /** cluster → worker key → its last report. */
  const reports = new Map<string, Map<string, HoldReport>>();
  const written = new Map<string, { text: string; at: number }>();
  const client = new Etcd3({
    hosts: options.endpoints,
    ...etcdSecurityOptions(), // --etcd-ca/--etcd-cert/--etcd-key
    dialTimeout: options.timeoutMs,
    defaultCallOptions: (ctx) => (ctx.isStream ? {} : { deadline: Date.now() + options.timeoutMs }),
  });
  let lease: Lease | null = null;
  let stopped = false;
  const local: SwitchoverHoldsReceiver | null = options.local ? createSwitchoverHolds({ logger: log, report: (r) => onReport("local", r) }) : null;

  function workerKeys(): string[] {
    if (local !== null) return ["local"];
    return Object.values(cluster.workers ?? {})
      .filter((w) => w !== undefined && w.isConnected())
      .map((w) => String(w!.id));
  }

  function onReport(worker: string, r: HoldReport): void {
    let m = reports.get(r.cluster);
    if (m === undefined) reports.set(r.cluster, (m = new Map()));
    m.set(worker, r);
    void writeAck(r.cluster);
  }

  async function ackLease(): Promise<Lease> {
    if (lease !== null) return lease;
    const l = client.lease(ACK_LEASE_TTL_S, { autoKeepAlive: true });
    l.on("lost", () => {
      if (lease === l) lease = null;
    });
    lease = l;
    await withTimeout(l.grant(), options.timeoutMs, "grant the switchover ack lease");
    return l;
  }

  /** Clusters whose ack is being written, and whether a newer state waits behind that write. */
  const writing = new Map<string, boolean>();

  /** Writes the cluster's ack, one write at a time per cluster (a stale write must not land after a newer one). */
  async function writeAck(c: string): Promise<void> {
    if (writing.has(c)) {
      writing.set(c, true);
      return;
    }
    writing.set(c, false);
    try {
      for (let i = 0; i < 1000; i++) {
        await writeAckOnce(c);
        if (writing.get(c) !== true) break;
        writing.set(c, false);
      }
    } finally {
      writing.delete(c);
    }
  }

  async function writeAckOnce(c: string): Promise<void> {
    if (stopped) return;
    const hold = holds.get(c);
    if (hold === undefined) {
      // the hold is gone: so is the ack
      await withTimeout(client.delete().key(keys.switchoverAck(c, id)).exec(), options.timeoutMs, "delete the switchover ack").catch(() => undefined);
      return;
    }
    const m = reports.get(c) ?? new Map<string, HoldReport>();
    const epoch = String(hold.epoch);
    let open = 0;
    let held = 0;
    let ended = 0;
    let all = true;
    for (const w of workerKeys()) {
      const r = m.get(w);
      if (r === undefined || r.epoch !== epoch) {
        all = false;
        continue;
      }
      open += r.open;
      held += r.held;
      ended += r.ended;
    }
    const drained = all && open === 0;
    const text = `${epoch}/${open}/${held}/${ended}/${drained}`;
    const prev = written.get(c);
    const now = Date.now();
    if (prev !== undefined && prev.text === text && now - prev.at < ACK_REFRESH_MS) return;
    written.set(c, { text, at: now });
    const ack = create(SwitchoverAckSchema, { dataPlaneId: id, cluster: c, epoch: hold.epoch, openTransactions: open, drained, heldStatements: held, transactionsEnded: ended, at: timestampNow() });
    try {
      const l = await ackLease();
      await withTimeout(l.put(keys.switchoverAck(c, id)).value(toJsonString(SwitchoverAckSchema, ack)).exec(), options.timeoutMs, "write the switchover ack");
    } catch (err) {
      written.delete(c);
      log.warn({ cluster: c, err: (err as Error).message }, "cannot write this data plane's switchover ack; retried at the next report");
    }
  }

  function relay(c: string, json: string | null): void {
    if (json === null) {
      holds.delete(c);
      reports.delete(c);
      written.delete(c);
      void writeAck(c);
    } else {
      try {
        holds.set(c, { json, epoch: fromJsonString(SwitchoverHoldSchema, json, { ignoreUnknownFields: true }).epoch });
      } catch {
        // the receivers say it does not decode
      }
    }
    if (local !== null) {
      local.apply(c, json);
      return;
    }
    const m: HoldMessage = { t: "mgw:switchover", cluster: c, hold: json };
    for (const w of Object.values(cluster.workers ?? {})) {
      try {
        if (w !== undefined && w.isConnected()) w.send(m);
      } catch {
        // going away
      }
    }
  }

  const onWorkerMessage = (worker: { id: number; isConnected(): boolean; send(m: HoldMessage): boolean }, m: unknown): void => {
    if (typeof m !== "object" || m === null) return;
    const r = m as Record<string, unknown>;
    if (r.t === "mgw:switchover-sync") {
      try {
        for (const [c, h] of holds) worker.send({ t: "mgw:switchover", cluster: c, hold: h.json });
      } catch {
        // going away
      }
      return;
    }
    if (r.t !== "mgw:switchover-report" || typeof r.cluster !== "string" || typeof r.epoch !== "string") return;
    const n = (v: unknown): number => (typeof v === "number" && Number.isInteger(v) && v >= 0 ? v : 0);
    onReport(String(worker.id), { cluster: r.cluster, epoch: r.epoch, open: n(r.open), held: n(r.held), ended: n(r.ended) });
  };

  const source: EtcdHealthSource = createEtcdHealthSource({
    endpoints: options.endpoints,
    keys,
    timeoutMs: options.timeoutMs,
    logger: log,
    onHealth: (c, _b, json) => relay(c, json),
    prefix: keys.switchoverHoldPrefix,
    parseKey: parseEpochKey,
    what: "switchover holds",
  });

  return {
    start() {
      if (local === null) cluster.on("message", onWorkerMessage);
      source.start();
    },
    async stop() {
      stopped = true;
      await source.stop();
      if (local === null) cluster.off("message", onWorkerMessage);
      local?.stop();
      const l = lease;
      lease = null;
      if (l !== null) await withTimeout(l.revoke(), options.timeoutMs, "revoke the switchover ack lease").catch(() => undefined);
      client.close();
    },
  };
}

/** Worker side: follows the relayed holds and reports to the supervisor. */
export function attachSwitchoverReceiver(log: Logger): SwitchoverHoldsReceiver {
  const receiver = createSwitchoverHolds({
    logger: log,
    report: (r) => {
      if (process.connected && process.send !== undefined) process.send({ t: "mgw:switchover-report", ...r });
    },
  });
  process.on("message", (m: unknown) => {
    if (typeof m !== "object" || m === null) return;
    const r = m as Record<string, unknown>;
    if (r.t === "mgw:switchover" && typeof r.cluster === "string" && (r.hold === null || typeof r.hold === "string")) receiver.apply(r.cluster, r.hold);
  });
  if (process.connected && process.send !== undefined) process.send({ t: "mgw:switchover-sync" });
  return receiver;
}

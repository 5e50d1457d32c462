import pino from "pino";
import { create } from "@bufbuild/protobuf";
import { ConfigVersionSchema } from "@mysqlgw/proto";
import type { ApplyResult } from "../types";
import { encodeConfig, type ConfigDoc } from "../config/config-codec";
import type { DiskConfigCache } from "../config/disk-cache";
import { createRegistryEntry } from "../registry/registry-entry";
import { SupervisorError } from "./errors";
import { createSupervisor } from "./supervisor";
import type { WorkerHandle } from "./worker-handle";

function cfg(version: bigint, listeners: string[] = ["a"]): ConfigDoc {
  return encodeConfig(
    create(ConfigVersionSchema, {
      version,
      policy: { listeners: listeners.map((name, i) => ({ name, port: 6000 + i, cluster: "c" })) },
    }),
  );
}

function fakeWorker(index: number) {
  const applied: bigint[] = [];
  const w = {
    index,
    applied,
    failVersions: new Set<bigint>(),
    exitOn: new Set<bigint>(),
    gate: null as Promise<void> | null,
    drained: 0,
    async apply(doc: ConfigDoc): Promise<ApplyResult> {
      if (w.gate !== null) await w.gate;
      if (w.exitOn.has(doc.version)) throw new SupervisorError("MGW_ERR_WORKER_EXITED", "gone");
      if (w.failVersions.has(doc.version)) throw new SupervisorError("MGW_ERR_WORKER_APPLY_FAILED", `cannot ${doc.version}`);
      applied.push(doc.version);
      return { version: doc.version, listening: (doc.config.policy?.listeners ?? []).map((l) => l.name) };
    },
    async drain() {
      w.drained++;
    },
  };
  return w satisfies WorkerHandle;
}

function setup() {
  const lines: Array<Record<string, unknown>> = [];
  const logger = pino({ level: "debug" }, { write: (s: string) => lines.push(JSON.parse(s)) });
  const saved: bigint[] = [];
  const cache: DiskConfigCache = {
    file: "/nonexistent/config.json",
    load: () => null,
    save: async (d) => {
      saved.push(d.version);
    },
  };
  const registry = createRegistryEntry({ id: "dp1", hostname: "h", pid: 1, workers: 2, buildVersion: "t" });
  let published = 0;
  const sup = createSupervisor({ logger, cache, registry, onServed: () => published++ });
  const serving = () => lines.filter((l) => l.msg === "serving config");
  return {
    sup,
    lines,
    saved,
    registry,
    serving,
    get published() {
      return published;
    },
  };
}

function start(sup: ReturnType<typeof setup>["sup"], ...workers: WorkerHandle[]) {
  for (const w of workers) {
    sup.addWorker(w);
    sup.workerReady(w);
  }
}

describe("supervisor", () => {
  it("serves a config once every worker acked it: logs, saves, publishes", async () => {
    const t = setup();
    const w0 = fakeWorker(0);
    const w1 = fakeWorker(1);
    start(t.sup, w0, w1);
    t.sup.offer(cfg(1n, ["a", "b"]), "etcd");
    await t.sup.idle();
    expect(w0.applied).toEqual([1n]);
    expect(w1.applied).toEqual([1n]);
    expect(t.serving()).toEqual([
      expect.objectContaining({ version: "1", listeners: ["a", "b"], source: "etcd", level: 30 }),
    ]);
    expect(t.saved).toEqual([1n]);
    expect(t.published).toBe(1);
    expect(JSON.parse(t.registry.toJson())).toMatchObject({
      id: "dp1",
      configVersion: "1",
      listeners: ["a", "b"],
      configSource: "etcd",
      workers: 2,
      buildVersion: "t",
    });
    expect(t.sup.describeServing()).toBe("config version 1 (etcd)");
  });

  it("waits for workers that are not ready yet", async () => {
    const t = setup();
    const w0 = fakeWorker(0);
    const w1 = fakeWorker(1);
    t.sup.addWorker(w0);
    t.sup.addWorker(w1);
    t.sup.workerReady(w0);
    t.sup.offer(cfg(1n), "etcd");
    await t.sup.idle();
    expect(w0.applied).toEqual([1n]);
    expect(t.serving()).toHaveLength(0);
    t.sup.workerReady(w1);
    await t.sup.idle();
    expect(w1.applied).toEqual([1n]);
    expect(t.serving()).toHaveLength(1);
  });

  it("ignores versions not higher than the one served, and invalid ones never reach it", async () => {
    const t = setup();
    const w = fakeWorker(0);
    start(t.sup, w);
    t.sup.offer(cfg(5n), "etcd");
    await t.sup.idle();
    t.sup.offer(cfg(5n), "etcd");
    t.sup.offer(cfg(3n), "etcd");
    t.sup.offer(cfg(3n), "etcd");
    await t.sup.idle();
    expect(w.applied).toEqual([5n]);
    expect(t.lines.filter((l) => String(l.msg).includes("older than version 5"))).toHaveLength(1);
  });

  it("applies only the newest of configs that arrive during an apply", async () => {
    const t = setup();
    const w = fakeWorker(0);
    let open!: () => void;
    w.gate = new Promise((r) => (open = r));
    start(t.sup, w);
    await t.sup.idle();
    t.sup.offer(cfg(1n), "etcd");
    t.sup.offer(cfg(2n), "etcd");
    t.sup.offer(cfg(3n), "etcd");
    w.gate = null;
    open();
    await t.sup.idle();
    expect(w.applied).toEqual([1n, 3n]);
    // Version 1 was superseded before it was served.
    expect(t.serving().map((l) => l.version)).toEqual(["3"]);
  });

  it("serves a disk copy, then flips the source to etcd without re-applying the same version", async () => {
    const t = setup();
    const w = fakeWorker(0);
    start(t.sup, w);
    t.sup.offer(cfg(4n), "disk");
    await t.sup.idle();
    expect(t.saved).toEqual([]); // already on disk
    t.sup.offer(cfg(4n), "etcd");
    await t.sup.idle();
    expect(w.applied).toEqual([4n]);
    expect(t.serving().map((l) => l.source)).toEqual(["disk", "etcd"]);
    expect(JSON.parse(t.registry.toJson()).configSource).toBe("etcd");
  });

  it("marks a rejected version failed, rolls the others back and keeps serving the previous one", async () => {
    const t = setup();
    const w0 = fakeWorker(0);
    const w1 = fakeWorker(1);
    start(t.sup, w0, w1);
    t.sup.offer(cfg(1n), "etcd");
    await t.sup.idle();
    w1.failVersions.add(2n);
    t.sup.offer(cfg(2n, ["a", "b"]), "etcd");
    await t.sup.idle();
    expect(w0.applied).toEqual([1n, 2n, 1n]);
    expect(w1.applied).toEqual([1n, 1n]);
    expect(t.serving().map((l) => l.version)).toEqual(["1"]);
    expect(t.sup.serving()?.doc.version).toBe(1n);
    const err = t.lines.find((l) => l.level === 50);
    expect(String(err?.msg)).toMatch(/config version 2 was rejected; it will not be retried; still serving config version 1 \(etcd\)/);
    // Not retried when seen again (e.g. after an etcd reconnect)…
    t.sup.offer(cfg(2n), "etcd");
    await t.sup.idle();
    expect(w0.applied).toEqual([1n, 2n, 1n]);
    // …but the next version goes through.
    t.sup.offer(cfg(3n), "etcd");
    await t.sup.idle();
    expect(t.serving().map((l) => l.version)).toEqual(["1", "3"]);
    expect(t.saved).toEqual([1n, 3n]);
  });

  it("does not loop when a worker cannot return to the served version either", async () => {
    const t = setup();
    const w0 = fakeWorker(0);
    const w1 = fakeWorker(1);
    start(t.sup, w0, w1);
    t.sup.offer(cfg(1n), "etcd");
    await t.sup.idle();
    w1.failVersions.add(1n);
    w1.failVersions.add(2n);
    t.sup.offer(cfg(2n), "etcd");
    await t.sup.idle();
    expect(w0.applied).toEqual([1n, 2n, 1n]);
    expect(w1.applied).toEqual([1n]);
    const errors = t.lines.filter((l) => l.level === 50).map((l) => String(l.msg));
    expect(errors).toEqual([
      "config version 2 was rejected; it will not be retried; still serving config version 1 (etcd)",
      "could not return every worker to config version 1; the workers listed keep what they had",
    ]);
    // The next version is still tried on every worker.
    t.sup.offer(cfg(3n), "etcd");
    await t.sup.idle();
    expect(w1.applied).toEqual([1n, 3n]);
    expect(t.sup.serving()?.doc.version).toBe(3n);
  });

  it("rejecting the very first config leaves nothing served and does not loop", async () => {
    const t = setup();
    const w0 = fakeWorker(0);
    w0.failVersions.add(1n);
    start(t.sup, w0);
    t.sup.offer(cfg(1n), "disk");
    await t.sup.idle();
    expect(t.sup.serving()).toBeNull();
    expect(t.sup.describeServing()).toBe("nothing (no config yet)");
    t.sup.offer(cfg(2n), "etcd");
    await t.sup.idle();
    expect(t.sup.serving()?.doc.version).toBe(2n);
  });

  it("gives a replacement worker the served config without logging a new version", async () => {
    const t = setup();
    const w0 = fakeWorker(0);
    const w1 = fakeWorker(1);
    start(t.sup, w0, w1);
    t.sup.offer(cfg(1n), "etcd");
    await t.sup.idle();
    t.sup.removeWorker(w1);
    const w1b = fakeWorker(1);
    start(t.sup, w1b);
    await t.sup.idle();
    expect(w1b.applied).toEqual([1n]);
    expect(t.serving()).toHaveLength(1);
  });

  it("does not count a worker that exits during an apply as a rejection", async () => {
    const t = setup();
    const w0 = fakeWorker(0);
    const w1 = fakeWorker(1);
    start(t.sup, w0, w1);
    w1.exitOn.add(1n);
    t.sup.offer(cfg(1n), "etcd");
    await t.sup.idle();
    expect(t.serving()).toHaveLength(0);
    t.sup.removeWorker(w1);
    await t.sup.idle();
    expect(t.serving().map((l) => l.version)).toEqual(["1"]);
  });

  it("drains every worker on shutdown and takes no config after", async () => {
    const t = setup();
    const w0 = fakeWorker(0);
    const w1 = fakeWorker(1);
    start(t.sup, w0, w1);
    await t.sup.shutdown(100);
    expect([w0.drained, w1.drained]).toEqual([1, 1]);
    t.sup.offer(cfg(1n), "etcd");
    await t.sup.idle();
    expect(w0.applied).toEqual([]);
  });
});

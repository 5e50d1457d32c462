import pino from "pino";
import { create } from "@bufbuild/protobuf";
import { ConfigVersionSchema, type ConfigVersion } from "@mysqlgw/proto";
import type { ApplyResult, ListenerManager } from "../types";
import { encodeConfig } from "../config/config-codec";
import { readFromWorkerMessage, readToWorkerMessage, type FromWorkerMessage, type ToWorkerMessage } from "./ipc-protocol";
import { createIpcWorkerHandle } from "./worker-handle";
import { createWorkerRuntime } from "./worker-runtime";

const silent = pino({ level: "silent" });

function cfg(version: bigint, listeners: string[] = ["a"]) {
  return encodeConfig(
    create(ConfigVersionSchema, {
      version,
      policy: { listeners: listeners.map((name, i) => ({ name, port: 6000 + i, cluster: "c" })) },
    }),
  );
}

/** A ListenerManager that records calls and can be told to fail or stall. */
function fakeManager() {
  const calls: string[] = [];
  let active = 0;
  let maxActive = 0;
  const m = {
    calls,
    failNext: null as Error | null,
    delayMs: 0,
    get maxActive() {
      return maxActive;
    },
    async apply(config: ConfigVersion): Promise<ApplyResult> {
      active++;
      maxActive = Math.max(maxActive, active);
      calls.push(`apply ${config.version}`);
      try {
        if (m.delayMs > 0) await new Promise((r) => setTimeout(r, m.delayMs));
        if (m.failNext !== null) {
          const e = m.failNext;
          m.failNext = null;
          throw e;
        }
        return { version: config.version, listening: (config.policy?.listeners ?? []).map((l) => l.name) };
      } finally {
        active--;
      }
    },
    async drain(timeoutMs: number) {
      calls.push(`drain ${timeoutMs}`);
    },
    connectionCount: () => 0,
  };
  return m satisfies ListenerManager;
}

/** Wires a supervisor-side handle to a worker runtime through JSON round-trips, like process.send does. */
function wire(manager: ListenerManager) {
  const toWorker: ToWorkerMessage[] = [];
  const fromWorker: FromWorkerMessage[] = [];
  let drainedCalls = 0;
  let connected = true;
  const handle = createIpcWorkerHandle({
    index: 3,
    applyTimeoutMs: 200,
    send: (m) => {
      if (!connected) return false;
      toWorker.push(m);
      const copy: unknown = JSON.parse(JSON.stringify(m));
      setImmediate(() => runtime.handleMessage(copy));
      return true;
    },
  });
  let readies = 0;
  const runtime = createWorkerRuntime({
    manager,
    logger: silent,
    send: (m) => {
      fromWorker.push(m);
      const copy: unknown = JSON.parse(JSON.stringify(m));
      setImmediate(() => {
        if (handle.handleMessage(copy)) readies++;
      });
    },
    onDrained: () => drainedCalls++,
  });
  return {
    handle,
    runtime,
    toWorker,
    fromWorker,
    get readies() {
      return readies;
    },
    get drainedCalls() {
      return drainedCalls;
    },
    disconnect: () => (connected = false),
  };
}

const tick = () => new Promise((r) => setImmediate(r));

describe("IPC message validation", () => {
  it.each([
    [null],
    ["mgw:apply"],
    [{ t: "mgw:apply", seq: 1 }],
    [{ t: "mgw:apply", seq: -1, config: "{}" }],
    [{ t: "mgw:apply", seq: 1.5, config: "{}" }],
    [{ t: "mgw:drain", timeoutMs: "5" }],
    [{ t: "other" }],
    [{ cmd: "NODE_CLUSTER" }],
  ])("a worker ignores %j", (m) => {
    expect(readToWorkerMessage(m)).toBeNull();
  });

  it.each([
    [{ t: "mgw:applied", seq: 1, version: 7, listening: [] }],
    [{ t: "mgw:applied", seq: 1, version: "-7", listening: [] }],
    [{ t: "mgw:applied", seq: 1, version: "7", listening: [1] }],
    [{ t: "mgw:apply-failed", seq: 1, error: "x" }],
    [{ t: "nope" }],
    [undefined],
  ])("the supervisor ignores %j", (m) => {
    expect(readFromWorkerMessage(m)).toBeNull();
  });

  it("keeps only the known fields", () => {
    expect(readToWorkerMessage({ t: "mgw:apply", seq: 2, config: "{}", extra: 1 })).toEqual({
      t: "mgw:apply",
      seq: 2,
      config: "{}",
    });
  });
});

describe("supervisor ↔ worker over IPC", () => {
  it("announces readiness", async () => {
    const w = wire(fakeManager());
    w.runtime.ready();
    await tick();
    expect(w.readies).toBe(1);
  });

  it("applies a config and acks the ApplyResult with the version as a string", async () => {
    const m = fakeManager();
    const w = wire(m);
    const res = await w.handle.apply(cfg(12345678901234567n, ["a", "b"]));
    expect(res).toEqual({ version: 12345678901234567n, listening: ["a", "b"] });
    expect(w.toWorker[0]).toMatchObject({ t: "mgw:apply", seq: 1 });
    expect(w.fromWorker[0]).toEqual({ t: "mgw:applied", seq: 1, version: "12345678901234567", listening: ["a", "b"] });
    expect(m.calls).toEqual(["apply 12345678901234567"]);
  });

  it("turns a manager error into a rejected apply carrying its code", async () => {
    const m = fakeManager();
    m.failNext = Object.assign(new Error("listener 'a' cannot listen on 0.0.0.0:6000 (EADDRINUSE)"), {
      code: "MGW_ERR_LISTENER_BIND",
    });
    const w = wire(m);
    await expect(w.handle.apply(cfg(2n))).rejects.toMatchObject({
      code: "MGW_ERR_WORKER_APPLY_FAILED",
      message: expect.stringContaining("EADDRINUSE"),
      cause: { code: "MGW_ERR_LISTENER_BIND" },
    });
    // The next apply works again.
    await expect(w.handle.apply(cfg(3n))).resolves.toMatchObject({ version: 3n });
  });

  it("refuses a config the worker cannot parse", async () => {
    const w = wire(fakeManager());
    const bad = { ...cfg(2n), json: "{not json" };
    await expect(w.handle.apply(bad)).rejects.toMatchObject({ code: "MGW_ERR_WORKER_APPLY_FAILED" });
  });

  it("serializes applies in arrival order", async () => {
    const m = fakeManager();
    m.delayMs = 20;
    const w = wire(m);
    const results = await Promise.all([w.handle.apply(cfg(1n)), w.handle.apply(cfg(2n)), w.handle.apply(cfg(3n))]);
    expect(results.map((r) => r.version)).toEqual([1n, 2n, 3n]);
    expect(m.calls).toEqual(["apply 1", "apply 2", "apply 3"]);
    expect(m.maxActive).toBe(1);
  });

  it("times out an apply the worker never answers", async () => {
    const m = fakeManager();
    m.delayMs = 300;
    const w = wire(m);
    await expect(w.handle.apply(cfg(1n))).rejects.toMatchObject({ code: "MGW_ERR_WORKER_APPLY_TIMEOUT" });
    await w.runtime.idle(); // the late answer is dropped quietly
  });

  it("rejects pending and later applies when the worker exits", async () => {
    const m = fakeManager();
    m.delayMs = 50;
    const w = wire(m);
    const p = w.handle.apply(cfg(1n));
    await tick();
    w.handle.handleExit("signal SIGKILL");
    await expect(p).rejects.toMatchObject({ code: "MGW_ERR_WORKER_EXITED", message: expect.stringContaining("SIGKILL") });
    await expect(w.handle.apply(cfg(2n))).rejects.toMatchObject({ code: "MGW_ERR_WORKER_EXITED" });
    expect(w.handle.exited).toBe(true);
  });

  it("rejects at once when the channel is closed", async () => {
    const w = wire(fakeManager());
    w.disconnect();
    await expect(w.handle.apply(cfg(1n))).rejects.toMatchObject({ code: "MGW_ERR_WORKER_EXITED" });
  });

  it("drains once, acks, then refuses applies", async () => {
    const m = fakeManager();
    const w = wire(m);
    await w.handle.apply(cfg(1n));
    await w.handle.drain(1234);
    expect(m.calls).toEqual(["apply 1", "drain 1234"]);
    expect(w.drainedCalls).toBe(1);
    await w.runtime.drain(1); // idempotent
    expect(w.drainedCalls).toBe(1);
    await expect(w.handle.apply(cfg(2n))).rejects.toMatchObject({ code: "MGW_ERR_WORKER_APPLY_FAILED" });
    expect(w.fromWorker.at(-1)).toMatchObject({ t: "mgw:apply-failed", code: "MGW_ERR_WORKER_DRAINING" });
  });

  it("waits for an apply in progress before draining", async () => {
    const m = fakeManager();
    m.delayMs = 30;
    const w = wire(m);
    const p = w.handle.apply(cfg(1n));
    const d = w.handle.drain(10);
    await Promise.all([p, d]);
    expect(m.calls).toEqual(["apply 1", "drain 10"]);
  });
});

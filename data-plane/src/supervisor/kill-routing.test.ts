import { readFromWorkerMessage, readToWorkerMessage, type KillMessage, type ToWorkerMessage } from "./ipc-protocol";
import { createIpcWorkerHandle } from "./worker-handle";

describe("KILL over the supervisor IPC", () => {
  it("narrows mgw:kill and mgw:kill-result in both directions and drops malformed ones", () => {
    const kill = { t: "mgw:kill", seq: 3, target: 0x01000005, user: "shop", query: true };
    const result = { t: "mgw:kill-result", seq: 3, errno: 1095, sqlState: "HY000", message: "You are not owner of thread 5" };
    expect(readToWorkerMessage(kill)).toEqual(kill);
    expect(readFromWorkerMessage(kill)).toEqual(kill);
    expect(readToWorkerMessage(result)).toEqual(result);
    expect(readFromWorkerMessage(result)).toEqual(result);
    expect(readToWorkerMessage({ ...kill, target: -1 })).toBeNull();
    expect(readToWorkerMessage({ ...kill, target: 2 ** 32 })).toBeNull();
    expect(readFromWorkerMessage({ ...kill, query: "yes" })).toBeNull();
    expect(readFromWorkerMessage({ ...result, errno: "1095" })).toBeNull();
  });

  it("forwards a KILL to its worker and resolves with the worker's answer", async () => {
    const sent: ToWorkerMessage[] = [];
    const h = createIpcWorkerHandle({ index: 1, send: (m) => (sent.push(m), true) });
    const p = h.kill({ target: 0x01000007, user: "shop", query: false });
    expect(sent).toEqual([{ t: "mgw:kill", seq: expect.any(Number), target: 0x01000007, user: "shop", query: false }]);
    const seq = (sent[0] as KillMessage).seq;
    h.handleMessage({ t: "mgw:kill-result", seq, errno: 0, sqlState: "00000", message: "" });
    await expect(p).resolves.toEqual({ errno: 0, sqlState: "00000", message: "" });
  });

  it("answers 1094 when the worker exits first or the channel is closed, 1105 when it does not answer in time", async () => {
    const h = createIpcWorkerHandle({ index: 2, send: () => true, killTimeoutMs: 50 });
    const pending = h.kill({ target: 0x02000001, user: "u", query: true });
    h.handleExit("code 1");
    await expect(pending).resolves.toMatchObject({ errno: 1094, message: "Unknown thread id: 33554433" });
    const closed = createIpcWorkerHandle({ index: 2, send: () => false });
    await expect(closed.kill({ target: 1, user: "u", query: true })).resolves.toMatchObject({ errno: 1094 });
    const silent = createIpcWorkerHandle({ index: 3, send: () => true, killTimeoutMs: 30 });
    await expect(silent.kill({ target: 1, user: "u", query: true })).resolves.toMatchObject({ errno: 1105 });
  });

  it("hands a worker's own KILL request to onKill, and answers 1094 without a router", () => {
    const asked: KillMessage[] = [];
    const h = createIpcWorkerHandle({ index: 0, send: () => true, onKill: (m) => asked.push(m) });
    h.handleMessage({ t: "mgw:kill", seq: 9, target: 0x01000002, user: "shop", query: true });
    expect(asked).toEqual([{ t: "mgw:kill", seq: 9, target: 0x01000002, user: "shop", query: true }]);
    const sent: ToWorkerMessage[] = [];
    const lone = createIpcWorkerHandle({ index: 0, send: (m) => (sent.push(m), true) });
    lone.handleMessage({ t: "mgw:kill", seq: 4, target: 7, user: "shop", query: false });
    expect(sent).toEqual([{ t: "mgw:kill-result", seq: 4, errno: 1094, sqlState: "HY000", message: "Unknown thread id: 7" }]);
  });
});

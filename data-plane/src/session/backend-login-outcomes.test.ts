// Every backend login reports its outcome to the cluster's ClusterState
// (BackendTarget.loginOutcomes), which ejects a backend after consecutive
// failures to reach it (routing/backend-state.ts). Fake backends on port 0.
import { Buffer } from "node:buffer";
import * as net from "node:net";
import { LoadBalancing } from "@mysqlgw/proto";
import { PacketFramer } from "../protocol/framer";
import { buildHandshakeV10 } from "../protocol/packets/handshake-v10";
import { buildOk } from "../protocol/packets/ok";
import { buildErr } from "../protocol/packets/err";
import { Capability } from "../protocol/constants";
import { ClusterState } from "../routing/backend-state";
import { BackendHandshake, type BackendLoginParams } from "./backend-connection";
import type { BackendTarget } from "./config-snapshot";

/** A backend that greets, then answers the login with `reply` (OK or ERR). */
async function backend(reply: "ok" | "err"): Promise<{ port: number; close(): Promise<void> }> {
  const server = net.createServer((s) => {
    s.on("error", () => {});
    const f = new PacketFramer({ maxPacketSize: 1 << 20 }, (seq) => {
      s.write(reply === "ok" ? buildOk({}, 0, seq + 1) : buildErr({ errno: 1045, sqlState: "28000", message: "Access denied" }, seq + 1));
    });
    s.on("data", (d) => f.push(d));
    s.write(
      buildHandshakeV10({
        protocolVersion: 10,
        serverVersion: "10.11.6-MariaDB",
        connectionId: 1,
        authPluginData: Buffer.from("abcdefghij0123456789"),
        capabilities: (0xdfffffff & ~Capability.Ssl) >>> 0,
        mariadbCapabilities: 0,
        characterSet: 45,
        statusFlags: 2,
        authPluginName: "mysql_native_password",
      }),
    );
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return { port: (server.address() as net.AddressInfo).port, close: () => new Promise((r) => server.close(() => r())) };
}

function params(timeoutMs = 1000): BackendLoginParams {
  return {
    user: "app",
    password: "pw",
    clientCapabilities: (Capability.Protocol41 | Capability.DeprecateEof) >>> 0,
    maxPacketSize: 1 << 24,
    characterSet: 45,
    database: null,
    connectAttributes: new Map(),
    clientAddress: "192.0.2.7:4242",
    timeoutMs,
    maxPacketSize4Handshake: 1 << 16,
  };
}

function cluster(): { state: ClusterState; target(port: number): BackendTarget } {
  const state = new ClusterState("c", { ejectAfterFailures: 2, ejectBaseMs: 60000 });
  state.setBackends([{ name: "b", host: "127.0.0.1", port: 1, weight: 1 }], LoadBalancing.ROUND_ROBIN, null);
  return { state, target: (port) => ({ name: "b", host: "127.0.0.1", port, weight: 1, loginOutcomes: state }) };
}

const failures = (s: ClusterState): number => s.snapshot()[0]!.consecutiveConnectFailures;

describe("backend login outcomes", () => {
  it("refused connections and timeouts count; two in a row eject the backend; a login that works forgets them", async () => {
    const { state, target } = cluster();
    const gone = await backend("ok");
    await gone.close(); // a port nobody listens on now
    await expect(new BackendHandshake(target(gone.port), params()).result).rejects.toMatchObject({ code: "MGW_ERR_BACKEND_CONNECT" });
    expect(failures(state)).toBe(1);
    expect(state.available("b", Date.now())).toBe(true);
    const silent = net.createServer((s) => s.on("error", () => {}));
    await new Promise<void>((r) => silent.listen(0, "127.0.0.1", r));
    await expect(new BackendHandshake(target((silent.address() as net.AddressInfo).port), params(100)).result).rejects.toMatchObject({ code: "MGW_ERR_BACKEND_TIMEOUT" });
    await new Promise((r) => silent.close(r));
    expect(failures(state)).toBe(2);
    expect(state.available("b", Date.now())).toBe(false);

    const ok = await backend("ok");
    const link = await new BackendHandshake(target(ok.port), params()).result;
    link.socket.destroy();
    await ok.close();
    expect(failures(state)).toBe(0);
    expect(state.available("b", Date.now())).toBe(true);
  });

  it("a server that answers with an error is reachable: it does not count", async () => {
    const { state, target } = cluster();
    const gone = await backend("ok");
    await gone.close();
    await expect(new BackendHandshake(target(gone.port), params()).result).rejects.toBeDefined();
    const denying = await backend("err");
    await expect(new BackendHandshake(target(denying.port), params()).result).rejects.toMatchObject({ code: "MGW_ERR_BACKEND_REJECTED", errno: 1045 });
    await denying.close();
    expect(failures(state)).toBe(0);
  });

  it("an aborted login (the client went away) says nothing about the backend", async () => {
    const { state, target } = cluster();
    const silent = net.createServer((s) => s.on("error", () => {}));
    await new Promise<void>((r) => silent.listen(0, "127.0.0.1", r));
    const hs = new BackendHandshake(target((silent.address() as net.AddressInfo).port), params());
    hs.abort();
    await expect(hs.result).rejects.toMatchObject({ code: "MGW_ERR_BACKEND_CONNECT" });
    await new Promise((r) => silent.close(r));
    expect(failures(state)).toBe(0);
  });
});

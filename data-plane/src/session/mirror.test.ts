import { Buffer } from "node:buffer";
import * as net from "node:net";
import { create } from "@bufbuild/protobuf";
import { BackendHealth_Role, BackendHealth_State, BackendHealthSchema, LoadBalancing } from "@mysqlgw/proto";
import pino from "pino";
import { PoolManager, type PoolLogin } from "../pool/backend-pool";
import { DEFAULT_POOL_SETTINGS } from "../pool/pool-settings";
import { BackendRole } from "../routing/backend-state";
import { createClusterRuntime, type BackendTarget, type ClusterSnapshot } from "./config-snapshot";
import { Mirror, mirrorLogin, mirrorSampled, mirrorTarget } from "./mirror";

const logger = pino({ level: "silent" });

function cluster(backends: BackendTarget[]): ClusterSnapshot {
  const runtime = createClusterRuntime("shadow");
  runtime.state.setBackends(backends, LoadBalancing.ROUND_ROBIN, null);
  return { name: "shadow", backends, ring: backends.map((_, i) => i), runtime, tls: null, sendProxyProtocol: false, pool: DEFAULT_POOL_SETTINGS };
}
const target = (name: string, expectedRole = BackendRole.Unknown): BackendTarget => ({ name, host: "127.0.0.1", port: 1, weight: 1, expectedRole });

describe("mirrorTarget", () => {
  it("the primary: the monitor's, else the policy's expectedRole", () => {
    const c = cluster([target("r1", BackendRole.Replica), target("p", BackendRole.Primary), target("r2", BackendRole.Replica)]);
    expect(mirrorTarget(c)?.name).toBe("p");
    c.runtime.state.applyHealth("r2", create(BackendHealthSchema, { state: BackendHealth_State.UP, role: BackendHealth_Role.PRIMARY }), Date.now());
    expect(mirrorTarget(c)?.name).toBe("r2"); // a monitor-reported primary wins
  });

  it("without a usable primary: any usable backend; none usable: null", () => {
    const c = cluster([target("a"), target("b")]);
    const seen = new Set<string | undefined>();
    for (let i = 0; i < 4; i++) seen.add(mirrorTarget(c)?.name);
    expect([...seen].sort()).toEqual(["a", "b"]);
    for (const n of ["a", "b"]) c.runtime.state.applyHealth(n, create(BackendHealthSchema, { state: BackendHealth_State.DOWN }), Date.now());
    expect(mirrorTarget(c)).toBeNull();
  });

  it("mirrorLogin keeps the session's credentials and capabilities, takes the mirror cluster's name, backend and TLS", () => {
    const c = cluster([target("p", BackendRole.Primary)]);
    const session: PoolLogin = {
      clusterName: "main",
      target: target("m"),
      tls: null,
      user: "u",
      password: "pw",
      capabilities: 0x1234,
      mariadbCapabilities: 4,
      characterSet: 45,
      maxPacketSize: 1 << 24,
      connectTimeoutMs: 100,
      maxHandshakePacketSize: 1 << 16,
      proxyHeader: Buffer.from("x"),
    };
    const l = mirrorLogin(session, c, c.backends[0]);
    expect(l).toMatchObject({ clusterName: "shadow", target: { name: "p" }, user: "u", password: "pw", capabilities: 0x1234, characterSet: 45, proxyHeader: null });
  });
});

describe("mirrorSampled", () => {
  it("mirrors every statement at ratio 1, none at 0, about the ratio in between", () => {
    expect(mirrorSampled(1, () => 0.999)).toBe(true);
    expect(mirrorSampled(0, () => 0)).toBe(false);
    let n = 0;
    let x = 0;
    const rand = (): number => (x = (x + 0.618033988749895) % 1);
    for (let i = 0; i < 10_000; i++) if (mirrorSampled(0.1, rand)) n++;
    expect(n).toBeGreaterThan(900);
    expect(n).toBeLessThan(1100);
  });
});

describe("Mirror bounds (a fake backend that accepts and never answers)", () => {
  let server: net.Server;
  let port = 0;
  const sockets = new Set<net.Socket>();
  let pools: PoolManager;

  beforeAll(async () => {
    server = net.createServer((s) => {
      sockets.add(s);
      s.on("close", () => sockets.delete(s));
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    port = (server.address() as net.AddressInfo).port;
    pools = new PoolManager(logger);
  });

  afterAll(async () => {
    pools.close();
    for (const s of sockets) s.destroy();
    await new Promise<void>((r) => server.close(() => r()));
  });

  const login = (): PoolLogin => ({
    clusterName: "shadow",
    target: { name: "silent", host: "127.0.0.1", port, weight: 1 },
    tls: null,
    user: "u",
    password: "pw",
    capabilities: 0,
    mariadbCapabilities: 0,
    characterSet: 45,
    maxPacketSize: 1 << 24,
    connectTimeoutMs: 150,
    maxHandshakePacketSize: 1 << 16,
  });
  const packet = Buffer.from([9, 0, 0, 0, 0x03, ...Buffer.from("SELECT 1")]);

  it("drops over maxInFlight and over maxPacketBytes, counts a login that times out as failed, never throws", async () => {
    const m = new Mirror(pools, logger, { maxInFlight: 2, timeoutMs: 1000, maxPacketBytes: 64 });
    m.send(login(), DEFAULT_POOL_SETTINGS, packet, null, false);
    m.send(login(), DEFAULT_POOL_SETTINGS, packet, null, false);
    m.send(login(), DEFAULT_POOL_SETTINGS, packet, null, false);
    m.send(login(), DEFAULT_POOL_SETTINGS, Buffer.alloc(65), null, false);
    expect(m.stats()).toMatchObject({ inFlight: 2, dropped: 2, sent: 0, failed: 0 });
    const deadline = Date.now() + 3000;
    while (m.stats().inFlight > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    expect(m.stats()).toEqual({ sent: 0, dropped: 2, failed: 2, inFlight: 0, completed: 0, errors: 0 });
  });

  it("does not modify the caller's packet (it sends a copy with sequence id 0)", () => {
    const m = new Mirror(pools, logger, { maxInFlight: 1, timeoutMs: 200 });
    const p = Buffer.from(packet);
    p[3] = 5;
    m.send(login(), DEFAULT_POOL_SETTINGS, p, null, false);
    expect(p[3]).toBe(5);
    m.close();
    m.send(login(), DEFAULT_POOL_SETTINGS, p, null, false);
    expect(m.stats().dropped).toBe(1);
  });
});

import * as net from "node:net";
import * as path from "node:path";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { AdminService } from "@mysqlgw/proto";
import { createMemoryConfigStore } from "../store/memory-config-store";
import { createAdminService } from "./admin-service";
import { startControlPlaneServer, type ControlPlaneServer } from "./server";

const POLICY = {
  clusters: [{ name: "demo", backends: [{ name: "primary", address: "127.0.0.1:3306" }] }],
  listeners: [{ name: "demo-rw", port: 6033, cluster: "demo" }],
  users: [],
};

let server: ControlPlaneServer;
let base: string;
const descriptor = path.join(__dirname, "..", "..", "..", "proto", "descriptor", "mysqlgw.binpb");

beforeEach(async () => {
  const store = createMemoryConfigStore();
  server = await startControlPlaneServer({
    service: createAdminService({ store }),
    host: "127.0.0.1",
    port: 0,
    descriptorSetPath: descriptor,
    firstBytesTimeoutMs: 300,
    maxBodyBytes: 64 * 1024,
  });
  base = `http://127.0.0.1:${server.address.port}`;
});
afterEach(() => server.close());

const post = (p: string, body: unknown) => fetch(base + p, { method: "POST", body: typeof body === "string" ? body : JSON.stringify(body) });

describe("REST", () => {
  it("applies, re-applies as a no-op, and reads back", async () => {
    let r = await post("/v1/policy:apply", { policy: POLICY, appliedBy: "curl" });
    expect(r.status).toBe(200);
    expect(await r.json()).toMatchObject({ version: "1", changed: true });
    r = await post("/v1/policy:apply", { policy: POLICY });
    expect(await r.json()).toEqual({ version: "1", changed: false, changes: [] });
    r = await fetch(`${base}/v1/policy`);
    const body = await r.json();
    expect(body.config).toMatchObject({ version: "1", appliedBy: "curl" });
    expect(body.config.policy.listeners[0]).toMatchObject({ name: "demo-rw", bindAddress: "0.0.0.0", port: 6033, cluster: "demo" });
    expect((await fetch(`${base}/v1/policy?version=1`)).status).toBe(200);
    expect((await post("/v1/policy:diff", { policy: { ...POLICY, listeners: [] } }).then((x) => x.json())).changes[0].action).toBe("ACTION_DELETE");
    expect(await fetch(`${base}/v1/dataplanes`).then((x) => x.json())).toEqual({ dataPlanes: [], currentVersion: "1" });
    expect(await fetch(`${base}/v1/health`).then((x) => x.json())).toMatchObject({ status: "SERVING", etcdReachable: true, currentVersion: "1" });
  });

  it("answers errors as Connect JSON with Connect's HTTP status", async () => {
    const bad = { policy: { ...POLICY, listeners: [{ name: "demo-rw", port: 70000, cluster: "demo" }] } };
    let r = await post("/v1/policy:apply", bad);
    expect(r.status).toBe(400);
    const e = await r.json();
    expect(e.code).toBe("invalid_argument");
    expect(e.message).toContain("field port: 70000 is out of range");
    expect(e.details[0].type).toBe("mysqlgw.admin.v1.PolicyViolations");
    expect(e.details[0].debug.violations[0]).toMatchObject({ kind: "Listener", name: "demo-rw", index: 0, field: "port" });

    r = await post("/v1/policy:apply", { polcy: {} });
    expect(r.status).toBe(400);
    expect((await r.json()).message).toContain('key "polcy" is unknown');
    r = await post("/v1/policy:apply", "{not json");
    expect(r.status).toBe(400);
    r = await post("/v1/policy:apply", "x".repeat(70 * 1024));
    expect(r.status).toBe(429);
    r = await fetch(`${base}/v1/policy?version=7`);
    expect(r.status).toBe(404);
    r = await fetch(`${base}/v1/policy?version=abc`);
    expect(r.status).toBe(400);
    r = await fetch(`${base}/v1/health`, { method: "DELETE" });
    expect(r.status).toBe(405);
    expect(r.headers.get("allow")).toBe("GET");
    r = await fetch(`${base}/v1/nope`);
    expect(r.status).toBe(404);
    expect((await r.json()).message).toContain("REST routes are");
  });

  it("serves the descriptor set", async () => {
    const r = await fetch(`${base}/v1/descriptor`);
    expect(r.status).toBe(200);
    expect(r.headers.get("content-type")).toBe("application/octet-stream");
    expect((await r.arrayBuffer()).byteLength).toBeGreaterThan(1000);
  });
});

describe("one port, every protocol", () => {
  it("serves Connect over HTTP/1.1 and gRPC over h2c", async () => {
    const c1 = createClient(AdminService, createConnectTransport({ httpVersion: "1.1", baseUrl: base }));
    expect((await c1.applyPolicy({ policy: POLICY })).version).toBe(1n);
    const c2 = createClient(AdminService, createGrpcTransport({ baseUrl: base }));
    expect((await c2.getHealth({})).currentVersion).toBe(1n);
    const c3 = createClient(AdminService, createConnectTransport({ httpVersion: "2", baseUrl: base }));
    expect((await c3.getPolicy({})).config?.version).toBe(1n);
  });

  it("serves @grpc/grpc-js clients, with the status and message of errors", async () => {
    const def = protoLoader.loadSync("mysqlgw/admin/v1/admin_service.proto", {
      includeDirs: [path.join(__dirname, "..", "..", "..", "proto")],
      longs: String,
      defaults: true,
    });
    // eslint-disable-next-line @typescript-eslint/no-explicit-any
    const pkg = grpc.loadPackageDefinition(def) as any;
    const client = new pkg.mysqlgw.admin.v1.AdminService(`127.0.0.1:${server.address.port}`, grpc.credentials.createInsecure());
    // eslint-disable-next-line @typescript-eslint/no-explicit-any
    const call = (method: string, req: unknown): Promise<any> => new Promise((resolve, reject) => {
      client[method](req, { deadline: Date.now() + 5000 }, (err: Error | null, res: unknown) => (err ? reject(err) : resolve(res)));
    });
    try {
      expect(await call("applyPolicy", { policy: POLICY, appliedBy: "grpc-js" })).toMatchObject({ version: "1", changed: true });
      expect(await call("applyPolicy", { policy: POLICY })).toMatchObject({ version: "1", changed: false });
      const err = await call("applyPolicy", { policy: { listeners: [{ name: "x", port: 70000 }] } }).catch((e: grpc.ServiceError) => e);
      expect(err.code).toBe(grpc.status.INVALID_ARGUMENT);
      expect(err.details).toContain("70000 is out of range");
      expect(err.metadata.get("grpc-status-details-bin")).toHaveLength(1);
    } finally {
      client.close();
    }
  });

  it("closes a connection that sends nothing", async () => {
    const s = net.connect(server.address.port, "127.0.0.1");
    const t0 = Date.now();
    await new Promise((resolve) => s.on("close", resolve));
    expect(Date.now() - t0).toBeLessThan(2000);
  });
});

// Issue 2, point 3: the control plane's API against a real etcd — gRPC through
// a @grpc/grpc-js client built from the published descriptor set (what grpcurl
// -protoset does; proto field names, as on the wire), REST for curl, versioned history, and etcd outages.
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { Etcd3 } from "etcd3";
import { startControlPlane, startEtcd, waitFor, type ControlPlane, type EtcdServer } from "../helpers";

let etcd: EtcdServer;
let cp: ControlPlane;
let client: grpc.Client & Record<string, (req: unknown, cb: (err: grpc.ServiceError | null, res: Record<string, unknown>) => void) => void>;

function call<T = Record<string, unknown>>(method: string, req: unknown): Promise<T> {
  return new Promise((resolve, reject) => {
    client[method](req, (err, res) => (err ? reject(err) : resolve(res as T)));
  });
}

const POLICY = {
  clusters: [{ name: "orders", backends: [{ name: "db1", address: "127.0.0.1:3306" }] }],
  listeners: [{ name: "orders-rw", port: 6033, cluster: "orders" }],
  users: [],
};

beforeAll(async () => {
  etcd = await startEtcd();
  cp = await startControlPlane({ etcd });
  // The descriptor set the control plane publishes is enough to build a client.
  const res = await fetch(`${cp.url}/v1/descriptor`);
  expect(res.status).toBe(200);
  const def = protoLoader.loadFileDescriptorSetFromBuffer(Buffer.from(await res.arrayBuffer()), { keepCase: true, longs: String, defaults: true, enums: String });
  const pkg = grpc.loadPackageDefinition(def) as unknown as { mysqlgw: { admin: { v1: { AdminService: grpc.ServiceClientConstructor } } } };
  client = new pkg.mysqlgw.admin.v1.AdminService(cp.address, grpc.credentials.createInsecure()) as typeof client;
}, 60_000);

afterAll(() => client?.close());

test("gRPC: ApplyPolicy writes version 1, an identical apply is a no-op, a change makes version 2; GetPolicy reads history", async () => {
  const first = await call<{ version: string; changed: boolean }>("ApplyPolicy", { policy: POLICY, applied_by: "grpc-test" });
  expect(first).toMatchObject({ version: "1", changed: true });
  // Identical: a no-op (reordering is covered by the control plane's normalisation unit tests).
  const same = await call<{ version: string; changed: boolean }>("ApplyPolicy", { policy: { ...POLICY, clusters: [...POLICY.clusters] } });
  expect(same).toMatchObject({ version: "1", changed: false });

  const changed = { ...POLICY, listeners: [{ name: "orders-rw", port: 6034, cluster: "orders" }] };
  const second = await call<{ version: string; changed: boolean; changes: { action: string; kind: string; name: string; fields: string[] }[] }>("ApplyPolicy", { policy: changed });
  expect(second.version).toBe("2");
  expect(second.changes).toEqual([expect.objectContaining({ action: "ACTION_UPDATE", kind: "Listener", name: "orders-rw", fields: ["port"] })]);

  const current = await call<{ config: { version: string; policy: { listeners: { port: number }[] } } }>("GetPolicy", {});
  expect(current.config.version).toBe("2");
  expect(current.config.policy.listeners[0].port).toBe(6034);
  const v1 = await call<{ config: { version: string; policy: { listeners: { port: number }[] } } }>("GetPolicy", { version: 1 });
  expect(v1.config.policy.listeners[0].port).toBe(6033);

  // Both versions are in etcd, and `current` is version 2.
  const etcdClient = new Etcd3({ hosts: etcd.endpoint });
  try {
    const versions = await etcdClient.getAll().prefix("/mysqlgw/v1/config/versions/").keys();
    expect(versions.sort()).toEqual(["/mysqlgw/v1/config/versions/00000000000000000001", "/mysqlgw/v1/config/versions/00000000000000000002"]);
    expect(JSON.parse((await etcdClient.get("/mysqlgw/v1/config/current").string())!).version).toBe("2");
  } finally {
    etcdClient.close();
  }
});

test("gRPC: an invalid policy is INVALID_ARGUMENT naming the field, and nothing is written", async () => {
  const bad = { clusters: [{ name: "orders", backends: [{ name: "db1", address: "no-port" }] }], listeners: [], users: [] };
  await expect(call("ApplyPolicy", { policy: bad })).rejects.toMatchObject({ code: grpc.status.INVALID_ARGUMENT, details: expect.stringMatching(/backends\[0\]\.address/) });
  const current = await call<{ config: { version: string } }>("GetPolicy", {});
  expect(current.config.version).toBe("2");
});

test("REST: the same handlers for curl, with DiffPolicy writing nothing", async () => {
  const diff = await fetch(`${cp.url}/v1/policy:diff`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ policy: POLICY }) });
  expect(diff.status).toBe(200);
  expect(await diff.json()).toMatchObject({ baseVersion: "2", changes: [{ action: "ACTION_UPDATE", kind: "Listener", name: "orders-rw", fields: ["port"] }] });
  const got = await (await fetch(`${cp.url}/v1/policy`)).json();
  expect(got).toMatchObject({ config: { version: "2" } });
  const health = await (await fetch(`${cp.url}/v1/health`)).json();
  expect(health).toMatchObject({ status: "SERVING", etcdReachable: true, currentVersion: "2" });
});

test("etcd down: health says NOT_SERVING and why, apply fails with UNAVAILABLE; both recover when etcd is back", async () => {
  await etcd.stop();
  try {
    const health = await call<{ status: string; etcd_reachable: boolean; etcd_error: string }>("GetHealth", {});
    expect(health).toMatchObject({ status: "NOT_SERVING", etcd_reachable: false });
    expect(health.etcd_error).toMatch(/etcd at http:\/\/127\.0\.0\.1:\d+ is unreachable.*check that etcd is running/);
    await expect(call("ApplyPolicy", { policy: POLICY })).rejects.toMatchObject({ code: grpc.status.UNAVAILABLE, details: expect.stringMatching(/etcd/) });
  } finally {
    await etcd.restart();
  }
  await waitFor(async () => (await call<{ status: string }>("GetHealth", {})).status === "SERVING", { timeoutMs: 15_000, what: "health to recover" });
  const again = await call<{ version: string; changed: boolean }>("ApplyPolicy", { policy: POLICY });
  expect(again).toMatchObject({ version: "3", changed: true });
});

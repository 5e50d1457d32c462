// Issue 2, point 3: the control plane's API against a real etcd — gRPC through
// a @grpc/grpc-js client built from the published descriptor set (what grpcurl
// -protoset does; proto field names, as on the wire), REST for curl, versioned history, and etcd outages.
import * as fs from "node:fs";
import * as path from "node:path";
import { fromBinary, fromJsonString } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import { BinaryReader, BinaryWriter, WireType } from "@bufbuild/protobuf/wire";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { ConfigVersionSchema } from "@mysqlgw/proto";
import { Etcd3 } from "etcd3";
import { runProcess, startControlPlane, startEtcd, waitFor, type ControlPlane, type EtcdServer } from "../helpers";

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

test("one etcd transaction per version: the version record and the current pointer share a revision, and hold the proto3 JSON of ConfigVersion", async () => {
  const applied = await call<{ version: string; changed: boolean }>("ApplyPolicy", { policy: { ...POLICY, listeners: [{ name: "orders-rw", port: 6035, cluster: "orders" }] } });
  expect(applied).toMatchObject({ version: "4", changed: true });
  const etcdClient = new Etcd3({ hosts: etcd.endpoint });
  try {
    const [record, current] = await Promise.all([
      etcdClient.get("/mysqlgw/v1/config/versions/00000000000000000004").exec(),
      etcdClient.get("/mysqlgw/v1/config/current").exec(),
    ]);
    expect(record.kvs).toHaveLength(1);
    expect(current.kvs[0]!.mod_revision).toBe(record.kvs[0]!.mod_revision);
    expect(current.kvs[0]!.value.toString()).toBe(record.kvs[0]!.value.toString());
    // The one schema: etcd's value is the JSON mapping of mysqlgw.config.v1.ConfigVersion (unknown fields would throw).
    const stored = fromJsonString(ConfigVersionSchema, record.kvs[0]!.value.toString());
    expect(stored.version).toBe(4n);
    expect(stored.policy!.listeners.map((l) => [l.name, l.port, l.cluster])).toEqual([["orders-rw", 6035, "orders"]]);
    expect(stored.policy!.clusters[0]!.backends.map((b) => [b.name, b.address])).toEqual([["db1", "127.0.0.1:3306"]]);
  } finally {
    etcdClient.close();
  }
});

test("gRPC: DiffPolicy writes nothing, ListDataPlanes answers with the current version, the descriptor set served is the one committed", async () => {
  const diff = await call<{ base_version: string; changes: { action: string; kind: string; name: string }[] }>("DiffPolicy", { policy: { ...POLICY, listeners: [] } });
  expect(diff.base_version).toBe("4");
  expect(diff.changes).toEqual([expect.objectContaining({ action: "ACTION_DELETE", kind: "Listener", name: "orders-rw" })]);
  expect((await call<{ config: { version: string } }>("GetPolicy", {})).config.version).toBe("4");
  const listed = await call<{ current_version: string; data_planes: unknown[] }>("ListDataPlanes", {});
  expect(listed).toMatchObject({ current_version: "4", data_planes: [] });
  const served = Buffer.from(await (await fetch(`${cp.url}/v1/descriptor`)).arrayBuffer());
  expect(served.equals(fs.readFileSync(path.join(__dirname, "../../proto/descriptor/mysqlgw.binpb")))).toBe(true);
});

test("REST with curl: apply (dry run and real), diff, get, dataplanes, health; an invalid policy is HTTP 400 naming the field", async () => {
  const curl = (args: string[]) => runProcess("curl", ["-sS", "--max-time", "10", "-H", "content-type: application/json", ...args], { timeoutMs: 15_000 });
  const body = (extra: Record<string, unknown>) => JSON.stringify({ policy: { ...POLICY, listeners: [{ name: "orders-rw", port: 6036, cluster: "orders" }] }, ...extra });
  let r = await curl(["-X", "POST", "-d", body({}), `${cp.url}/v1/policy:diff`]);
  expect(r.code).toBe(0);
  expect(JSON.parse(r.stdout)).toMatchObject({ baseVersion: "4", changes: [{ action: "ACTION_UPDATE", kind: "Listener", name: "orders-rw", fields: ["port"] }] });
  r = await curl(["-X", "POST", "-d", body({ dryRun: true }), `${cp.url}/v1/policy:apply`]);
  expect(JSON.parse(r.stdout)).toMatchObject({ version: "4" });
  r = await curl(["-X", "POST", "-d", body({ appliedBy: "curl" }), `${cp.url}/v1/policy:apply`]);
  expect(JSON.parse(r.stdout)).toMatchObject({ version: "5", changed: true });
  r = await curl([`${cp.url}/v1/policy?version=5`]);
  expect(JSON.parse(r.stdout)).toMatchObject({ config: { version: "5", appliedBy: "curl", policy: { listeners: [{ name: "orders-rw", port: 6036 }] } } });
  r = await curl([`${cp.url}/v1/dataplanes`]);
  expect(JSON.parse(r.stdout)).toMatchObject({ currentVersion: "5" });
  r = await curl([`${cp.url}/v1/health`]);
  expect(JSON.parse(r.stdout)).toMatchObject({ status: "SERVING", currentVersion: "5" });
  const bad = JSON.stringify({ policy: { ...POLICY, listeners: [{ name: "orders-rw", port: 70000, cluster: "orders" }] } });
  r = await curl(["-X", "POST", "-d", bad, "-w", "\n%{http_code}", `${cp.url}/v1/policy:apply`]);
  const [answer, status] = [r.stdout.slice(0, r.stdout.lastIndexOf("\n")), r.stdout.slice(r.stdout.lastIndexOf("\n") + 1)];
  expect(status).toBe("400");
  expect(answer).toMatch(/port/);
  expect(answer).toMatch(/65535/);
  expect((await call<{ config: { version: string } }>("GetPolicy", {})).config.version).toBe("5");
});

test("gRPC server reflection on the real binary (what `grpcurl list` / `describe` use), from a plain @grpc/grpc-js client", async () => {
  // grpc.reflection.v1.ServerReflection/ServerReflectionInfo, encoded by hand: no generated code and no descriptor set on this side.
  const reflect = (requests: Uint8Array[]): Promise<Uint8Array[]> =>
    new Promise((resolve, reject) => {
      const raw = new grpc.Client(cp.address, grpc.credentials.createInsecure());
      const out: Uint8Array[] = [];
      const stream = raw.makeBidiStreamRequest("/grpc.reflection.v1.ServerReflection/ServerReflectionInfo", (b: Uint8Array) => Buffer.from(b), (b: Buffer) => new Uint8Array(b));
      stream.on("data", (m: Uint8Array) => out.push(m));
      stream.on("error", (e: Error) => {
        raw.close();
        reject(e);
      });
      stream.on("end", () => {
        raw.close();
        resolve(out);
      });
      for (const r of requests) stream.write(r);
      stream.end();
    });
  /** The length-delimited fields of a message, by field number. */
  const fields = (bytes: Uint8Array): Map<number, Uint8Array[]> => {
    const r = new BinaryReader(bytes);
    const m = new Map<number, Uint8Array[]>();
    while (r.pos < r.len) {
      const [no, type] = r.tag();
      if (type === WireType.LengthDelimited) m.set(no, [...(m.get(no) ?? []), r.bytes()]);
      else r.skip(type);
    }
    return m;
  };
  const listServices = new BinaryWriter().tag(7, WireType.LengthDelimited).string("").finish(); // list_services = 7
  const fileContaining = new BinaryWriter().tag(4, WireType.LengthDelimited).string("mysqlgw.admin.v1.AdminService").finish(); // file_containing_symbol = 4
  const [list, file] = await reflect([listServices, fileContaining]);
  // list_services_response = 6 { repeated ServiceResponse service = 1 { string name = 1 } }
  const services = fields(fields(list!).get(6)![0]!).get(1)!.map((s) => new TextDecoder().decode(fields(s).get(1)![0]));
  expect(services).toEqual(expect.arrayContaining(["mysqlgw.admin.v1.AdminService", "grpc.reflection.v1.ServerReflection"]));
  // file_descriptor_response = 4 { repeated bytes file_descriptor_proto = 1 }
  const files = fields(fields(file!).get(4)![0]!).get(1)!.map((b) => fromBinary(FileDescriptorProtoSchema, b));
  const admin = files.find((f) => f.name === "mysqlgw/admin/v1/admin_service.proto")!;
  expect(admin.service[0]!.method.map((m) => m.name)).toEqual(expect.arrayContaining(["ApplyPolicy", "GetPolicy", "DiffPolicy", "ListDataPlanes", "GetHealth"]));
  expect(files.map((f) => f.name)).toContain("mysqlgw/config/v1/config.proto");
});

import { create, createFileRegistry, fromBinary, type DescMessage } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema, FileDescriptorSetSchema } from "@bufbuild/protobuf/wkt";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { createMemoryConfigStore } from "../store/memory-config-store";
import { createAdminService } from "./admin-service";
import { reflectionService } from "./reflection";
import { startControlPlaneServer, type ControlPlaneServer } from "./server";

let server: ControlPlaneServer;
beforeAll(async () => {
  server = await startControlPlaneServer({ service: createAdminService({ store: createMemoryConfigStore() }), host: "127.0.0.1", port: 0 });
});
afterAll(() => server.close());

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Any = any;

async function ask(version: "v1" | "v1alpha", requests: Record<string, unknown>[]): Promise<Any[]> {
  const svc = reflectionService(version);
  const client = createClient(svc, createGrpcTransport({ baseUrl: `http://127.0.0.1:${server.address.port}` })) as Any;
  const input = svc.methods[0]!.input as DescMessage;
  async function* reqs() {
    for (const r of requests) yield create(input, { host: "", messageRequest: r } as Any);
  }
  const out: Any[] = [];
  for await (const res of client.serverReflectionInfo(reqs())) out.push(res);
  return out;
}

describe("gRPC server reflection", () => {
  it.each(["v1", "v1alpha"] as const)("lists services and resolves AdminService to its files (%s)", async (version) => {
    const [list, sym, byName, missing] = await ask(version, [
      { case: "listServices", value: "" },
      { case: "fileContainingSymbol", value: "mysqlgw.admin.v1.AdminService" },
      { case: "fileByFilename", value: "mysqlgw/config/v1/config.proto" },
      { case: "fileContainingSymbol", value: "no.such.Thing" },
    ]);
    expect(list.messageResponse.value.service.map((s: Any) => s.name)).toEqual([
      "mysqlgw.admin.v1.AdminService", "mysqlgw.admin.v1.HistoryService", "grpc.reflection.v1.ServerReflection", "grpc.reflection.v1alpha.ServerReflection",
    ]);
    const files = sym.messageResponse.value.fileDescriptorProto.map((b: Uint8Array) => fromBinary(FileDescriptorProtoSchema, b));
    expect(files.map((f: Any) => f.name)).toEqual(["mysqlgw/admin/v1/admin_service.proto", "mysqlgw/config/v1/config.proto", "google/protobuf/duration.proto", "google/protobuf/timestamp.proto"]);
    // What grpcurl does with them: build a registry and find the method.
    const reg = createFileRegistry(create(FileDescriptorSetSchema, { file: files.reverse() }));
    expect(reg.getService("mysqlgw.admin.v1.AdminService")!.methods.map((m) => m.name)).toContain("ApplyPolicy");
    expect(byName.messageResponse.case).toBe("fileDescriptorResponse");
    expect(missing.messageResponse).toMatchObject({ case: "errorResponse", value: { errorCode: 5 } });
  });

  it("resolves a method name", async () => {
    const [r] = await ask("v1", [{ case: "fileContainingSymbol", value: "mysqlgw.admin.v1.AdminService.ApplyPolicy" }]);
    expect(r.messageResponse.case).toBe("fileDescriptorResponse");
  });
});

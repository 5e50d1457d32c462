import {
  create,
  createFileRegistry,
  createRegistry,
  toBinary,
  type DescFile,
  type DescService,
  type Registry,
} from "@bufbuild/protobuf";
import {
  FieldDescriptorProto_Label as Label,
  FieldDescriptorProto_Type as Type,
  FileDescriptorProtoSchema,
  type FileDescriptorProto,
} from "@bufbuild/protobuf/wkt";
import type { ConnectRouter } from "@connectrpc/connect";

/**
 * gRPC server reflection (grpc.reflection.v1 and v1alpha), so that
 * `grpcurl -plaintext HOST:PORT list` works without a descriptor set.
 * The reflection proto is built here, field for field from
 * grpc/reflection/v1/reflection.proto, because it is not part of our schema.
 */

function reflectionFile(pkg: string): FileDescriptorProto {
  const s = (name: string, number: number, oneofIndex?: number) => ({ name, number, type: Type.STRING, label: Label.OPTIONAL, jsonName: camel(name), ...(oneofIndex === undefined ? {} : { oneofIndex }) });
  const m = (name: string, number: number, typeName: string, oneofIndex?: number, repeated = false) => ({
    name, number, type: Type.MESSAGE, typeName: `.${pkg}.${typeName}`, label: repeated ? Label.REPEATED : Label.OPTIONAL, jsonName: camel(name),
    ...(oneofIndex === undefined ? {} : { oneofIndex }),
  });
  const i32 = (name: string, number: number, repeated = false) => ({ name, number, type: Type.INT32, label: repeated ? Label.REPEATED : Label.OPTIONAL, jsonName: camel(name) });
  return create(FileDescriptorProtoSchema, {
    name: `grpc/reflection/${pkg.split(".").pop()}/reflection.proto`,
    package: pkg,
    syntax: "proto3",
    messageType: [
      {
        name: "ServerReflectionRequest",
        field: [s("host", 1), s("file_by_filename", 3, 0), s("file_containing_symbol", 4, 0), m("file_containing_extension", 5, "ExtensionRequest", 0),
          s("all_extension_numbers_of_type", 6, 0), s("list_services", 7, 0)],
        oneofDecl: [{ name: "message_request" }],
      },
      { name: "ExtensionRequest", field: [s("containing_type", 1), i32("extension_number", 2)] },
      {
        name: "ServerReflectionResponse",
        field: [s("valid_host", 1), m("original_request", 2, "ServerReflectionRequest"),
          m("file_descriptor_response", 4, "FileDescriptorResponse", 0), m("all_extension_numbers_response", 5, "ExtensionNumberResponse", 0),
          m("list_services_response", 6, "ListServiceResponse", 0), m("error_response", 7, "ErrorResponse", 0)],
        oneofDecl: [{ name: "message_response" }],
      },
      { name: "FileDescriptorResponse", field: [{ name: "file_descriptor_proto", number: 1, type: Type.BYTES, label: Label.REPEATED, jsonName: "fileDescriptorProto" }] },
      { name: "ExtensionNumberResponse", field: [s("base_type_name", 1), i32("extension_number", 2, true)] },
      { name: "ListServiceResponse", field: [m("service", 1, "ServiceResponse", undefined, true)] },
      { name: "ServiceResponse", field: [s("name", 1)] },
      { name: "ErrorResponse", field: [i32("error_code", 1), s("error_message", 2)] },
    ],
    service: [{
      name: "ServerReflection",
      method: [{
        name: "ServerReflectionInfo",
        inputType: `.${pkg}.ServerReflectionRequest`,
        outputType: `.${pkg}.ServerReflectionResponse`,
        clientStreaming: true,
        serverStreaming: true,
      }],
    }],
  });
}

function camel(snake: string): string {
  return snake.replace(/_([a-z])/g, (_, c: string) => c.toUpperCase());
}

/** The ServerReflection service descriptor of grpc.reflection.v1 or v1alpha. */
export function reflectionService(version: "v1" | "v1alpha"): DescService {
  const pkg = `grpc.reflection.${version}`;
  const reg = createFileRegistry(reflectionFile(pkg), () => undefined);
  return reg.getService(`${pkg}.ServerReflection`)!;
}

/** gRPC status NOT_FOUND, as reflection's ErrorResponse.error_code. */
const NOT_FOUND = 5;
const UNIMPLEMENTED = 12;

/** Plain shape of a reflection request (fields in protobuf-es names). */
interface ReflectionRequest {
  host: string;
  messageRequest: { case: string | undefined; value?: unknown };
}

/**
 * Registers reflection for `services` (whose files, with their imports, are
 * what clients can ask for) on a Connect router.
 */
export function registerReflection(router: ConnectRouter, services: readonly DescService[]): void {
  const files: DescFile[] = [];
  const addFile = (f: DescFile): void => {
    if (files.includes(f)) return;
    f.dependencies.forEach(addFile);
    files.push(f);
  };
  services.forEach((s) => addFile(s.file));
  const registry: Registry = createRegistry(...files);
  const v1 = reflectionService("v1");
  const v1alpha = reflectionService("v1alpha");
  const serviceNames = [...services.map((s) => s.typeName), v1.typeName, v1alpha.typeName];

  /** The file and every file it imports, the file first (as grpc-go does). */
  const withDeps = (f: DescFile): Uint8Array[] => {
    const out: DescFile[] = [];
    const walk = (x: DescFile): void => {
      if (out.includes(x)) return;
      out.push(x);
      x.dependencies.forEach(walk);
    };
    walk(f);
    return out.map((x) => toBinary(FileDescriptorProtoSchema, x.proto));
  };

  const fileOfSymbol = (symbol: string): DescFile | undefined => {
    const d = registry.get(symbol);
    if (d !== undefined) return d.file;
    // A method: "pkg.Service.Method"
    const dot = symbol.lastIndexOf(".");
    const svc = dot > 0 ? registry.getService(symbol.slice(0, dot)) : undefined;
    return svc?.methods.some((m) => m.name === symbol.slice(dot + 1)) ? svc.file : undefined;
  };

  const answer = (req: ReflectionRequest): Record<string, unknown> => {
    const base = { validHost: req.host, originalRequest: req };
    const r = req.messageRequest;
    const error = (code: number, message: string) => ({ ...base, messageResponse: { case: "errorResponse", value: { errorCode: code, errorMessage: message } } });
    const filesOf = (f: DescFile | undefined, what: string) => f === undefined
      ? error(NOT_FOUND, `${what} not found`)
      : { ...base, messageResponse: { case: "fileDescriptorResponse", value: { fileDescriptorProto: withDeps(f) } } };
    switch (r.case) {
      case "listServices":
        return { ...base, messageResponse: { case: "listServicesResponse", value: { service: serviceNames.map((name) => ({ name })) } } };
      case "fileByFilename":
        return filesOf(files.find((f) => f.proto.name === r.value), `file ${String(r.value)}`);
      case "fileContainingSymbol":
        return filesOf(fileOfSymbol(String(r.value)), `symbol ${String(r.value)}`);
      case "allExtensionNumbersOfType":
        return { ...base, messageResponse: { case: "allExtensionNumbersResponse", value: { baseTypeName: String(r.value), extensionNumber: [] } } };
      case "fileContainingExtension":
        return error(NOT_FOUND, "no extensions are defined");
      default:
        return error(UNIMPLEMENTED, "unknown reflection request");
    }
  };

  for (const svc of [v1, v1alpha]) {
    router.rpc(svc.methods[0]!, async function* (requests: AsyncIterable<unknown>) {
      for await (const req of requests) {
        yield answer(req as ReflectionRequest);
      }
    } as never);
  }
}

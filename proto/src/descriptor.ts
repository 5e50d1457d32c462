import * as path from "node:path";

/**
 * Path of the published FileDescriptorSet (buf build output) for tools such as
 * grpcurl: `grpcurl -protoset $(node -p 'require("@mysqlgw/proto").descriptorSetPath') ...`.
 */
export const descriptorSetPath = path.join(__dirname, "..", "..", "descriptor", "mysqlgw.binpb");

// @mysqlgw/control-plane: the AdminService (validation, versioned writes to
// etcd) served over gRPC, Connect and REST. The executable is dist/main.js.
export { createAdminService } from "./api/admin-service";
export type { AdminServiceImpl, AdminServiceOptions, ServiceLogger } from "./api/admin-service";
export { startControlPlaneServer } from "./api/server";
export type { ControlPlaneServer, ControlPlaneServerOptions } from "./api/server";
export { createRestHandler, REST_ROUTES } from "./api/rest";
export { toConnectError, CONNECT_CODE_OF } from "./api/connect-errors";
export type { ConfigStore, ApplyResult } from "./store/config-store";
export { createEtcdConfigStore, DEFAULT_ETCD_CALL_TIMEOUT_MS } from "./store/etcd-config-store";
export type { EtcdConfigStoreOptions } from "./store/etcd-config-store";
export { createMemoryConfigStore } from "./store/memory-config-store";
export type { MemoryConfigStore } from "./store/memory-config-store";
export { validatePolicy, checkAddress, checkSecretRef } from "./model/validate";
export { normalizePolicy, policyDigest } from "./model/normalize";
export { diffPolicies } from "./model/diff";
export { MgwError, isMgwError } from "./errors";
export type { MgwErrorCode, PolicyViolationInit } from "./errors";
// API security (docs/security.md): the role matrix, tokens, the caller of a call, the audit log
export { ACCESS_RULES, accessOfRpc, accessOfRest, allows } from "./api/access";
export type { AccessRule, Role, Access } from "./api/access";
export { principalOf, appliedByOf, ANONYMOUS } from "./api/principal";
export type { Principal, CallIdentity } from "./api/principal";
export { createAuthenticator, parseTokensFile, tokenSha256 } from "./api/tokens";
export type { Authenticator, TokensConfig } from "./api/tokens";
export { createMemoryAuditLog } from "./api/audit";
export type { AuditLog } from "./api/audit";
export { createEtcdAuditLog } from "./store/etcd-audit-log";

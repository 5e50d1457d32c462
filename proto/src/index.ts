// @mysqlgw/proto: the generated policy and API messages, shared by every part
// of mysqlgw. The planes and the CLI share nothing else.
export * from "../gen/mysqlgw/config/v1/config_pb";
export * from "../gen/mysqlgw/admin/v1/admin_service_pb";
export * from "../gen/mysqlgw/admin/v1/history_service_pb";
export * from "../gen/mysqlgw/admin/v1/replication_service_pb";
export * from "../gen/mysqlgw/admin/v1/audit_service_pb";
export { descriptorSetPath } from "./descriptor";
export { etcdKeys, DEFAULT_ETCD_PREFIX } from "./etcd-keys";
export type { EtcdKeys } from "./etcd-keys";
export type { DigestStats, DigestsAnswer, MergedDigest, PublishedDigests } from "./digests";
export { setEtcdTls, etcdSecurityOptions, etcdHttpsOptions } from "./etcd-security";
export type { EtcdTlsFiles } from "./etcd-security";

/**
 * The etcd key layout shared by the control plane (writer) and the data planes
 * (readers). Values are the proto3 JSON mapping of the named message, so that
 * `etcdctl get --prefix /mysqlgw/` is readable by an operator.
 *
 *   <prefix>/v1/config/current             ConfigVersion   the version data planes serve
 *   <prefix>/v1/config/versions/<20 digits> ConfigVersion   every version ever applied
 *   <prefix>/v1/dataplanes/<id>            DataPlane       under a lease; gone when the process is
 */
export const DEFAULT_ETCD_PREFIX = "/mysqlgw";

export interface EtcdKeys {
  readonly currentConfig: string;
  readonly versionsPrefix: string;
  readonly dataPlanesPrefix: string;
  configVersion(version: bigint | number): string;
  dataPlane(id: string): string;
}

export function etcdKeys(prefix: string = DEFAULT_ETCD_PREFIX): EtcdKeys {
  const p = prefix.replace(/\/+$/, "");
  return {
    currentConfig: `${p}/v1/config/current`,
    versionsPrefix: `${p}/v1/config/versions/`,
    dataPlanesPrefix: `${p}/v1/dataplanes/`,
    configVersion: (v) => `${p}/v1/config/versions/${BigInt(v).toString().padStart(20, "0")}`,
    dataPlane: (id) => `${p}/v1/dataplanes/${id}`,
  };
}

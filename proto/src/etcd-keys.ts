/**
 * The etcd key layout shared by the control plane (writer) and the data planes
 * (readers). Values are the proto3 JSON mapping of the named message, so that
 * `etcdctl get --prefix /mysqlgw/` is readable by an operator.
 *
 *   <prefix>/v1/config/current             ConfigVersion   the version data planes serve
 *   <prefix>/v1/config/versions/<20 digits> ConfigVersion   every version ever applied
 *   <prefix>/v1/dataplanes/<id>            DataPlane       under a lease; gone when the process is
 *   <prefix>/v1/health/<cluster>/<backend> BackendHealth   written by the monitor leader under its lease
 *   <prefix>/v1/election/monitor           (etcd3 election) the control plane leading the monitor
 */
export const DEFAULT_ETCD_PREFIX = "/mysqlgw";

export interface EtcdKeys {
  readonly currentConfig: string;
  readonly versionsPrefix: string;
  readonly dataPlanesPrefix: string;
  readonly healthPrefix: string;
  readonly monitorElection: string;
  backendHealth(cluster: string, backend: string): string;
  configVersion(version: bigint | number): string;
  dataPlane(id: string): string;
}

export function etcdKeys(prefix: string = DEFAULT_ETCD_PREFIX): EtcdKeys {
  const p = prefix.replace(/\/+$/, "");
  return {
    currentConfig: `${p}/v1/config/current`,
    versionsPrefix: `${p}/v1/config/versions/`,
    dataPlanesPrefix: `${p}/v1/dataplanes/`,
    healthPrefix: `${p}/v1/health/`,
    monitorElection: `${p}/v1/election/monitor`,
    backendHealth: (cluster, backend) => `${p}/v1/health/${cluster}/${backend}`,
    configVersion: (v) => `${p}/v1/config/versions/${BigInt(v).toString().padStart(20, "0")}`,
    dataPlane: (id) => `${p}/v1/dataplanes/${id}`,
  };
}

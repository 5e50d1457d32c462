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
 *   <prefix>/v1/views/<dp id>/<cluster>/<backend>  BackendView  a data plane's own view, under its lease
 *   <prefix>/v1/failover/epoch/<cluster>   ClusterEpoch    fencing epoch and primary, written at each failover
 *   <prefix>/v1/failover/history/<cluster>/<20 digits> FailoverRecord  one per failover attempt, by its detection time (ms)
 *   <prefix>/v1/switchover/hold/<cluster>  SwitchoverHold  while a planned switchover runs
 *   <prefix>/v1/switchover/ack/<cluster>/<dp id> SwitchoverAck  each data plane's answer, under its lease
 *   <prefix>/v1/locks/cluster/<cluster>    (etcd3 lock)    held by whoever changes a cluster's replication
 *   <prefix>/v1/operations/<20 digits>     OperationRecord one per replication operation
 *   <prefix>/v1/audit/<20 digits>          AuditRecord     one per mutating API call
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
  readonly viewsPrefix: string;
  /** A data plane's view of one backend (BackendView). */
  backendView(dataPlaneId: string, cluster: string, backend: string): string;
  /** Every view a data plane wrote (with a trailing slash). */
  dataPlaneViews(dataPlaneId: string): string;
  readonly epochPrefix: string;
  clusterEpoch(cluster: string): string;
  readonly failoverHistoryPrefix: string;
  /** One failover attempt (promoted or aborted), keyed by its detection time in ms since the epoch. */
  failoverRecord(cluster: string, detectedAtMs: bigint | number): string;
  readonly switchoverHoldPrefix: string;
  switchoverHold(cluster: string): string;
  readonly switchoverAckPrefix: string;
  switchoverAck(cluster: string, dataPlaneId: string): string;
  /** Name of the etcd3 lock serialising replication changes (failover, switchover, operations) of a cluster. */
  clusterLock(cluster: string): string;
  readonly operationsPrefix: string;
  operation(sequence: bigint | number): string;
  readonly auditPrefix: string;
  audit(sequence: bigint | number): string;
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
    viewsPrefix: `${p}/v1/views/`,
    backendView: (id, cluster, backend) => `${p}/v1/views/${id}/${cluster}/${backend}`,
    dataPlaneViews: (id) => `${p}/v1/views/${id}/`,
    epochPrefix: `${p}/v1/failover/epoch/`,
    clusterEpoch: (cluster) => `${p}/v1/failover/epoch/${cluster}`,
    failoverHistoryPrefix: `${p}/v1/failover/history/`,
    failoverRecord: (cluster, ms) => `${p}/v1/failover/history/${cluster}/${BigInt(ms).toString().padStart(20, "0")}`,
    switchoverHoldPrefix: `${p}/v1/switchover/hold/`,
    switchoverHold: (cluster) => `${p}/v1/switchover/hold/${cluster}`,
    switchoverAckPrefix: `${p}/v1/switchover/ack/`,
    switchoverAck: (cluster, id) => `${p}/v1/switchover/ack/${cluster}/${id}`,
    clusterLock: (cluster) => `${p}/v1/locks/cluster/${cluster}`,
    operationsPrefix: `${p}/v1/operations/`,
    operation: (seq) => `${p}/v1/operations/${BigInt(seq).toString().padStart(20, "0")}`,
    auditPrefix: `${p}/v1/audit/`,
    audit: (seq) => `${p}/v1/audit/${BigInt(seq).toString().padStart(20, "0")}`,
  };
}

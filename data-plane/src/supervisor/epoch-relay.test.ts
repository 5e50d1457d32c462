import pino from "pino";
import { create, toJsonString } from "@bufbuild/protobuf";
import { ClusterEpochSchema, etcdKeys, type BackendHealth, type ClusterEpoch } from "@mysqlgw/proto";
import { HealthMirror, parseEpochKey } from "../config/etcd-health-source";
import { createHealthBroadcaster } from "./health-relay";

describe("failover epochs beside the health", () => {
  const keys = etcdKeys("/mysqlgw");

  it("an epoch key is <epochPrefix><cluster>, delivered as backend \"\"", () => {
    expect(parseEpochKey(keys.clusterEpoch("shop"), keys.epochPrefix)).toEqual({ cluster: "shop", backend: "" });
    expect(parseEpochKey(`${keys.epochPrefix}shop/x`, keys.epochPrefix)).toBeNull();
    expect(parseEpochKey(keys.epochPrefix, keys.epochPrefix)).toBeNull();
    expect(parseEpochKey(keys.backendHealth("shop", "db1"), keys.epochPrefix)).toBeNull();
    const seen: [string, string, string | null][] = [];
    const m = new HealthMirror(keys.epochPrefix, (c, b, j) => seen.push([c, b, j]), parseEpochKey);
    m.replaceAll([[keys.clusterEpoch("shop"), "{}"]]);
    m.replaceAll([]);
    expect(seen).toEqual([["shop", "", "{}"], ["shop", "", null]]);
  });

  it("the broadcaster hands an epoch to the epoch sink and health to the health sink (in-process, --workers 0)", () => {
    const health: [string, string, BackendHealth | null][] = [];
    const epochs: [string, ClusterEpoch | null][] = [];
    const lines: string[] = [];
    const relay = createHealthBroadcaster({
      logger: pino({ level: "warn" }, { write: (l: string) => lines.push(l) }),
      current: () => [],
      local: (c, b, h) => health.push([c, b, h]),
      localEpoch: (c, e) => epochs.push([c, e]),
    });
    relay("shop", "", toJsonString(ClusterEpochSchema, create(ClusterEpochSchema, { cluster: "shop", epoch: 3n, primary: "db2", fenced: ["db1"] })));
    relay("shop", "", null);
    relay("shop", "", "{junk");
    relay("shop", "db1", null);
    expect(epochs).toHaveLength(2);
    expect(epochs[0]![1]).toMatchObject({ epoch: 3n, primary: "db2", fenced: ["db1"] });
    expect(epochs[1]).toEqual(["shop", null]);
    expect(health).toEqual([["shop", "db1", null]]);
    expect(lines.join("")).toContain("ignoring a failover epoch that is not a ClusterEpoch");
  });
});

// ClusterState and the failover epoch (ClusterEpoch in etcd, relayed to every
// worker): a fenced former primary takes nothing, whatever the monitor's health
// (or its absence) and the policy say; the epoch's primary is the primary when
// the monitor reports nothing fresh.
import { create } from "@bufbuild/protobuf";
import { BackendHealth_Role, BackendHealth_State, BackendHealthSchema, LoadBalancing } from "@mysqlgw/proto";
import type { BackendTarget } from "../session/config-snapshot";
import { BackendRole, ClusterState } from "./backend-state";

const target = (name: string, expectedRole = BackendRole.Unknown): BackendTarget => ({ name, host: "127.0.0.1", port: 3306, weight: 1, expectedRole });
const h = (state: BackendHealth_State, role: BackendHealth_Role) => create(BackendHealthSchema, { state, role });
const epoch = (n: number, primary: string, fenced: string[]) => ({ epoch: BigInt(n), primary, fenced });

function cluster(expected: BackendRole[] = [BackendRole.Unknown, BackendRole.Unknown, BackendRole.Unknown]): { s: ClusterState; lines: string[] } {
  const lines: string[] = [];
  const s = new ClusterState("shop", { logger: { info: (_o, m) => lines.push(m), warn: (_o, m) => lines.push(m) } });
  s.setBackends(["db1", "db2", "db3"].map((n, i) => target(n, expected[i])), LoadBalancing.ROUND_ROBIN, null);
  return { s, lines };
}

test("a fenced former primary is never the primary, even reported UP and PRIMARY by a monitor, and takes no reads", () => {
  const { s, lines } = cluster();
  s.applyHealth("db1", h(BackendHealth_State.UP, BackendHealth_Role.PRIMARY), 0);
  s.applyHealth("db2", h(BackendHealth_State.UP, BackendHealth_Role.REPLICA), 0);
  s.applyHealth("db3", h(BackendHealth_State.UP, BackendHealth_Role.REPLICA), 0);
  expect(s.primary(0)?.name).toBe("db1");
  s.applyEpoch(epoch(1, "db2", ["db1"]));
  expect(lines).toContain("cluster shop failed over to db2 (epoch 1); db1 fenced: no statements go to them");
  expect(s.primary(0)).toBeNull(); // db2 is still reported REPLICA: nobody takes writes
  s.applyHealth("db2", h(BackendHealth_State.UP, BackendHealth_Role.PRIMARY), 0);
  expect(s.primary(0)?.name).toBe("db2");
  for (let i = 0; i < 20; i++) {
    expect(s.pickAny(0)?.name).not.toBe("db1");
    expect(s.pickReplica(0)?.name).toBe("db3");
  }
  expect(s.available("db1", 0)).toBe(false);
});

test("a returning old primary reported read_only (REPLICA) by the monitor is not chosen even without an epoch", () => {
  const { s } = cluster();
  s.applyHealth("db1", h(BackendHealth_State.UP, BackendHealth_Role.REPLICA), 0);
  s.applyHealth("db2", h(BackendHealth_State.UP, BackendHealth_Role.PRIMARY), 0);
  expect(s.primary(0)?.name).toBe("db2");
});

test("with the monitor's keys expired, the epoch's primary is the primary and the policy's expected primary stays fenced", () => {
  const { s } = cluster([BackendRole.Primary, BackendRole.Replica, BackendRole.Replica]);
  expect(s.primary(0)?.name).toBe("db1"); // the policy's expectation
  s.applyEpoch(epoch(1, "db2", ["db1"]));
  expect(s.roleOf("db2")).toBe(BackendRole.Primary);
  expect(s.snapshot(0).find((b) => b.name === "db2")?.roleSource).toBe("epoch");
  expect(s.primary(0)?.name).toBe("db2");
  // a roleless cluster too: the epoch gives it a primary
  const { s: r } = cluster();
  r.applyEpoch(epoch(1, "db3", ["db1"]));
  expect(r.primary(0)?.name).toBe("db3");
  expect(r.pickAny(0)?.name).not.toBe("db1");
});

test("a later epoch that no longer lists a backend unfences it; a deleted epoch unfences all", () => {
  const { s, lines } = cluster();
  s.applyEpoch(epoch(1, "db2", ["db1"]));
  expect(s.available("db1", 0)).toBe(false);
  s.applyEpoch(epoch(1, "db2", []));
  expect(s.available("db1", 0)).toBe(true);
  expect(lines).toContain("backend db1 of cluster shop is no longer fenced");
  s.applyEpoch(epoch(2, "db3", ["db2"]));
  expect(s.available("db2", 0)).toBe(false);
  s.applyEpoch(null);
  expect(s.available("db2", 0)).toBe(true);
  expect(s.roleOf("db3")).toBe(BackendRole.Unknown);
});

import { create } from "@bufbuild/protobuf";
import { durationFromMs, timestampFromMs } from "@bufbuild/protobuf/wkt";
import { createClient, createRouterTransport } from "@connectrpc/connect";
import { AdminService, BackendHealth_Role as R, BackendHealth_State as S, BackendHealthSchema, type BackendHealth } from "@mysqlgw/proto";
import { run } from "../program";

function fakeApi(backends: BackendHealth[], monitorLeader: string) {
  const asked: string[] = [];
  const transport = createRouterTransport(({ service }) => service(AdminService, {
    listBackendHealth(req) {
      asked.push(req.cluster);
      return { backends: backends.filter((b) => req.cluster === "" || b.cluster === req.cluster), monitorLeader };
    },
  }));
  return { client: createClient(AdminService, transport), asked };
}

async function cli(args: string[], api: ReturnType<typeof fakeApi>) {
  const out: string[] = [];
  const err: string[] = [];
  const code = await run(args, { stdout: (l) => out.push(l), stderr: (l) => err.push(l), createClient: () => api.client });
  return { code, out, err };
}

const now = Date.now();
const HEALTH = [
  create(BackendHealthSchema, { cluster: "orders", backend: "db1", address: "10.0.0.1:3306", state: S.UP, role: R.PRIMARY, serverId: 1, gtidCurrentPos: "0-1-42", checkedAt: timestampFromMs(now - 2000) }),
  create(BackendHealthSchema, {
    cluster: "orders", backend: "db2", address: "10.0.0.2:3306", state: S.DOWN, role: R.REPLICA, serverId: 2, gtidCurrentPos: "0-1-40",
    replicationLag: durationFromMs(3000), sourceAddress: "10.0.0.1:3306", lastError: "connection to 10.0.0.2:3306 refused", checkedAt: timestampFromMs(now - 1000),
  }),
];

describe("mysqlgw backends", () => {
  it("prints the monitor leader and a table; warns about DOWN backends", async () => {
    const api = fakeApi(HEALTH, "cp-a");
    const r = await cli(["backends", "--cluster", "orders"], api);
    expect(api.asked).toEqual(["orders"]);
    expect(r.code).toBe(0);
    expect(r.out).toEqual([
      "monitor leader: cp-a",
      "CLUSTER  BACKEND  ADDRESS        STATE  ROLE     SERVER ID  GTID    LAG  SOURCE         CHECKED",
      "orders   db1      10.0.0.1:3306  UP     PRIMARY  1          0-1-42  -    -              2s ago",
      "orders   db2      10.0.0.2:3306  DOWN   REPLICA  2          0-1-40  3s   10.0.0.1:3306  1s ago",
    ]);
    expect(r.err).toEqual(["warning: orders/db2 is DOWN: connection to 10.0.0.2:3306 refused"]);
  });

  it("says when nothing is monitored and no control plane leads", async () => {
    const r = await cli(["backends"], fakeApi([], ""));
    expect(r.code).toBe(0);
    expect(r.out).toEqual(["monitor leader: none", "no backend health — clusters need health.credentials to be probed"]);
    expect(r.err[0]).toMatch(/^warning: no control plane leads the monitor — /);
  });
});

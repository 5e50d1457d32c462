import { findPrimary, replicasOf, sameAddress, type BackendState, type BackendView } from "./topology";

function st(p: Partial<BackendState>): BackendState {
  return {
    readOnly: false, serverId: 1, logBin: true, gtidBinlogPos: "", gtidBinlogState: "", gtidCurrentPos: "", gtidSlavePos: "",
    replicationConfigured: false, ioRunning: false, sqlRunning: false, sourceAddress: "", masterUser: "", lastIoError: "", lastSqlError: "",
    semiSyncMaster: null, semiSyncSlave: null, ...p,
  };
}
const replica = (src: string): BackendState => st({ readOnly: true, replicationConfigured: true, ioRunning: true, sqlRunning: true, sourceAddress: src });
const v = (name: string, port: number, s: BackendState | null): BackendView => ({ name, address: `127.0.0.1:${port}`, state: s, error: s === null ? "refused" : "" });

describe("findPrimary", () => {
  test("the epoch's primary wins", () => {
    const views = [v("db1", 1, st({})), v("db2", 2, replica("127.0.0.1:1"))];
    expect(findPrimary(views, { epoch: 2n, primary: "db2", fenced: ["db1"] }).primary).toBe("db2");
  });
  test("the root others replicate from, even paused read_only, and even beside a writable detached replica", () => {
    expect(findPrimary([v("db1", 1, st({ readOnly: true })), v("db2", 2, replica("127.0.0.1:1")), v("db3", 3, replica("localhost:1"))], null).primary).toBe("db1");
    expect(findPrimary([v("db1", 1, st({})), v("db2", 2, replica("127.0.0.1:1")), v("db3", 3, st({ readOnly: false }))], null).primary).toBe("db1");
  });
  test("no replicas: the one writable backend; a one-backend cluster: it", () => {
    expect(findPrimary([v("db1", 1, st({})), v("db2", 2, st({ readOnly: true }))], null).primary).toBe("db1");
    expect(findPrimary([v("db1", 1, st({ readOnly: true }))], null).primary).toBe("db1");
    expect(findPrimary([v("db1", 1, null)], null).primary).toBe("db1");
  });
  test("ambiguous: none, saying why", () => {
    const r = findPrimary([v("db1", 1, st({})), v("db2", 2, st({})), v("db3", 3, null)], null);
    expect(r.primary).toBeNull();
    expect(r.why).toMatch(/db1 and db2 are all writable .*\(db3 could not be read\)/);
    expect(findPrimary([v("db1", 1, st({ readOnly: true })), v("db2", 2, st({ readOnly: true }))], null).primary).toBeNull();
  });
});

test("replicasOf and sameAddress", () => {
  expect(sameAddress("localhost:3306", "127.0.0.1:3306")).toBe(true);
  expect(sameAddress("[::1]:3306", "127.0.0.1:3306")).toBe(true);
  expect(sameAddress("127.0.0.1:3306", "127.0.0.1:3307")).toBe(false);
  expect(replicasOf([v("db1", 1, st({})), v("db2", 2, replica("127.0.0.1:1")), v("db3", 3, null)], "127.0.0.1:1")).toEqual(["db2"]);
});

import { create, toJsonString } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import pino from "pino";
import { BackendHealth_Role, BackendHealth_State, BackendHealthSchema, LoadBalancing, SwitchoverHold_Phase, SwitchoverHoldSchema } from "@mysqlgw/proto";
import { ClusterState } from "../routing/backend-state";
import { toSqlError, type SqlError } from "../errors";
import { createSwitchoverHolds, setSwitchoverSessions, switchoverHolds, type HoldableFrontend, type HoldableSession, type HoldReport } from "./switchover-hold";

const log = pino({ level: "silent" });

function clusterState(primary: string): ClusterState {
  const s = new ClusterState("shop");
  s.setBackends(["db1", "db2"].map((name, i) => ({ name, host: "127.0.0.1", port: 3306 + i, weight: 1 })), LoadBalancing.ROUND_ROBIN, null);
  setPrimary(s, primary);
  return s;
}

function setPrimary(s: ClusterState, primary: string): void {
  for (const b of ["db1", "db2"]) {
    s.applyHealth(b, create(BackendHealthSchema, { cluster: "shop", backend: b, state: BackendHealth_State.UP, role: b === primary ? BackendHealth_Role.PRIMARY : BackendHealth_Role.REPLICA }), Date.now());
  }
}

function holdJson(phase: SwitchoverHold_Phase, o: { holdMs?: number; drainMs?: number; epoch?: bigint } = {}): string {
  const now = Date.now();
  return toJsonString(
    SwitchoverHoldSchema,
    create(SwitchoverHoldSchema, {
      cluster: "shop",
      epoch: o.epoch ?? 1n,
      oldPrimary: "db1",
      newPrimary: "db2",
      phase,
      holdUntil: timestampFromMs(now + (o.holdMs ?? 5000)),
      drainUntil: timestampFromMs(now + (o.drainMs ?? 3000)),
    }),
  );
}

/** A pass-through session of a READ_WRITE listener on `backend`. */
class FakePassThrough implements HoldableFrontend {
  busy = false;
  closed = false;
  constructor(readonly backend: string) {}
  routedSession(): HoldableSession | null {
    return null;
  }
  writableBackend(): { cluster: string; backend: string } | null {
    return this.closed ? null : { cluster: "shop", backend: this.backend };
  }
  closeIfIdle(): boolean {
    if (this.busy) return false;
    this.closed = true;
    return true;
  }
}

class FakeSession implements HoldableSession {
  open = true;
  ended: SqlError | null = null;
  switchoverOpen(cluster: string, backend: string): boolean {
    return this.open && this.ended === null && cluster === "shop" && backend === "db1";
  }
  endForSwitchover(err: SqlError): void {
    this.ended = err;
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe("switchover holds in a worker", () => {
  let reports: HoldReport[];
  let sessions: FakeSession[];
  let passThrough: FakePassThrough[];
  let state: ClusterState | null;
  let receiver: ReturnType<typeof createSwitchoverHolds>;

  beforeEach(() => {
    reports = [];
    sessions = [];
    passThrough = [];
    state = null;
    setSwitchoverSessions(
      () => [...sessions.map((s): HoldableFrontend => ({ routedSession: () => s, writableBackend: () => null, closeIfIdle: () => false })), ...passThrough],
      () => state,
    );
    receiver = createSwitchoverHolds({ logger: log, report: (r) => reports.push(r) });
  });
  afterEach(() => receiver.stop());

  it("holds statements until the release and the routing state names the new primary", async () => {
    const state = clusterState("db1");
    receiver.apply("shop", holdJson(SwitchoverHold_Phase.HOLD));
    expect(switchoverHolds.size).toBe(1);
    let passed = false;
    const waiting = switchoverHolds.get("shop")!.wait(state).then(() => (passed = true));
    await sleep(30);
    expect(passed).toBe(false);
    expect(reports.at(-1)).toMatchObject({ cluster: "shop", epoch: "1", open: 0, held: 1, ended: 0 });
    receiver.apply("shop", holdJson(SwitchoverHold_Phase.RELEASE));
    await sleep(30);
    expect(passed).toBe(false); // the state still names db1
    setPrimary(state, "db2");
    await waiting;
    expect(passed).toBe(true);
    // later statements pass at once; the key's deletion ends the hold
    await switchoverHolds.get("shop")!.wait(state);
    receiver.apply("shop", null);
    expect(switchoverHolds.size).toBe(0);
  });

  it("releases to whoever is primary on an abort, and fails held statements at hold_until with ERR 1205", async () => {
    const state = clusterState("db1");
    receiver.apply("shop", holdJson(SwitchoverHold_Phase.HOLD));
    const w = switchoverHolds.get("shop")!.wait(state);
    receiver.apply("shop", holdJson(SwitchoverHold_Phase.ABORT));
    await w;
    receiver.apply("shop", null);
    receiver.apply("shop", holdJson(SwitchoverHold_Phase.HOLD, { holdMs: 60, drainMs: 30, epoch: 2n }));
    const err = await switchoverHolds.get("shop")!.wait(state).then(() => null, (e: unknown) => e);
    expect(toSqlError(err)).toMatchObject({ errno: 1205, sqlState: "HY000" });
    expect(toSqlError(err).message).toContain("planned switchover of cluster 'shop' that did not finish in time; the statement did not run");
  });

  it("counts open transactions on the old primary and ends those left at drain_until with ERR 1927", async () => {
    const done = new FakeSession();
    const stuck = new FakeSession();
    sessions.push(done, stuck);
    receiver.apply("shop", holdJson(SwitchoverHold_Phase.HOLD, { drainMs: 80 }));
    expect(reports.at(-1)).toMatchObject({ open: 2, ended: 0 });
    done.open = false; // committed
    await sleep(40);
    expect(reports.at(-1)).toMatchObject({ open: 1, ended: 0 });
    await sleep(100);
    expect(reports.at(-1)).toMatchObject({ open: 0, ended: 1 });
    expect(done.ended).toBeNull();
    expect(stuck.ended).toMatchObject({ errno: 1927, sqlState: "70100" });
    expect(stuck.ended?.message).toContain("Connection was killed: mysqlgw ended this transaction for a planned switchover of cluster 'shop'");
  });

  it("closes pass-through sessions of READ_WRITE listeners on the old primary once the new primary routes, each between commands", async () => {
    state = clusterState("db1");
    const idle = new FakePassThrough("db1");
    const busy = new FakePassThrough("db1");
    const elsewhere = new FakePassThrough("db2");
    busy.busy = true;
    passThrough.push(idle, busy, elsewhere);
    receiver.apply("shop", holdJson(SwitchoverHold_Phase.HOLD));
    receiver.apply("shop", holdJson(SwitchoverHold_Phase.RELEASE));
    await sleep(30);
    expect(idle.closed).toBe(false); // this worker still routes to db1
    setPrimary(state, "db2");
    await sleep(30);
    expect([idle.closed, busy.closed, elsewhere.closed]).toEqual([true, false, false]);
    // the hold's key goes; the busy one is closed once its command is over, then the hold is forgotten
    receiver.apply("shop", null);
    expect(switchoverHolds.size).toBe(1);
    busy.busy = false;
    await sleep(30);
    expect(busy.closed).toBe(true);
    expect(switchoverHolds.size).toBe(0);
  });
});

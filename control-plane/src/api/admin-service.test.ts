import { create } from "@bufbuild/protobuf";
import { timestampNow } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createClient, createRouterTransport, type Client } from "@connectrpc/connect";
import { AdminService, DataPlaneSchema, PolicySchema, PolicyViolationsSchema, ResourceChange_Action as A, type Policy } from "@mysqlgw/proto";
import { createMemoryConfigStore, type MemoryConfigStore } from "../store/memory-config-store";
import { normalizePolicy } from "../model/normalize";
import { createAdminService } from "./admin-service";

const policy = (port = 6033): Policy => create(PolicySchema, {
  clusters: [{ name: "demo", backends: [{ name: "replica", address: "127.0.0.1:3307" }, { name: "primary", address: "127.0.0.1:3306" }] }],
  listeners: [{ name: "demo-rw", port, cluster: "demo" }],
  users: [{ name: "app", passwordHash: "*F142931D9296BB66D4600D47418DBC1475D27D29", backendCredentials: { secretRef: "env:PW" } }],
});

let store: MemoryConfigStore;
let client: Client<typeof AdminService>;

beforeEach(() => {
  store = createMemoryConfigStore();
  const impl = createAdminService({ store, buildVersion: "9.9.9" });
  client = createClient(AdminService, createRouterTransport(({ service }) => service(AdminService, impl)));
});

async function rejection(p: Promise<unknown>): Promise<ConnectError> {
  try {
    await p;
  } catch (err) {
    return ConnectError.from(err);
  }
  throw new Error("expected a rejection");
}

describe("ApplyPolicy", () => {
  it("writes version 1, then a no-op for the same policy in another order", async () => {
    const r1 = await client.applyPolicy({ policy: policy(), appliedBy: "test" });
    expect(r1.version).toBe(1n);
    expect(r1.changed).toBe(true);
    expect(r1.changes.map((c) => [c.action, c.kind, c.name])).toEqual([[A.ADD, "Cluster", "demo"], [A.ADD, "Listener", "demo-rw"], [A.ADD, "User", "app"]]);

    const reordered = policy();
    reordered.clusters[0]!.backends.reverse();
    const r2 = await client.applyPolicy({ policy: reordered });
    expect(r2).toMatchObject({ version: 1n, changed: false, changes: [] });
    expect(store.history).toHaveLength(1);

    const stored = store.history[0]!;
    expect(stored.appliedBy).toBe("test");
    expect(stored.digest).toMatch(/^[0-9a-f]{64}$/);
    expect(stored.policy!.clusters[0]!.backends.map((b) => b.name)).toEqual(["primary", "replica"]);
    expect(stored.policy!.users[0]!.backendCredentials!.user).toBe("app");
  });

  it("numbers versions strictly from 1 and reports the changes of each", async () => {
    await client.applyPolicy({ policy: policy(6033) });
    const r = await client.applyPolicy({ policy: policy(6034) });
    expect(r.version).toBe(2n);
    expect(r.changes).toHaveLength(1);
    expect(r.changes[0]).toMatchObject({ action: A.UPDATE, kind: "Listener", name: "demo-rw", fields: ["port"] });
    expect(store.history.map((v) => v.version)).toEqual([1n, 2n]);
  });

  it("dry run diffs and writes nothing", async () => {
    const r = await client.applyPolicy({ policy: policy(), dryRun: true });
    expect(r).toMatchObject({ version: 0n, changed: false });
    expect(r.changes).toHaveLength(3);
    expect(store.history).toHaveLength(0);
  });

  it("rejects an invalid policy with every violation as a detail, and writes nothing", async () => {
    const p = policy(70000);
    p.users[0]!.passwordHash = "hunter2";
    const err = await rejection(client.applyPolicy({ policy: p }));
    expect(err.code).toBe(Code.InvalidArgument);
    expect(err.rawMessage).toContain("policy is invalid (2 problems)");
    expect(err.rawMessage).toContain("Listener demo-rw (listeners[0]) field port: 70000 is out of range; use 1..65535");
    expect(err.rawMessage).not.toContain("hunter2");
    const v = err.findDetails(PolicyViolationsSchema).flatMap((d) => d.violations);
    expect(v.map((x) => [x.kind, x.name, x.index, x.field])).toEqual([["Listener", "demo-rw", 0, "port"], ["User", "app", 0, "passwordHash"]]);
    expect(store.history).toHaveLength(0);
  });

  it("honours expected_version", async () => {
    await client.applyPolicy({ policy: policy() });
    const err = await rejection(client.applyPolicy({ policy: policy(6034), expectedVersion: 5n }));
    expect(err.code).toBe(Code.FailedPrecondition);
    expect(err.rawMessage).toContain("the current version is 1, not the expected 5");
    const ok = await client.applyPolicy({ policy: policy(6034), expectedVersion: 1n });
    expect(ok.version).toBe(2n);
  });

  it("retries once when another apply wins the race, diffing against the winner", async () => {
    await client.applyPolicy({ policy: policy(6033) });
    store.beforeNextWrite(() => {
      void store.applyIfChanged(normalizePolicy(policy(7000)), 1n, "other");
    });
    const r = await client.applyPolicy({ policy: policy(6034) });
    expect(r.version).toBe(3n);
    expect(r.changes[0]!.fields).toEqual(["port"]);
    expect(JSON.parse(r.changes[0]!.beforeJson).port).toBe(7000);
    expect(store.history.map((v) => v.appliedBy)).toEqual(["api", "other", "api"]);
  });

  it("fails with Aborted when it loses twice", async () => {
    await client.applyPolicy({ policy: policy(6033) });
    let port = 7000;
    const race = (): void => {
      void store.applyIfChanged(normalizePolicy(policy(port++)), store.history.length ? store.history[store.history.length - 1]!.version : 0n, "other");
    };
    store.beforeNextWrite(() => {
      race();
      store.beforeNextWrite(race);
    });
    const err = await rejection(client.applyPolicy({ policy: policy(6034) }));
    expect(err.code).toBe(Code.Aborted);
    expect(err.rawMessage).toContain("run the command again");
  });

  it("maps an unreachable store to Unavailable with the store's message", async () => {
    store.setUnavailable(true);
    const err = await rejection(client.applyPolicy({ policy: policy() }));
    expect(err.code).toBe(Code.Unavailable);
    expect(err.rawMessage).toContain("unavailable");
  });
});

describe("GetPolicy", () => {
  it("returns nothing before the first apply, then current and past versions", async () => {
    expect((await client.getPolicy({})).config).toBeUndefined();
    await client.applyPolicy({ policy: policy(6033) });
    await client.applyPolicy({ policy: policy(6034) });
    expect((await client.getPolicy({})).config!.version).toBe(2n);
    expect((await client.getPolicy({ version: 1n })).config!.policy!.listeners[0]!.port).toBe(6033);
    const err = await rejection(client.getPolicy({ version: 9n }));
    expect(err.code).toBe(Code.NotFound);
    expect(err.rawMessage).toContain("version 9 does not exist; versions go from 1 to 2");
  });
});

describe("DiffPolicy", () => {
  it("diffs against the current version and validates", async () => {
    await client.applyPolicy({ policy: policy(6033) });
    const d = await client.diffPolicy({ policy: policy(6034) });
    expect(d.baseVersion).toBe(1n);
    expect(d.changes.map((c) => c.fields)).toEqual([["port"]]);
    expect(store.history).toHaveLength(1);
    const err = await rejection(client.diffPolicy({ policy: policy(0) }));
    expect(err.code).toBe(Code.InvalidArgument);
  });
});

describe("ListDataPlanes and GetHealth", () => {
  it("lists data planes with the current version", async () => {
    await client.applyPolicy({ policy: policy() });
    store.putDataPlane(create(DataPlaneSchema, { id: "h-2", pid: 2, configVersion: 1n, startedAt: timestampNow() }));
    store.putDataPlane(create(DataPlaneSchema, { id: "h-1", pid: 1, configVersion: 0n }));
    const r = await client.listDataPlanes({});
    expect(r.currentVersion).toBe(1n);
    expect(r.dataPlanes.map((d) => d.id)).toEqual(["h-1", "h-2"]);
  });

  it("reports SERVING, and NOT_SERVING with the reason when the store is out of reach", async () => {
    expect(await client.getHealth({})).toMatchObject({ status: "SERVING", etcdReachable: true, currentVersion: 0n, buildVersion: "9.9.9" });
    store.setUnavailable(true);
    const h = await client.getHealth({});
    expect(h).toMatchObject({ status: "NOT_SERVING", etcdReachable: false });
    expect(h.etcdError).toContain("unavailable");
  });
});

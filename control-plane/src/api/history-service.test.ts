import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient, createRouterTransport, type Client } from "@connectrpc/connect";
import { AdminService, HistoryService, PolicySchema, ResourceChange_Action as A, type Policy } from "@mysqlgw/proto";
import { createMemoryConfigStore, type MemoryConfigStore } from "../store/memory-config-store";
import { createAdminService } from "./admin-service";
import { createHistoryService, versionsFromAdmin } from "./history-service";
import { startControlPlaneServer, type ControlPlaneServer } from "./server";

const policy = (port = 6033, users = ["app"]): Policy =>
  create(PolicySchema, {
    clusters: [{ name: "demo", backends: [{ name: "primary", address: "127.0.0.1:3306" }] }],
    listeners: [{ name: "demo-rw", port, cluster: "demo" }],
    users: users.map((name) => ({ name, passwordHash: "*F142931D9296BB66D4600D47418DBC1475D27D29", backendCredentials: { secretRef: "env:PW" } })),
  });

let store: MemoryConfigStore;
let admin: Client<typeof AdminService>;
let history: Client<typeof HistoryService>;

function clients(viaAdmin: boolean): void {
  store = createMemoryConfigStore();
  const adminImpl = createAdminService({ store });
  const historyImpl = createHistoryService({ versions: viaAdmin ? versionsFromAdmin(adminImpl) : store, admin: adminImpl });
  const transport = createRouterTransport(({ service }) => {
    service(AdminService, adminImpl);
    service(HistoryService, historyImpl);
  });
  admin = createClient(AdminService, transport);
  history = createClient(HistoryService, transport);
}

async function rejection(p: Promise<unknown>): Promise<ConnectError> {
  try {
    await p;
  } catch (err) {
    return ConnectError.from(err);
  }
  throw new Error("expected a rejection");
}

describe.each([
  ["the store", false],
  ["AdminService.GetPolicy", true],
])("HistoryService reading versions through %s", (_name, viaAdmin) => {
  beforeEach(() => clients(viaAdmin));

  it("lists nothing before the first apply", async () => {
    expect(await history.listVersions({})).toMatchObject({ versions: [], currentVersion: 0n, nextBefore: 0n });
  });

  it("lists versions newest first with who, when, digest and what each changed against the one before", async () => {
    await admin.applyPolicy({ policy: policy(6033), appliedBy: "cli:alice" });
    await admin.applyPolicy({ policy: policy(6034), appliedBy: "cli:bob" });
    await admin.applyPolicy({ policy: policy(6034, ["app", "bi"]), appliedBy: "cli:carol" });
    const r = await history.listVersions({});
    expect(r.currentVersion).toBe(3n);
    expect(r.nextBefore).toBe(0n);
    expect(r.versions.map((v) => [v.version, v.appliedBy])).toEqual([
      [3n, "cli:carol"],
      [2n, "cli:bob"],
      [1n, "cli:alice"],
    ]);
    expect(r.versions[0]!.changes.map((c) => [c.action, c.kind, c.name])).toEqual([[A.ADD, "User", "bi"]]);
    expect(r.versions[1]!.changes).toHaveLength(1);
    expect(r.versions[1]!.changes[0]).toMatchObject({ action: A.UPDATE, kind: "Listener", name: "demo-rw", fields: ["port"], beforeJson: "", afterJson: "" });
    expect(r.versions[2]!.changes.map((c) => c.action)).toEqual([A.ADD, A.ADD, A.ADD]);
    expect(r.versions[0]!.digest).toBe(store.history[2]!.digest);
    expect(r.versions[0]!.appliedAt).toEqual(store.history[2]!.appliedAt);
  });

  it("pages with limit and before", async () => {
    for (let p = 0; p < 5; p++) await admin.applyPolicy({ policy: policy(6000 + p) });
    const first = await history.listVersions({ limit: 2 });
    expect(first.versions.map((v) => v.version)).toEqual([5n, 4n]);
    expect(first.versions[1]!.changes).toHaveLength(1); // diffed against version 3, which was read but not listed
    expect(first.nextBefore).toBe(4n);
    const second = await history.listVersions({ limit: 2, before: first.nextBefore });
    expect(second.versions.map((v) => v.version)).toEqual([3n, 2n]);
    const last = await history.listVersions({ limit: 2, before: second.nextBefore });
    expect(last.versions.map((v) => v.version)).toEqual([1n]);
    expect(last.nextBefore).toBe(0n);
    expect((await history.listVersions({ before: 100n })).versions).toHaveLength(5);
    expect((await history.listVersions({ before: 1n })).versions).toEqual([]);
    const tooMany = await rejection(history.listVersions({ limit: 1001 }));
    expect(tooMany.code).toBe(Code.InvalidArgument);
    expect(tooMany.rawMessage).toMatch(/limit 1001 is over 1000/);
  });

  it("rolls back by applying the old policy as a new version", async () => {
    await admin.applyPolicy({ policy: policy(6033), appliedBy: "cli:alice" });
    await admin.applyPolicy({ policy: policy(6034, ["app", "bi"]), appliedBy: "cli:bob" });
    const dry = await history.rollbackPolicy({ version: 1n, dryRun: true });
    expect(dry).toMatchObject({ version: 2n, changed: false, restoredVersion: 1n });
    expect(dry.changes.map((c) => [c.action, c.kind, c.name])).toEqual([
      [A.UPDATE, "Listener", "demo-rw"],
      [A.DELETE, "User", "bi"],
    ]);
    expect(store.history).toHaveLength(2);

    const r = await history.rollbackPolicy({ version: 1n, appliedBy: "cli:carol" });
    expect(r).toMatchObject({ version: 3n, changed: true, restoredVersion: 1n });
    expect(store.history).toHaveLength(3);
    expect(store.history[2]!.appliedBy).toBe("cli:carol (rollback to version 1)");
    expect(store.history[2]!.digest).toBe(store.history[0]!.digest);
    expect((await admin.getPolicy({})).config?.policy?.listeners[0]?.port).toBe(6033);

    // again: nothing to do; history is never rewritten
    expect(await history.rollbackPolicy({ version: 1n })).toMatchObject({ version: 3n, changed: false, changes: [] });
    // and forward again
    expect(await history.rollbackPolicy({ version: 2n })).toMatchObject({ version: 4n, changed: true });
    expect((await history.listVersions({})).versions[0]!.appliedBy).toBe("api (rollback to version 2)");
  });

  it("refuses an unknown version, a missing one, and a stale expected version", async () => {
    const none = await rejection(history.rollbackPolicy({ version: 1n }));
    expect(none.code).toBe(Code.NotFound);
    expect(none.rawMessage).toMatch(/config version 1 does not exist; versions go from 1 to 0 \(nothing applied yet/);
    await admin.applyPolicy({ policy: policy(6033) });
    await admin.applyPolicy({ policy: policy(6034) });
    const unknown = await rejection(history.rollbackPolicy({ version: 9n }));
    expect(unknown.code).toBe(Code.NotFound);
    expect(unknown.rawMessage).toMatch(/versions go from 1 to 2 \(mysqlgw history lists them\)/);
    const missing = await rejection(history.rollbackPolicy({}));
    expect(missing.code).toBe(Code.InvalidArgument);
    const stale = await rejection(history.rollbackPolicy({ version: 1n, expectedVersion: 1n }));
    expect(stale.code).toBe(Code.FailedPrecondition);
    expect(stale.rawMessage).toMatch(/the current version is 2, not the expected 1/);
    expect(store.history).toHaveLength(2);
  });
});

describe("HistoryService over REST (same port as the AdminService)", () => {
  let server: ControlPlaneServer;
  let base: string;
  beforeAll(async () => {
    store = createMemoryConfigStore();
    server = await startControlPlaneServer({ service: createAdminService({ store }), versions: store, host: "127.0.0.1", port: 0 });
    base = `http://127.0.0.1:${server.address.port}`;
  });
  afterAll(() => server.close());

  it("GET /v1/versions and POST /v1/policy:rollback", async () => {
    const apply = (p: Policy) => createClient(AdminService, createRouterTransport(({ service }) => service(AdminService, createAdminService({ store })))).applyPolicy({ policy: p, appliedBy: "t" });
    await apply(policy(6033));
    await apply(policy(6034));
    const list = await fetch(`${base}/v1/versions?limit=1`);
    expect(list.status).toBe(200);
    const body = (await list.json()) as { versions: { version: string; appliedBy: string; changes: { kind: string; fields: string[] }[] }[]; currentVersion: string; nextBefore: string };
    expect(body.currentVersion).toBe("2");
    expect(body.nextBefore).toBe("2");
    expect(body.versions).toHaveLength(1);
    expect(body.versions[0]).toMatchObject({ version: "2", appliedBy: "t", changes: [{ kind: "Listener", fields: ["port"] }] });

    const rb = await fetch(`${base}/v1/policy:rollback`, { method: "POST", body: JSON.stringify({ version: "1", appliedBy: "curl" }) });
    expect(rb.status).toBe(200);
    expect(await rb.json()).toMatchObject({ version: "3", changed: true, restoredVersion: "1" });
    expect(store.history[2]!.appliedBy).toBe("curl (rollback to version 1)");

    const bad = await fetch(`${base}/v1/policy:rollback`, { method: "POST", body: JSON.stringify({ version: "7" }) });
    expect(bad.status).toBe(404);
    expect(await bad.json()).toMatchObject({ code: "not_found", message: expect.stringMatching(/config version 7 does not exist/) });
    const unknownField = await fetch(`${base}/v1/policy:rollback`, { method: "POST", body: JSON.stringify({ versoin: "1" }) });
    expect(unknownField.status).toBe(400);
    const wrongMethod = await fetch(`${base}/v1/versions`, { method: "POST" });
    expect(wrongMethod.status).toBe(405);
    expect(wrongMethod.headers.get("allow")).toBe("GET");
    const badLimit = await fetch(`${base}/v1/versions?limit=x`);
    expect(badLimit.status).toBe(400);
    // the AdminService's routes are still served
    expect((await fetch(`${base}/v1/policy?version=3`)).status).toBe(200);
  });
});

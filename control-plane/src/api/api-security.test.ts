import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { AdminService, AuditService, HistoryService } from "@mysqlgw/proto";
import { createMemoryConfigStore } from "../store/memory-config-store";
import { accessOfRest, accessOfRpc, ACCESS_RULES } from "./access";
import { createAdminService } from "./admin-service";
import { changeLine, createMemoryAuditLog, redactSecrets } from "./audit";
import { appliedByOf } from "./principal";
import { startControlPlaneServer, type ControlPlaneServer } from "./server";
import { createAuthenticator, parseTokensFile, tokenSha256 } from "./tokens";

const POLICY = {
  clusters: [{ name: "demo", backends: [{ name: "primary", address: "127.0.0.1:3306" }] }],
  listeners: [{ name: "demo-rw", port: 6033, cluster: "demo" }],
  users: [],
};
const TOKENS = { viewer: "tok-viewer-1", operator: "tok-operator-1", admin: "tok-admin-1" };
const TOKENS_YAML = `tokens:\n${Object.entries(TOKENS).map(([role, t]) => `  - { name: ${role}-bot, role: ${role}, sha256: ${tokenSha256(t)} }`).join("\n")}\n`;

let server: ControlPlaneServer;
let base: string;
let audit: ReturnType<typeof createMemoryAuditLog>;

beforeEach(async () => {
  audit = createMemoryAuditLog();
  server = await startControlPlaneServer({
    service: createAdminService({ store: createMemoryConfigStore() }),
    host: "127.0.0.1",
    port: 0,
    metrics: async () => "# metrics\n",
    authenticator: createAuthenticator({ tokens: parseTokensFile(TOKENS_YAML, "tokens.yaml"), clientCertificates: false, mtlsRole: null }),
    audit,
  });
  base = `http://127.0.0.1:${server.address.port}`;
});
afterEach(() => server.close());

const rest = (p: string, token?: string, body?: unknown) =>
  fetch(base + p, {
    method: body === undefined ? "GET" : "POST",
    headers: token === undefined ? {} : { authorization: `Bearer ${token}` },
    body: body === undefined ? undefined : JSON.stringify(body),
  });

describe("the role matrix", () => {
  it("has one rule per RPC and route, unlisted ones closed", () => {
    const rpcs = ACCESS_RULES.flatMap((r) => (r.rpc === null ? [] : [r.rpc]));
    expect(new Set(rpcs).size).toBe(rpcs.length);
    for (const m of AdminService.methods) expect(accessOfRpc(`/${AdminService.typeName}/${m.name}`).rpc).not.toBeNull();
    expect(accessOfRpc("/mysqlgw.admin.v1.NewService/DoSomething")).toMatchObject({ access: "admin", mutating: true });
    expect(accessOfRest("POST", "/v1/clusters/orders:switchover")).toMatchObject({ access: "operator", mutating: true });
    expect(accessOfRest("DELETE", "/v1/clusters/orders/backends/db2")).toMatchObject({ access: "operator", mutating: true });
    expect(accessOfRest("HEAD", "/v1/policy")).toMatchObject({ access: "viewer" });
    expect(accessOfRest("GET", "/v1/unknown")).toMatchObject({ access: "viewer", mutating: false });
    expect(accessOfRest("PUT", "/v1/unknown")).toMatchObject({ access: "admin", mutating: true });
  });
});

describe("tokens file", () => {
  it("lists every problem and never wants a clear token", () => {
    expect(() => parseTokensFile("tokens:\n  - { name: a, role: root, token: abc }\n  - { name: a, role: viewer, sha256: xyz }\n", "t.yaml")).toThrow(
      /t\.yaml has 5 problems:[\s\S]*unknown key "token"[\s\S]*mysqlgw hash-token[\s\S]*role "root" is not a role[\s\S]*"a" is used twice[\s\S]*64 hex digits/,
    );
    expect(parseTokensFile(JSON.stringify({ tokens: [{ name: "x", role: "admin", sha256: "A".repeat(64) }] }), "t.json").tokens[0]!.sha256).toBe("a".repeat(64));
  });
});

describe("REST", () => {
  it("401 without or with a wrong token, 403 below the role, 200 with it; health and metrics open", async () => {
    let r = await rest("/v1/policy");
    expect(r.status).toBe(401);
    expect(r.headers.get("www-authenticate")).toBe('Bearer realm="mysqlgw"');
    expect(await r.json()).toMatchObject({ code: "unauthenticated", message: expect.stringMatching(/no token; pass a token: mysqlgw --token/) });
    r = await rest("/v1/policy", "nope");
    expect(r.status).toBe(401);
    expect((await r.json()).message).toMatch(/not valid here/);
    expect((await rest("/v1/policy", TOKENS.viewer)).status).toBe(200);
    r = await rest("/v1/policy:apply", TOKENS.operator, { policy: POLICY });
    expect(r.status).toBe(403);
    expect((await r.json()).message).toBe('token "operator-bot" has role operator; POST /v1/policy:apply needs admin; use a token with role admin or higher (an admin creates one with mysqlgw token create --role admin)');
    r = await rest("/v1/policy:apply", TOKENS.admin, { policy: POLICY, appliedBy: "curl" });
    expect(r.status).toBe(200);
    expect(await r.json()).toMatchObject({ version: "1", changed: true });
    expect((await (await rest("/v1/policy", TOKENS.viewer)).json()).config.appliedBy).toBe("admin-bot via curl");
    expect((await rest("/v1/health")).status).toBe(200);
    expect((await rest("/metrics")).status).toBe(200);
    expect((await rest("/v1/audit", TOKENS.viewer)).status).toBe(403);
    const a = await (await rest("/v1/audit", TOKENS.operator)).json();
    // newest first: the viewer's refused audit read, the apply, the refused apply, the wrong token, no token
    expect(a.records.map((x: { status: string }) => x.status)).toEqual(["PERMISSION_DENIED", "OK", "PERMISSION_DENIED", "UNAUTHENTICATED", "UNAUTHENTICATED"]);
    a.records.shift();
    expect(a.records[0]).toMatchObject({
      sequence: "4", principal: "admin-bot", role: "admin", method: "POST /v1/policy:apply",
      changes: ["+ Cluster demo", "+ Listener demo-rw"], resultingVersion: "1", peer: expect.stringMatching(/^127\.0\.0\.1:\d+$/),
    });
    expect(JSON.parse(a.records[0].requestJson)).toMatchObject({ appliedBy: "curl", policy: { clusters: [{ name: "demo" }] } });
    expect(a.records[1]).toMatchObject({ principal: "operator-bot", role: "operator", method: "POST /v1/policy:apply", error: expect.stringMatching(/needs admin/) });
    expect(JSON.stringify(a)).not.toMatch(/tok-/);
    expect((await rest("/v1/%E0%A4%A", TOKENS.admin)).status).toBe(400);
    // unlisted routes are closed: authentication first, then admin for anything but GET
    expect((await rest("/v1/nothing-here")).status).toBe(401);
    expect((await rest("/v1/policy:apply/", TOKENS.operator, {})).status).toBe(403);
  });
});

describe("gRPC and Connect", () => {
  it("same rules through the interceptor; the audit records the RPC", async () => {
    const grpc = (token?: string) => createGrpcTransport({ baseUrl: base, interceptors: token === undefined ? [] : [(next) => (req) => {
      req.header.set("authorization", `Bearer ${token}`);
      return next(req);
    }] });
    const connect = (token: string) => createConnectTransport({ baseUrl: base, httpVersion: "1.1", interceptors: [(next) => (req) => {
      req.header.set("authorization", `Bearer ${token}`);
      return next(req);
    }] });
    await expect(createClient(AdminService, grpc()).getPolicy({})).rejects.toMatchObject({ code: Code.Unauthenticated });
    await expect(createClient(AdminService, grpc()).getHealth({})).resolves.toMatchObject({ status: "SERVING" });
    const viewer = createClient(AdminService, grpc(TOKENS.viewer));
    await expect(viewer.getPolicy({})).resolves.toBeDefined();
    const err = await viewer.applyPolicy({ policy: POLICY }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConnectError);
    expect((err as ConnectError).code).toBe(Code.PermissionDenied);
    const admin = createClient(AdminService, connect(TOKENS.admin));
    expect((await admin.applyPolicy({ policy: POLICY, appliedBy: "cli:me@host" })).version).toBe(1n);
    const hist = createClient(HistoryService, connect(TOKENS.admin));
    await expect(hist.rollbackPolicy({ version: 1n })).resolves.toMatchObject({ changed: false });
    const records = (await createClient(AuditService, connect(TOKENS.operator)).listAuditRecords({ limit: 2 })).records;
    expect(records.map((r) => [r.method, r.principal, r.status])).toEqual([
      ["/mysqlgw.admin.v1.HistoryService/RollbackPolicy", "admin-bot", "OK"],
      ["/mysqlgw.admin.v1.AdminService/ApplyPolicy", "admin-bot", "OK"],
    ]);
    expect(records[1]!.changes).toEqual(["+ Cluster demo", "+ Listener demo-rw"]);
    expect(audit.records.find((r) => r.status === "PERMISSION_DENIED")).toMatchObject({ principal: "viewer-bot", method: "/mysqlgw.admin.v1.AdminService/ApplyPolicy" });
    const applied = await createClient(AdminService, connect(TOKENS.viewer)).getPolicy({});
    expect(applied.config?.appliedBy).toBe("admin-bot via cli:me@host");
  });
});

describe("helpers", () => {
  it("redacts secret-looking keys and prints changes on one line", () => {
    expect(redactSecrets({ a: 1, users: [{ name: "u", passwordHash: "*AB", backendCredentials: { secretRef: "env:X" } }], token: "t" })).toEqual({
      a: 1, users: [{ name: "u", passwordHash: "[redacted]", backendCredentials: "[redacted]" }], token: "[redacted]",
    });
    expect(changeLine({ action: 2, kind: "Listener", name: "rw", fields: ["port", "users[0].passwordHash"], beforeJson: '{"port":1}', afterJson: '{"port":2}' }))
      .toBe("~ Listener rw: port 1 → 2; users[0].passwordHash changed");
    expect(appliedByOf(undefined, "", "api")).toBe("api");
  });
});

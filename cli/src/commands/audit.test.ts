import { create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createClient, createRouterTransport } from "@connectrpc/connect";
import { AuditRecordSchema, AuditService } from "@mysqlgw/proto";
import { run } from "../program";
import { tokenSha256 } from "./token";

const T = Date.UTC(2026, 10, 22, 15, 2, 11);

async function cli(args: string[], listAuditRecords: (req: { limit: number; before: bigint }) => unknown) {
  const out: string[] = [];
  const err: string[] = [];
  const transport = createRouterTransport(({ service }) => service(AuditService, { listAuditRecords: listAuditRecords as never }));
  const code = await run(args, { stdout: (l) => out.push(l), stderr: (l) => err.push(l), createAuditClient: () => createClient(AuditService, transport) });
  return { code, out, err };
}

describe("mysqlgw audit", () => {
  it("prints a row per record with its changes and error under it, and the next page", async () => {
    const asked: { limit: number; before: bigint }[] = [];
    const r = await cli(["audit", "--limit", "2", "--before", "13"], (req) => {
      asked.push({ limit: req.limit, before: req.before });
      return {
        records: [
          create(AuditRecordSchema, {
            sequence: 12n, at: timestampFromMs(T), principal: "ci-deploy", role: "admin", peer: "10.0.0.9:50312",
            method: "/mysqlgw.admin.v1.AdminService/ApplyPolicy", status: "OK", changes: ["~ Listener orders-rw: port 6033 → 6034"], resultingVersion: 7n,
          }),
          create(AuditRecordSchema, {
            sequence: 11n, at: timestampFromMs(T - 31_000), peer: "10.0.0.7:41188", method: "GET /v1/policy", status: "UNAUTHENTICATED", error: "no token; pass a token\nsecond line",
          }),
        ],
        nextBefore: 11n,
      };
    });
    expect(r.err).toEqual([]);
    expect(asked).toEqual([{ limit: 2, before: 13n }]);
    expect(r.out).toEqual([
      "SEQ  AT                    PRINCIPAL  ROLE   PEER            METHOD                                      STATUS           VERSION",
      "12   2026-11-22T15:02:11Z  ci-deploy  admin  10.0.0.9:50312  /mysqlgw.admin.v1.AdminService/ApplyPolicy  OK               7",
      "      ~ Listener orders-rw: port 6033 → 6034",
      "11   2026-11-22T15:01:40Z  -          -      10.0.0.7:41188  GET /v1/policy                              UNAUTHENTICATED  -",
      "      error: no token; pass a token",
      "older records: mysqlgw audit --before 11",
    ]);
  });

  it("says what to do when refused, and checks its options", async () => {
    const denied = await cli(["audit"], () => {
      throw new ConnectError('token "grafana" has role viewer; /mysqlgw.admin.v1.AuditService/ListAuditRecords needs operator; use a token with role operator or higher', Code.PermissionDenied);
    });
    expect(denied.code).toBe(1);
    expect(denied.err).toEqual(['error: permission denied: token "grafana" has role viewer; /mysqlgw.admin.v1.AuditService/ListAuditRecords needs operator; use a token with role operator or higher']);
    const bad = await cli(["audit", "--limit", "5000"], () => ({ records: [] }));
    expect(bad.code).toBe(2);
    const none = await cli(["audit"], () => ({ records: [] }));
    expect(none.out).toEqual(["no audit record"]);
  });
});

describe("mysqlgw token create / hash-token", () => {
  it("prints a new token once and the tokens-file line with its SHA-256", async () => {
    const out: string[] = [];
    const code = await run(["token", "create", "--name", "ci-deploy", "--role", "admin"], { stdout: (l) => out.push(l), stderr: () => undefined });
    expect(code).toBe(0);
    expect(out[1]).toMatch(/^mgw_[A-Za-z0-9_-]{43}$/);
    expect(out[3]).toBe(`  - { name: ci-deploy, role: admin, sha256: ${tokenSha256(out[1]!)} }`);
    const err: string[] = [];
    expect(await run(["token", "create", "--name", "x", "--role", "root"], { stdout: () => undefined, stderr: (l) => err.push(l) })).toBe(2);
    expect(err[0]).toBe('error: --role "root" is not a role — use one of viewer, operator, admin (docs/security.md)');
  });
});

import { create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createClient, createRouterTransport } from "@connectrpc/connect";
import { AdminService, HistoryService, PolicyViolationsSchema, ResourceChange_Action as A, ResourceChangeSchema } from "@mysqlgw/proto";
import { run } from "../program";
import { summarizeChanges } from "./history";

const change = (action: A, kind: string, name: string, fields: string[] = []) => create(ResourceChangeSchema, { action, kind, name, fields });

/** A stand-in HistoryService recording what the CLI asked. */
function fakeHistory() {
  const asked: string[] = [];
  const transport = createRouterTransport(({ service }) =>
    service(HistoryService, {
      listVersions(req) {
        asked.push(`list limit=${req.limit} before=${req.before}`);
        return {
          currentVersion: 7n,
          nextBefore: 6n,
          versions: [
            { version: 7n, appliedBy: "cli:a@h", appliedAt: timestampFromMs(Date.UTC(2026, 10, 22, 12, 1, 2)), changes: [change(A.UPDATE, "Listener", "rw", ["port"])] },
            { version: 6n, appliedBy: "", changes: [] },
          ],
        };
      },
      rollbackPolicy(req) {
        asked.push(`rollback ${req.version} dry=${req.dryRun} by=${req.appliedBy.startsWith("cli:")}`);
        if (req.version === 2n) {
          throw new ConnectError("policy is invalid", Code.InvalidArgument, undefined, [
            { desc: PolicyViolationsSchema, value: create(PolicyViolationsSchema, { violations: [{ kind: "User", name: "app", field: "passwordHash", description: "not a hash; put the hash here" }] }) },
          ]);
        }
        return { version: req.dryRun ? 7n : 8n, changed: !req.dryRun, restoredVersion: req.version, changes: [change(A.DELETE, "User", "bi")] };
      },
    }),
  );
  return { client: createClient(HistoryService, transport), asked };
}

async function cli(args: string[], h = fakeHistory()) {
  const out: string[] = [];
  const err: string[] = [];
  const admin = createClient(AdminService, createRouterTransport(() => undefined));
  const code = await run(args, { stdout: (l) => out.push(l), stderr: (l) => err.push(l), createClient: () => admin, createHistoryClient: () => h.client });
  return { code, out, err, asked: h.asked };
}

describe("mysqlgw history", () => {
  it("prints a table, marks the current version, points at the next page", async () => {
    const r = await cli(["history", "--limit", "2"]);
    expect(r.err).toEqual([]);
    expect(r.asked).toEqual(["list limit=2 before=0"]);
    expect(r.out[0]).toMatch(/^VERSION +APPLIED \(UTC\) +BY +CHANGES$/);
    expect(r.out[1]).toMatch(/^7 \* +2026-11-22 12:01:02Z +cli:a@h +~Listener rw \(port\)$/);
    expect(r.out[2]).toMatch(/^6 +- +- +\(no change\)$/);
    expect(r.out[4]).toBe("older versions: mysqlgw history --before 6");
  });

  it("summarizes long change lists", () => {
    const many = ["a", "b", "c", "d", "e", "f"].map((n) => change(A.ADD, "User", n));
    expect(summarizeChanges(many)).toBe("+User a, +User b, +User c, +User d, +2 more");
    expect(summarizeChanges([change(A.UPDATE, "Cluster", "c", ["a", "b", "c", "d"])])).toBe("~Cluster c (a, b, c, …)");
  });
});

describe("mysqlgw rollback", () => {
  it("applies, or shows what it would change", async () => {
    const r = await cli(["rollback", "3"]);
    expect(r.asked).toEqual(["rollback 3 dry=false by=true"]);
    expect(r.out).toEqual(["- User bi", "rolled back: version 8 restores version 3 (1 change)"]);
    const d = await cli(["rollback", "3", "--dry-run"]);
    expect(d.out[1]).toBe("dry run: rolling back to version 3 would apply 1 change as version 8; nothing was written");
  });

  it("lists every problem when today's validation refuses the old policy", async () => {
    const r = await cli(["rollback", "2"]);
    expect(r.code).toBe(1);
    expect(r.err[0]).toMatch(/^error: version 2 cannot be restored as it is: today's validation refuses it \(1 problem\); nothing was written/);
    expect(r.err[1]).toBe("error:   User app field passwordHash: not a hash; put the hash here");
  });

  it("refuses a VERSION that is not a number (exit 2)", async () => {
    const r = await cli(["rollback", "0"]);
    expect(r.code).toBe(2);
    expect(r.asked).toEqual([]);
  });
});

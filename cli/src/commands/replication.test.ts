import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import { OperationRecordSchema, type OperationRecord } from "@mysqlgw/proto";
import { Command } from "commander";
import { CliError } from "../cli-error";
import type { CommandContext } from "./context";
import { formatOperations, registerReplicationCommands, REQUESTED_BY_HEADER, type ReplicationClient } from "./replication";

function rec(p: Omit<MessageInitShape<typeof OperationRecordSchema>, "$typeName">): OperationRecord {
  return create(OperationRecordSchema, { cluster: "shop", startedAt: timestampFromMs(Date.UTC(2026, 10, 22, 15, 0, 0)), ...p });
}

function setup(client: Partial<ReplicationClient>): { run(args: string[]): Promise<void>; out: string[]; err: string[]; calls: { method: string; req: unknown; headers: unknown }[] } {
  const out: string[] = [];
  const err: string[] = [];
  const calls: { method: string; req: unknown; headers: unknown }[] = [];
  const recording = new Proxy(client, {
    get(target, method: string) {
      const fn = (target as Record<string, (req: unknown, o: { headers?: unknown }) => unknown>)[method];
      return fn === undefined ? undefined : (req: unknown, o: { headers?: unknown }) => {
        calls.push({ method, req, headers: o.headers });
        return fn(req, o);
      };
    },
  }) as ReplicationClient;
  const ctx: CommandContext = { api: "http://127.0.0.1:1", timeoutMs: 1000, client: {} as CommandContext["client"], stdout: (l) => out.push(l), stderr: (l) => err.push(l) };
  const program = new Command("mysqlgw").exitOverride();
  registerReplicationCommands(program, () => ctx, () => recording);
  return { run: async (args) => void (await program.parseAsync(args, { from: "user" })), out, err, calls };
}

test("replica detach: the request, who asks, each step, then one line", async () => {
  const t = setup({
    detachReplica: async () => ({ operation: rec({ sequence: 7n, operation: "DETACH_REPLICA", backend: "db3", ok: true, steps: ["db3: STOP SLAVE", "db3: RESET SLAVE ALL"] }) }) as never,
  });
  await t.run(["replica", "detach", "--cluster", "shop", "--backend", "db3"]);
  expect(t.calls[0]).toMatchObject({ method: "detachReplica", req: { cluster: "shop", backend: "db3", dryRun: false } });
  expect((t.calls[0]!.headers as Record<string, string>)[REQUESTED_BY_HEADER]).toMatch(/^cli:.+@.+$/);
  expect(t.out).toEqual(["  db3: STOP SLAVE", "  db3: RESET SLAVE ALL", "done: DETACH_REPLICA shop/db3 (operation 7)"]);
});

test("a refusal: the steps that ran on stdout, then the server's reason as a CliError (exit 1)", async () => {
  const r = rec({ operation: "REJOIN", backend: "db3", ok: false, steps: ["db3: SET GLOBAL read_only=1", "db3: SET GLOBAL read_only=0 (undo)"] });
  const t = setup({
    rejoinBackend: async () => {
      throw new ConnectError("db3 has transactions the primary db1 lacks: 0-3-7 (…); look at them …", Code.FailedPrecondition, undefined, [{ desc: OperationRecordSchema, value: r }]);
    },
  });
  const e = await t.run(["backend", "rejoin", "--cluster", "shop", "--backend", "db3"]).then(() => null, (x: unknown) => x);
  expect(e).toBeInstanceOf(CliError);
  expect((e as CliError).exitCode).toBe(1);
  expect((e as CliError).render()).toEqual(["error: db3 has transactions the primary db1 lacks: 0-3-7 (…); look at them …"]);
  expect(t.out).toEqual(["  db3: SET GLOBAL read_only=1", "  db3: SET GLOBAL read_only=0 (undo)"]);
});

test("register: --weight checked before any call; a dry run says nothing was changed", async () => {
  const t = setup({
    registerBackend: async () => ({ operation: rec({ operation: "REGISTER_BACKEND", backend: "db4", ok: true, steps: ["policy: would write version 4: register backend db4 (10.0.0.4:3306) in cluster shop"] }) }) as never,
  });
  const bad = await t.run(["backend", "register", "--cluster", "shop", "--name", "db4", "--address", "10.0.0.4:3306", "--weight", "0"]).then(() => null, (x: unknown) => x);
  expect((bad as CliError).exitCode).toBe(2);
  expect(t.calls).toEqual([]);
  await t.run(["backend", "register", "--cluster", "shop", "--name", "db4", "--address", "10.0.0.4:3306", "--weight", "2", "--dry-run"]);
  expect(t.calls[0]!.req).toMatchObject({ cluster: "shop", backend: { name: "db4", address: "10.0.0.4:3306", weight: 2 }, dryRun: true });
  expect(t.out.at(-1)).toBe("dry run: REGISTER_BACKEND shop/db4 would run the steps above; nothing was changed");
});

test("operations: a table newest first, errors in their column, steps with --steps", () => {
  const ops = [
    rec({ sequence: 2n, operation: "RESUME", backend: "db1", ok: false, requestedBy: "cli:a@b", error: "db1 is a former primary fenced at failover epoch 1 (…)\nsecond line" }),
    rec({ sequence: 1n, operation: "PAUSE", backend: "db2", ok: true, requestedBy: "api", steps: ["db2: STOP SLAVE"] }),
  ];
  expect(formatOperations(ops, {})).toEqual([
    "SEQ  STARTED                   CLUSTER  BACKEND  OPERATION  RESULT  REQUESTED BY  ERROR",
    "2    2026-11-22T15:00:00.000Z  shop     db1      RESUME     failed  cli:a@b       db1 is a former primary fenced at failover epoch 1 (…)",
    "1    2026-11-22T15:00:00.000Z  shop     db2      PAUSE      ok      api",
  ]);
  expect(formatOperations(ops, { steps: true }).slice(3)).toEqual(["", "2 RESUME shop/db1:", "  (no steps)", "", "1 PAUSE shop/db2:", "  db2: STOP SLAVE"]);
  expect(formatOperations([], { cluster: "shop" })).toEqual(["no operation recorded for cluster shop"]);
  expect(JSON.parse(formatOperations(ops.slice(1), { json: true })[0]!)).toEqual([expect.objectContaining({ sequence: "1", operation: "PAUSE", startedAt: "2026-11-22T15:00:00.000Z" })]);
});

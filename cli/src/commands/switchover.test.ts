import { create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { createClient, createRouterTransport } from "@connectrpc/connect";
import { FailoverRecord_Kind, FailoverRecord_Outcome, FailoverRecordSchema, OperationRecordSchema, ReplicationService, type SwitchoverRequest } from "@mysqlgw/proto";
import { CliError } from "../cli-error";
import type { CommandContext } from "./context";
import { parseDuration, switchoverCommand } from "./switchover";

const T = Date.UTC(2026, 10, 22, 15, 0, 0);
const at = (ms: number) => timestampFromMs(T + ms);

function fake(outcome: FailoverRecord_Outcome, error = "") {
  const asked: SwitchoverRequest[] = [];
  const transport = createRouterTransport(({ service }) =>
    service(ReplicationService, {
      switchover(req) {
        asked.push(req);
        const record = create(FailoverRecordSchema, {
          kind: FailoverRecord_Kind.SWITCHOVER, cluster: req.cluster, epoch: 1n, oldPrimary: "db1", newPrimary: "db2", outcome, error,
          candidates: ["db2 received=0-1-9 applied=0-1-9 lag=0s"], repointed: ["db3", "db1"],
          detectedAt: at(0), chosenAt: at(100), holdStartedAt: at(150), drainedAt: at(210), caughtUpAt: at(230), promotedAt: at(250), repointedAt: at(380), rolesPublishedAt: at(430), releasedAt: at(440),
        });
        return { record, operation: create(OperationRecordSchema, { operation: "SWITCHOVER", ok: !error, steps: ["db1: SET GLOBAL read_only=1"] }) };
      },
    }),
  );
  return { client: createClient(ReplicationService, transport), asked };
}

function ctx(): CommandContext & { out: string[]; err: string[] } {
  const out: string[] = [];
  const err: string[] = [];
  return { api: "http://127.0.0.1:7070", timeoutMs: 1000, client: null as never, stdout: (l) => out.push(l), stderr: (l) => err.push(l), out, err };
}

describe("mysqlgw switchover", () => {
  it("sends the windows as durations and prints the timeline", async () => {
    const api = fake(FailoverRecord_Outcome.PROMOTED);
    const c = ctx();
    await switchoverCommand(c, api.client, { cluster: "shop", to: "db2", holdTimeout: "2.5s", drainTimeout: "800ms", dryRun: false });
    expect(api.asked[0]).toMatchObject({ cluster: "shop", to: "db2", dryRun: false, holdTimeout: { seconds: 2n, nanos: 500_000_000 }, drainTimeout: { seconds: 0n, nanos: 800_000_000 } });
    expect(c.out).toEqual([
      "running a switchover of shop to db2 (writes held at most 2500 ms, open transactions ended after 800 ms)…",
      "shop: db1 → db2 (epoch 1)",
      "  candidate db2 received=0-1-9 applied=0-1-9 lag=0s",
      "  +  100 ms  (  100 ms)  planned: db1 → db2",
      "  +  150 ms  (   50 ms)  data planes hold new writes and transactions",
      "  +  210 ms  (   60 ms)  open transactions finished; db1 set read_only",
      "  +  230 ms  (   20 ms)  db2 applied db1's last transaction",
      "  +  250 ms  (   20 ms)  db2 promoted",
      "  +  380 ms  (  130 ms)  re-pointed to db2: db3, db1",
      "  +  430 ms  (   50 ms)  new roles published by the monitor",
      "  +  440 ms  (   10 ms)  held statements released to db2",
      "  writes held for 290 ms",
      "switchover of shop done: db2 is the primary",
    ]);
    expect(c.err).toEqual([]);
  });

  it("an aborted switchover exits 1 with its error", async () => {
    const c = ctx();
    const err = await switchoverCommand(c, fake(FailoverRecord_Outcome.ABORTED, "db2 did not apply db1's last transactions").client, { cluster: "shop", holdTimeout: "5s", drainTimeout: "3s", dryRun: false }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CliError);
    expect((err as CliError).exitCode).toBe(1);
    expect((err as CliError).message).toBe("switchover of shop aborted: db2 did not apply db1's last transactions");
  });

  it("a dry run prints the statements it would run", async () => {
    const c = ctx();
    await switchoverCommand(c, fake(FailoverRecord_Outcome.UNSPECIFIED).client, { cluster: "shop", holdTimeout: "5s", drainTimeout: "3s", dryRun: true });
    expect(c.out.slice(-2)).toEqual(["would run (nothing was changed):", "  db1: SET GLOBAL read_only=1"]);
  });

  it("refuses a window that is not a duration", async () => {
    const err = await switchoverCommand(ctx(), fake(FailoverRecord_Outcome.PROMOTED).client, { cluster: "shop", holdTimeout: "5", drainTimeout: "3s", dryRun: false }).catch((e: unknown) => e);
    expect((err as CliError).exitCode).toBe(2);
    expect(parseDuration("1.5s")).toBe(1500);
    expect(parseDuration("2m")).toBe(120_000);
    expect(parseDuration("x")).toBeNull();
  });
});

import { create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { createClient, createRouterTransport } from "@connectrpc/connect";
import { AdminService, FailoverRecord_Outcome, FailoverRecordSchema, type FailoverRecord } from "@mysqlgw/proto";
import { run } from "../program";

function fakeApi(failovers: FailoverRecord[]) {
  const asked: string[] = [];
  const transport = createRouterTransport(({ service }) => service(AdminService, {
    listFailovers(req) {
      asked.push(req.cluster);
      return { failovers: failovers.filter((f) => req.cluster === "" || f.cluster === req.cluster) };
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

const T = Date.UTC(2026, 10, 22, 12, 0, 0);
const at = (ms: number) => timestampFromMs(T + ms);

describe("mysqlgw failovers", () => {
  it("prints each failover's timeline after detection, and the error of an aborted one", async () => {
    const api = fakeApi([
      create(FailoverRecordSchema, {
        cluster: "shop", epoch: 2n, oldPrimary: "db2", outcome: FailoverRecord_Outcome.ABORTED, error: "no replica of shop answers the monitor's probes; nothing to promote",
        detectedAt: at(60_000), confirmedAt: at(60_100),
      }),
      create(FailoverRecordSchema, {
        cluster: "shop", epoch: 1n, oldPrimary: "db1", newPrimary: "db2", outcome: FailoverRecord_Outcome.PROMOTED,
        detectedAt: at(0), confirmedAt: at(7), chosenAt: at(94), caughtUpAt: at(112), promotedAt: at(121), repointedAt: at(142), rolesPublishedAt: at(256),
      }),
    ]);
    const r = await cli(["failovers", "--cluster", "shop"], api);
    expect(api.asked).toEqual(["shop"]);
    expect(r.code).toBe(0);
    expect(r.out).toEqual([
      "CLUSTER  EPOCH  DETECTED                  OLD  NEW  OUTCOME   CONFIRMED  CHOSEN  CAUGHT UP  PROMOTED  RE-POINTED  PUBLISHED",
      "shop     2      2026-11-22T12:01:00.000Z  db2  -    ABORTED   +100ms     -       -          -         -           -",
      "shop     1      2026-11-22T12:00:00.000Z  db1  db2  PROMOTED  +7ms       +94ms   +112ms     +121ms    +142ms      +256ms",
    ]);
    expect(r.err).toEqual(["shop epoch 2: no replica of shop answers the monitor's probes; nothing to promote"]);
  });

  it("says when there is none", async () => {
    const r = await cli(["failovers"], fakeApi([]));
    expect(r.out).toEqual(["no failover recorded"]);
  });
});

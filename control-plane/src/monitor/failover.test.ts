import { create } from "@bufbuild/protobuf";
import { BackendViewSchema } from "@mysqlgw/proto";
import { chooseCandidate, confirmDown, gtidCovers, parseGtidPos } from "./failover";

const view = (dataPlaneId: string, reachable: boolean) => create(BackendViewSchema, { dataPlaneId, cluster: "c", backend: "db1", reachable });

describe("parseGtidPos / gtidCovers", () => {
  test("parses a GTID list per domain, keeping the highest seq", () => {
    expect(parseGtidPos("0-1-5,1-2-9")).toEqual(new Map([[0, 5n], [1, 9n]]));
    expect(parseGtidPos("")).toEqual(new Map());
    expect(parseGtidPos("0-1-x")).toBeNull();
  });
  test("covers compares every domain of the other list", () => {
    expect(gtidCovers(parseGtidPos("0-1-5,1-1-3")!, parseGtidPos("0-1-5")!)).toBe(true);
    expect(gtidCovers(parseGtidPos("0-1-5")!, parseGtidPos("0-1-5,1-1-3")!)).toBe(false);
    expect(gtidCovers(parseGtidPos("0-1-4")!, parseGtidPos("0-1-5")!)).toBe(false);
  });
});

describe("chooseCandidate", () => {
  test("the replica that RECEIVED the most wins, whatever it applied", () => {
    const c = chooseCandidate([
      { backend: "db2", received: "0-1-100", applied: "0-1-100" },
      { backend: "db3", received: "0-1-120", applied: "0-1-10" },
    ]);
    expect(c?.backend).toBe("db3");
  });
  test("ties go to the first in policy order; divergent domains to the largest sum", () => {
    expect(chooseCandidate([{ backend: "db2", received: "0-1-7", applied: "" }, { backend: "db3", received: "0-1-7", applied: "" }])?.backend).toBe("db2");
    expect(chooseCandidate([{ backend: "db2", received: "0-1-7,1-1-1", applied: "" }, { backend: "db3", received: "0-1-5,1-1-9", applied: "" }])?.backend).toBe("db3");
  });
  test("none, or a position that does not parse: no choice", () => {
    expect(chooseCandidate([])).toBeNull();
    expect(chooseCandidate([{ backend: "db2", received: "junk", applied: "" }])).toBeNull();
  });
});

describe("confirmDown", () => {
  const live = new Set(["a", "b", "c", "d"]);
  test("one or two reporting: all of them must fail to reach it", () => {
    expect(confirmDown([view("a", false)], live, false).confirmed).toBe(true);
    expect(confirmDown([view("a", false), view("b", true)], live, false).confirmed).toBe(false);
    expect(confirmDown([view("a", false), view("b", false)], live, false)).toMatchObject({ confirmed: true, unreachableFrom: ["a", "b"], reporting: 2 });
  });
  test("more than two: a strict majority", () => {
    expect(confirmDown([view("a", false), view("b", false), view("c", true)], live, false).confirmed).toBe(true);
    expect(confirmDown([view("a", false), view("b", false), view("c", true), view("d", true)], live, false).confirmed).toBe(false);
  });
  test("views of data planes no longer registered do not count", () => {
    expect(confirmDown([view("a", false), view("gone", true)], live, false).confirmed).toBe(true);
  });
  test("nobody reporting: the monitor decides alone only with withoutDataPlanes", () => {
    expect(confirmDown([], live, false)).toMatchObject({ confirmed: false, reporting: 0 });
    expect(confirmDown([view("gone", false)], live, true).confirmed).toBe(true);
  });
});

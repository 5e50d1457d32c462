import { etcdKeys } from "@mysqlgw/proto";
import { HealthMirror, parseHealthKey } from "./etcd-health-source";

const prefix = etcdKeys("/mysqlgw").healthPrefix;

describe("parseHealthKey", () => {
  it("splits <prefix><cluster>/<backend>", () => {
    expect(parseHealthKey("/mysqlgw/v1/health/orders/db1", prefix)).toEqual({ cluster: "orders", backend: "db1" });
  });
  it.each(["/mysqlgw/v1/health/orders", "/mysqlgw/v1/health/orders/", "/mysqlgw/v1/health//db1", "/mysqlgw/v1/health/a/b/c", "/other/v1/health/a/b"])("ignores %s", (key) => {
    expect(parseHealthKey(key, prefix)).toBeNull();
  });
});

describe("HealthMirror", () => {
  function mirror(): { m: HealthMirror; got: Array<[string, string, string | null]> } {
    const got: Array<[string, string, string | null]> = [];
    return { m: new HealthMirror(prefix, (c, b, j) => got.push([c, b, j])), got };
  }
  const k = (c: string, b: string) => `${prefix}${c}/${b}`;

  it("delivers new and changed values once, and deletions of known keys", () => {
    const { m, got } = mirror();
    m.put(k("c", "a"), "1");
    m.put(k("c", "a"), "1"); // unchanged: nothing
    m.put(k("c", "a"), "2");
    m.delete(k("c", "a"));
    m.delete(k("c", "a")); // unknown now: nothing
    m.put("/mysqlgw/v1/health/bad", "x"); // not a health key
    expect(got).toEqual([
      ["c", "a", "1"],
      ["c", "a", "2"],
      ["c", "a", null],
    ]);
    expect(m.size).toBe(0);
  });

  it("after a full read (a new session), delivers what changed and deletes what vanished meanwhile", () => {
    const { m, got } = mirror();
    m.replaceAll([
      [k("c", "a"), "1"],
      [k("c", "b"), "1"],
      [k("d", "x"), "1"],
    ]);
    got.length = 0;
    m.replaceAll([
      [k("c", "a"), "1"], // same
      [k("c", "b"), "2"], // changed
      [k("e", "y"), "1"], // new
    ]);
    expect(got).toEqual([
      ["c", "b", "2"],
      ["e", "y", "1"],
      ["d", "x", null],
    ]);
    expect([...m.values()].map((e) => `${e.cluster}/${e.backend}=${e.json}`).sort()).toEqual(["c/a=1", "c/b=2", "e/y=1"]);
  });
});

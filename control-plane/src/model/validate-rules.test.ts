import { create } from "@bufbuild/protobuf";
import { durationFromMs } from "@bufbuild/protobuf/wkt";
import { PolicySchema, RouteAction_Target } from "@mysqlgw/proto";
import { validatePolicy } from "./validate";
import { MAX_RULES } from "./validate-rules";

type PolicyInit = Parameters<typeof create<typeof PolicySchema>>[1];
type Rules = NonNullable<NonNullable<PolicyInit>["rules"]>;

function withRules(rules: Rules) {
  return create(PolicySchema, {
    clusters: [{ name: "orders", backends: [{ name: "db1", address: "127.0.0.1:3306" }] }, { name: "shadow", backends: [{ name: "db1", address: "127.0.0.1:3307" }] }],
    listeners: [{ name: "split", port: 6033, cluster: "orders" }],
    users: [{ name: "app" }],
    rules,
  });
}

const violations = (rules: Rules) => validatePolicy(withRules(rules)).map((v) => `${v.kind} ${v.name} #${v.index} ${v.field}: ${v.description}`);

describe("Policy.rules validation", () => {
  it("accepts complete rules of every action", () => {
    expect(violations([
      { name: "exempt-admin", match: { users: ["app"], listeners: ["split"] } },
      { name: "no-unbounded-deletes", match: { kinds: ["DELETE", "update"], pattern: "^(?!.*\\bwhere\\b)" }, deny: { code: 1148, sqlstate: "42000", message: "add a WHERE" } },
      { name: "reports", match: { schemas: ["shop"], tables: ["orders", "shop.items"], digests: ["0123456789abcdef"] }, route: { cluster: "shadow", target: RouteAction_Target.REPLICA } },
      { name: "fix-hint", rewrite: { pattern: "sbtest(\\d)", replacement: "t$1" }, mirror: { cluster: "shadow", ratio: 0.5 } },
      { name: "cache-lookups", match: { kinds: ["SELECT"] }, cache: { ttl: durationFromMs(5000), maxResultBytes: 1000, maxBytes: 100000n } },
      { name: "deny-default", deny: {} },
      { name: "cache-any", cache: { ttl: durationFromMs(1) } },
    ])).toEqual([]);
  });

  it("names: present, well-formed, unique", () => {
    expect(violations([{ name: "" }, { name: "Bad Name" }, { name: "a" }, { name: "a" }])).toEqual([
      expect.stringMatching(/^QueryRule {2}#0 name: rule name is missing/),
      expect.stringMatching(/^QueryRule Bad Name #1 name: "Bad Name" is not a valid rule name/),
      expect.stringMatching(/^QueryRule a #3 name: rule "a" appears twice \(also rules\[2\]\)/),
    ]);
  });

  it("match conditions: defined users and listeners, known kinds, 16-hex digests, a compiling pattern, table names", () => {
    const v = violations([{
      name: "r",
      match: { users: ["ghost"], listeners: ["nope"], schemas: ["a.b"], kinds: ["SELEC", "describe", "FOO"], digests: ["xyz", "0123456789ABCDEF"], pattern: "(", tables: ["a.b.c", "`t`", "ok", "s.ok"] },
    }]);
    expect(v).toEqual([
      expect.stringMatching(/match.users\[0\]: user "ghost" is not defined/),
      expect.stringMatching(/match.listeners\[0\]: listener "nope" is not defined .*\(defined: split\)/),
      expect.stringMatching(/match.schemas\[0\]: "a.b" is not a schema name/),
      expect.stringMatching(/match.kinds\[0\]: "SELEC" is not a statement kind — did you mean SELECT\?/),
      expect.stringMatching(/match.kinds\[2\]: "FOO" is not a statement kind; use one of OTHER, SELECT/),
      expect.stringMatching(/match.digests\[0\]: "xyz" is not a digest; use the 16 hex digits/),
      expect.stringMatching(/match.pattern: the regular expression does not compile \(.*\)/),
      expect.stringMatching(/match.tables\[0\]: "a.b.c" is not a table/),
      expect.stringMatching(/match.tables\[1\]: "`t`" is not a table/),
    ]);
  });

  it("deny excludes the other actions and has a MySQL error code and SQLSTATE", () => {
    expect(violations([{ name: "d", deny: { code: 999, sqlstate: "4200", message: "x".repeat(513) }, route: { target: RouteAction_Target.PRIMARY }, cache: { ttl: durationFromMs(1000) } }])).toEqual([
      expect.stringMatching(/deny: a rule that denies runs nothing, so route, cache would never apply/),
      expect.stringMatching(/deny.code: 999 is not a MySQL error number; use 1000..65535/),
      expect.stringMatching(/deny.sqlstate: "4200" is not a SQLSTATE/),
      expect.stringMatching(/deny.message: the message is 513 bytes/),
    ]);
    expect(violations([{ name: "d", deny: { code: 65536 } }])).toEqual([expect.stringMatching(/deny.code: 65536/)]);
  });

  it("route and mirror clusters exist; a route does something; ratio is a share", () => {
    expect(violations([
      { name: "a", route: { cluster: "nowhere" } },
      { name: "b", route: {} },
      { name: "c", mirror: { ratio: 1.5 } },
      { name: "d", mirror: { cluster: "gone", ratio: -0.1 } },
    ])).toEqual([
      expect.stringMatching(/#0 route.cluster: cluster "nowhere" is not defined .*\(defined: orders, shadow\)/),
      expect.stringMatching(/#1 route: the route names neither a cluster nor a target/),
      expect.stringMatching(/#2 mirror.cluster: the mirror names no cluster/),
      expect.stringMatching(/#2 mirror.ratio: 1.5 is not a share; use 0..1/),
      expect.stringMatching(/#3 mirror.cluster: cluster "gone" is not defined/),
      expect.stringMatching(/#3 mirror.ratio: -0.1 is not a share/),
    ]);
  });

  it("rewrite needs a compiling pattern", () => {
    expect(violations([{ name: "a", rewrite: { replacement: "x" } }, { name: "b", rewrite: { pattern: "[", replacement: "x" } }])).toEqual([
      expect.stringMatching(/#0 rewrite.pattern: the rewrite has no pattern/),
      expect.stringMatching(/#1 rewrite.pattern: the regular expression does not compile/),
    ]);
  });

  it("cache needs a ttl, bounds that fit, and a rule that can match SELECTs only", () => {
    expect(violations([
      { name: "a", cache: {} },
      { name: "b", cache: { ttl: durationFromMs(2 * 86_400_000) } },
      { name: "c", cache: { ttl: durationFromMs(1000), maxResultBytes: 2_000_000, maxBytes: 1_000_000n } },
      { name: "d", match: { kinds: ["SELECT", "UPDATE"] }, cache: { ttl: durationFromMs(1000) } },
    ])).toEqual([
      expect.stringMatching(/#0 cache.ttl: the cache has no ttl/),
      expect.stringMatching(/#1 cache.ttl: 172800000 ms is out of range; use 1 ms to 1 day/),
      expect.stringMatching(/#2 cache.maxResultBytes: one result \(2000000 bytes\) may not exceed .*maxBytes 1000000/),
      expect.stringMatching(/#3 cache: only SELECT results are cached, so a cache on a rule matching UPDATE would never apply/),
    ]);
  });

  it("bounds the number of rules", () => {
    const many = Array.from({ length: MAX_RULES + 1 }, (_, i) => ({ name: `r${i}` }));
    expect(violations(many)).toEqual([expect.stringMatching(/^QueryRule r1000 #1000 : 1001 rules are too many; use at most 1000/)]);
  });
});

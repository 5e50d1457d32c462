import * as fs from "node:fs";
import * as path from "node:path";
import { create } from "@bufbuild/protobuf";
import { QueryRuleSchema, RouteAction_Target, type QueryRule } from "@mysqlgw/proto";
import { classify } from "./classify";
import { RouteTarget } from "./decide";
import { digestHash } from "./digest";
import { compileRules, createRuleContext, statementFlagNames, statementKindName, statementKindOf, STATEMENT_KIND_NAMES, type RuleContext } from "./rules";
import { StatementFlags as F, StatementKind as K } from "./statement-kind";
import { createTableExtractor } from "./tables";

type RuleInit = Parameters<typeof create<typeof QueryRuleSchema>>[1];
const rule = (init: RuleInit): QueryRule => create(QueryRuleSchema, init);

function ctx(sql: string, over: Partial<{ user: string; schema: string | null; listener: string }> = {}, tables = createTableExtractor()): RuleContext {
  return createRuleContext({ user: over.user ?? "app", schema: over.schema === undefined ? "shop" : over.schema, listener: over.listener ?? "split", sql, classification: classify(Buffer.from(sql)) }, tables);
}

describe("kind and flag names", () => {
  it("round-trips every kind", () => {
    STATEMENT_KIND_NAMES.forEach((name, k) => {
      expect(statementKindName(k as K)).toBe(name);
      expect(statementKindOf(name.toLowerCase())).toBe(k);
    });
    expect(STATEMENT_KIND_NAMES.length).toBe(K.Explain + 1);
    expect(statementKindOf("DESCRIBE")).toBe(K.Explain);
    expect(statementKindOf("SELEC")).toBeNull();
  });

  it("the control plane validates kinds against the same list", () => {
    // the planes share no code (STYLE), so the control plane keeps a copy; read it from its source
    const src = fs.readFileSync(path.join(__dirname, "../../../control-plane/src/model/validate-rules.ts"), "utf8");
    const literal = /export const RULE_KINDS: readonly string\[\] = \[([^\]]*)\]/.exec(src);
    expect(literal).not.toBeNull();
    expect([...literal![1]!.matchAll(/"([A-Z]+)"/g)].map((m) => m[1])).toEqual(STATEMENT_KIND_NAMES);
  });

  it("names flags in bit order", () => {
    expect(statementFlagNames(F.HasWhere | F.ForUpdate)).toEqual(["for-update", "where"]);
    expect(statementFlagNames(0)).toEqual([]);
    expect(statementFlagNames(F.ReadsDiagnostics)).toEqual(["reads-diagnostics"]);
  });
});

describe("compileRules", () => {
  it("a policy without rules is the shared empty set", () => {
    const a = compileRules([]);
    expect(a).toBe(compileRules([]));
    expect(a).toMatchObject({ empty: true, needsTables: false, needsDigest: false, actions: [], problems: [] });
    expect(a.match(ctx("SELECT 1"))).toBeNull();
  });

  it("first match wins; a rule without conditions matches everything", () => {
    const rules = compileRules([
      rule({ name: "writes", match: { kinds: ["INSERT", "update"] }, route: { target: RouteAction_Target.PRIMARY } }),
      rule({ name: "all", route: { cluster: "other" } }),
    ]);
    expect(rules.match(ctx("UPDATE t SET a=1"))?.rule).toBe("writes");
    expect(rules.match(ctx("SELECT 1"))?.rule).toBe("all");
    expect(rules.match(ctx("SELECT 1"))?.route).toEqual({ cluster: "other", target: null });
    expect(rules.match(ctx("INSERT INTO t VALUES (1)"))?.route).toEqual({ cluster: null, target: RouteTarget.Primary });
  });

  it("every condition must hold; a list holds when any element does", () => {
    const rules = compileRules([rule({
      name: "r1",
      match: { users: ["app", "report"], schemas: ["shop"], listeners: ["split"], kinds: ["SELECT"], pattern: "from\\s+orders" },
      route: { target: RouteAction_Target.REPLICA },
    })]);
    const sql = "SELECT * FROM orders WHERE id=1";
    expect(rules.match(ctx(sql))?.rule).toBe("r1");
    expect(rules.match(ctx(sql, { user: "report" }))?.rule).toBe("r1");
    expect(rules.match(ctx("select * FROM ORDERS")))?.not.toBeNull(); // pattern is case-insensitive
    expect(rules.match(ctx(sql, { user: "other" }))).toBeNull();
    expect(rules.match(ctx(sql, { schema: "crm" }))).toBeNull();
    expect(rules.match(ctx(sql, { schema: null }))).toBeNull();
    expect(rules.match(ctx(sql, { listener: "rw" }))).toBeNull();
    expect(rules.match(ctx("DELETE FROM orders"))).toBeNull();
    expect(rules.match(ctx("SELECT * FROM customers"))).toBeNull();
  });

  it("matches digests, computing the digest only when a rule gets that far", () => {
    const sql = "SELECT c FROM sbtest1 WHERE id=5023";
    const hash = digestHash(Buffer.from(sql));
    const rules = compileRules([
      rule({ name: "by-user", match: { users: ["nobody"], digests: ["0000000000000000"] } }),
      rule({ name: "by-digest", match: { digests: [hash.toUpperCase()] }, deny: {} }),
    ]);
    expect(rules.needsDigest).toBe(true);
    expect(rules.needsTables).toBe(false);
    let computed = 0;
    const c = ctx("SELECT c FROM sbtest1 WHERE id=42");
    const counted: RuleContext = { ...c, digest: () => { computed++; return c.digest(); } };
    expect(rules.match(counted)?.rule).toBe("by-digest"); // same digest, other literal
    expect(computed).toBe(1); // not for the rule whose user did not match
    expect(rules.match(ctx("SELECT c FROM sbtest1 WHERE k=1"))).toBeNull();
  });

  it("matches tables, qualified or through the current schema, case-insensitively", () => {
    const rules = compileRules([
      rule({ name: "orders", match: { tables: ["shop.orders"] }, route: { cluster: "orders-db" } }),
      rule({ name: "audit", match: { tables: ["Audit_Log"] }, deny: { message: "no" } }),
    ]);
    expect(rules.needsTables).toBe(true);
    expect(rules.match(ctx("SELECT * FROM orders o JOIN items i ON o.id=i.oid"))?.rule).toBe("orders");
    expect(rules.match(ctx("UPDATE shop.ORDERS SET a=1", { schema: null }))?.rule).toBe("orders");
    expect(rules.match(ctx("SELECT * FROM orders", { schema: "crm" }))).toBeNull();
    expect(rules.match(ctx("SELECT * FROM crm.audit_log"))?.rule).toBe("audit");
    expect(rules.match(ctx("INSERT INTO x SELECT * FROM audit_log"))?.rule).toBe("audit");
    expect(rules.match(ctx("SELECT * FROM customers"))).toBeNull();
  });

  it("a statement the parser cannot read has no tables: a tables rule does not match it", () => {
    const rules = compileRules([rule({ name: "orders", match: { tables: ["orders"] }, deny: {} })]);
    expect(rules.match(ctx("SELECT * FROM orders WHERE"))).toBeNull();
    expect(ctx("SELECT * FROM orders WHERE").tables()).toEqual([]);
  });

  it("fills in action defaults", () => {
    const [a] = compileRules([rule({
      name: "all",
      deny: {},
      mirror: { cluster: "shadow" },
      cache: { ttl: { seconds: 2n, nanos: 500_000_000 } },
      rewrite: { pattern: "sbtest(\\d)", replacement: "archive$1" },
    })]).actions;
    expect(a!.deny).toEqual({ errno: 1142, sqlState: "42000", message: "statement refused by mysqlgw rule all" });
    expect(a!.mirror).toEqual({ cluster: "shadow", ratio: 1 });
    expect(a!.cache).toEqual({ ttlMs: 2500, maxResultBytes: 1024 * 1024, maxBytes: 64 * 1024 * 1024 });
    expect(a!.rewrite!("SELECT * FROM SBTEST1 JOIN sbtest2")).toBe("SELECT * FROM archive1 JOIN archive2");
    expect(a!.route).toBeNull();
    const [b] = compileRules([rule({ name: "b", deny: { code: 1227, sqlstate: "HY000", message: "m" }, mirror: { cluster: "s", ratio: 0.25 }, cache: { ttl: { seconds: 1n }, maxResultBytes: 10, maxBytes: 100n } })]).actions;
    expect(b).toMatchObject({ deny: { errno: 1227, sqlState: "HY000", message: "m" }, mirror: { cluster: "s", ratio: 0.25 }, cache: { ttlMs: 1000, maxResultBytes: 10, maxBytes: 100 } });
  });

  it("a route with neither cluster nor target is no route", () => {
    expect(compileRules([rule({ name: "x", route: {} })]).actions[0]!.route).toBeNull();
  });

  it("a rule with a bad pattern or only unknown kinds never matches, and says why", () => {
    const rules = compileRules([
      rule({ name: "bad", match: { pattern: "(" } }),
      rule({ name: "bad-rewrite", rewrite: { pattern: "[" } }),
      rule({ name: "kinds", match: { kinds: ["SELEC"] } }),
      rule({ name: "ok", match: { kinds: ["SELEC", "SELECT"] } }),
    ]);
    expect(rules.match(ctx("SELECT 1"))?.rule).toBe("ok");
    expect(rules.problems).toHaveLength(5);
    expect(rules.problems[0]).toMatch(/^rule bad: match.pattern does not compile/);
  });
});

describe("match.withoutWhere", () => {
  test("matches UPDATE and DELETE without a WHERE outside parentheses, nothing else", () => {
    const rules = compileRules([rule({ name: "no-unbounded", match: { withoutWhere: true }, deny: {} })]);
    const hit = (sql: string): boolean => rules.match(ctx(sql)) !== null;
    expect(hit("DELETE FROM t")).toBe(true);
    expect(hit("UPDATE t SET a = (SELECT 1 FROM u WHERE u.id = 2)")).toBe(true);
    expect(hit("DELETE FROM t WHERE id = 1")).toBe(false);
    expect(hit("UPDATE t SET a = 1 WHERE b = 2")).toBe(false);
    expect(hit("SELECT * FROM t")).toBe(false);
    expect(hit("TRUNCATE TABLE t")).toBe(false);
  });
});

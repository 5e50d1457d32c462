import { create } from "@bufbuild/protobuf";
import { PolicyViolationSchema, RouteAction_Target } from "@mysqlgw/proto";
import { CliError } from "./cli-error";
import { policyDocuments } from "./output";
import { createPolicyBuilder, locateViolations } from "./policy-files";

function load(files: Record<string, string>) {
  const b = createPolicyBuilder();
  for (const [name, text] of Object.entries(files)) b.addText(text, name);
  return b.finish("policy/");
}

const RULES = `kind: QueryRule
name: no-unbounded-deletes
match: { kinds: [DELETE], pattern: "^(?!.*\\\\bwhere\\\\b)" }
deny: { code: 1148, message: "add a WHERE" }
---
kind: QueryRule
name: reports
match: { users: [bi], tables: [shop.orders] }
route: { cluster: reports, target: TARGET_REPLICA }
---
kind: QueryRule
name: lookups
match: { kinds: [SELECT] }
cache: { ttl: 5s, maxBytes: 1000000 }
mirror: { cluster: shadow, ratio: 0.25 }
`;

describe("kind: QueryRule", () => {
  test("documents become Policy.rules in the order written", () => {
    const l = load({ "rules.yaml": RULES });
    expect(l.policy.rules.map((r) => r.name)).toEqual(["no-unbounded-deletes", "reports", "lookups"]);
    expect(l.policy.rules[0]!.match!.pattern).toBe("^(?!.*\\bwhere\\b)");
    expect(l.policy.rules[0]!.deny).toMatchObject({ code: 1148, message: "add a WHERE" });
    expect(l.policy.rules[1]!.route).toMatchObject({ cluster: "reports", target: RouteAction_Target.REPLICA });
    expect(l.policy.rules[2]!.cache).toMatchObject({ ttl: { seconds: 5n }, maxBytes: 1000000n });
    expect(l.policy.rules[2]!.mirror).toMatchObject({ cluster: "shadow", ratio: 0.25 });
    expect(l.sources.QueryRule.map((s) => [s.document, s.name])).toEqual([[1, "no-unbounded-deletes"], [2, "reports"], [3, "lookups"]]);
  });

  test("a policy of rules only is a policy", () => {
    expect(load({ "r.yaml": "kind: QueryRule\nname: a\n" }).policy.rules).toHaveLength(1);
  });

  test("unknown fields are named with the QueryRule fields", () => {
    try {
      load({ "r.yaml": "kind: QueryRule\nname: a\nmatch: { kind: [SELECT] }\n" });
      throw new Error("expected a CliError");
    } catch (err) {
      expect(err).toBeInstanceOf(CliError);
      expect((err as CliError).render()).toEqual([
        "error: r.yaml document 1 (QueryRule a): field match.kind: unknown field (line 3) — did you mean kinds? (RuleMatch fields: users, schemas, listeners, kinds, digests, pattern, tables, withoutWhere)",
      ]);
    }
  });

  test("violations map back to the document; get prints the rules in order", () => {
    const l = load({ "rules.yaml": RULES });
    const v = create(PolicyViolationSchema, { kind: "QueryRule", name: "reports", index: 1, field: "route.cluster", description: "cluster \"reports\" is not defined" });
    expect(locateViolations([v], l.sources)).toEqual(['rules.yaml document 2 (QueryRule reports): field route.cluster: cluster "reports" is not defined']);
    const docs = policyDocuments(l.policy);
    expect(docs.map((d) => `${d.kind} ${d.name}`)).toEqual(["QueryRule no-unbounded-deletes", "QueryRule reports", "QueryRule lookups"]);
    expect(docs[1]).toEqual({ kind: "QueryRule", name: "reports", match: { users: ["bi"], tables: ["shop.orders"] }, route: { cluster: "reports", target: "TARGET_REPLICA" } });
    expect(policyDocuments(l.policy, { kind: "QueryRule", name: "lookups" })).toHaveLength(1);
  });
});

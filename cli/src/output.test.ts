import { create } from "@bufbuild/protobuf";
import { parseAllDocuments } from "yaml";
import { PolicySchema, ResourceChangeSchema, ResourceChange_Action as A } from "@mysqlgw/proto";
import { countLabel, formatAge, formatChanges, formatTable, policyDocuments, toYamlDocuments } from "./output";
import { createPolicyBuilder } from "./policy-files";

describe("formatChanges", () => {
  it("prints + ~ - lines with the changed fields of updates", () => {
    const lines = formatChanges([
      create(ResourceChangeSchema, { action: A.ADD, kind: "Cluster", name: "orders", afterJson: "{}" }),
      create(ResourceChangeSchema, {
        action: A.UPDATE, kind: "Cluster", name: "demo",
        fields: ["backends[1].address", "backends[2]"],
        beforeJson: JSON.stringify({ name: "demo", backends: [{ name: "a" }, { name: "b", address: "h:1" }] }),
        afterJson: JSON.stringify({ name: "demo", backends: [{ name: "a" }, { name: "b", address: "h:2" }, { name: "c", weight: 1 }] }),
      }),
      create(ResourceChangeSchema, {
        action: A.UPDATE, kind: "User", name: "app", fields: ["passwordHash"],
        beforeJson: JSON.stringify({ passwordHash: "*AAAA" }), afterJson: JSON.stringify({ passwordHash: "*BBBB" }),
      }),
      create(ResourceChangeSchema, { action: A.DELETE, kind: "Listener", name: "old" }),
    ]);
    expect(lines).toEqual([
      "+ Cluster orders",
      "~ Cluster demo",
      "    backends[1].address: h:1 → h:2",
      '    backends[2]: (none) → {"name":"c","weight":1}',
      "~ User app",
      "    passwordHash: changed",
      "- Listener old",
    ]);
  });

  it("counts", () => {
    expect(countLabel(1)).toBe("1 change");
    expect(countLabel(2)).toBe("2 changes");
  });
});

describe("policy documents", () => {
  const policy = create(PolicySchema, {
    clusters: [{ name: "demo", backends: [{ name: "primary", address: "127.0.0.1:3306", weight: 1 }] }],
    listeners: [{ name: "demo-rw", bindAddress: "0.0.0.0", port: 6033, cluster: "demo" }],
    users: [{ name: "app", passwordHash: "*F142931D9296BB66D4600D47418DBC1475D27D29", backendCredentials: { user: "app", secretRef: "env:X" } }],
  });

  it("prints YAML that apply reads back to the same policy", () => {
    const text = toYamlDocuments(policyDocuments(policy), "version 3");
    expect(text.startsWith("# version 3\nkind: Cluster\n")).toBe(true);
    expect(text).toContain('passwordHash: "*F142931D9296BB66D4600D47418DBC1475D27D29"');
    expect(parseAllDocuments(text)).toHaveLength(3);
    const b = createPolicyBuilder();
    b.addText(text, "get.yaml");
    expect(b.finish("get.yaml").policy).toEqual(policy);
  });

  it("filters by kind and name", () => {
    expect(policyDocuments(policy, { kind: "Listener" })).toEqual([{ kind: "Listener", name: "demo-rw", bindAddress: "0.0.0.0", port: 6033, cluster: "demo" }]);
    expect(policyDocuments(policy, { kind: "User", name: "nobody" })).toEqual([]);
  });
});

describe("tables and ages", () => {
  it("aligns columns", () => {
    expect(formatTable(["A", "BB"], [["xxx", "y"], ["z", ""]])).toEqual(["A    BB", "xxx  y", "z"]);
  });
  it("formats ages", () => {
    expect(formatAge(5_000)).toBe("5s");
    expect(formatAge(600_000)).toBe("10m");
    expect(formatAge(5 * 3600_000)).toBe("5h");
    expect(formatAge(3 * 86400_000)).toBe("3d");
    expect(formatAge(NaN)).toBe("-");
  });
});

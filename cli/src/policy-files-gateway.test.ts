import { create } from "@bufbuild/protobuf";
import { PolicySchema, PolicyViolationSchema } from "@mysqlgw/proto";
import { CliError } from "./cli-error";
import { createPolicyBuilder, locateViolations } from "./policy-files";
import { policyDocuments } from "./output";

function load(files: Record<string, string>) {
  const b = createPolicyBuilder();
  for (const [name, text] of Object.entries(files)) b.addText(text, name);
  return b.finish("policy/");
}

function problems(files: Record<string, string>): string[] {
  try {
    load(files);
  } catch (err) {
    expect(err).toBeInstanceOf(CliError);
    return (err as CliError).render();
  }
  throw new Error("expected a CliError");
}

const GATEWAY = `kind: Gateway
allowCidrs: [10.0.0.0/8, "fd00::/64"]
denyCidrs: [10.9.0.0/16]
maxConnections: 1000
`;

describe("kind: Gateway", () => {
  test("becomes Policy.gateway; listener timeouts are written as durations", () => {
    const l = load({
      "gw.yaml": GATEWAY,
      "l.yaml": "kind: Listener\nname: rw\nport: 6033\ncluster: c\nidleTimeout: 28800s\nhandshakeTimeout: 2.5s\nmaxConnections: 50\nallowCidrs: [\"::1/128\"]\n",
    });
    expect(l.policy.gateway).toMatchObject({ allowCidrs: ["10.0.0.0/8", "fd00::/64"], denyCidrs: ["10.9.0.0/16"], maxConnections: 1000 });
    expect(l.policy.listeners[0]!.idleTimeout).toMatchObject({ seconds: 28800n, nanos: 0 });
    expect(l.policy.listeners[0]!.handshakeTimeout).toMatchObject({ seconds: 2n, nanos: 500_000_000 });
    expect(l.sources.Gateway[0]).toMatchObject({ file: "gw.yaml", document: 1, name: "gateway" });
  });

  test("a second Gateway is refused, naming both documents", () => {
    const p = problems({ "a.yaml": GATEWAY, "b.yaml": "kind: Cluster\nname: c\nbackends: [{name: d, address: \"d:1\"}]\n---\n" + GATEWAY });
    expect(p.join("\n")).toContain("b.yaml document 2 (Gateway): a second Gateway document; the first is a.yaml document 1");
  });

  test("name is optional and only gateway; unknown fields are named", () => {
    expect(load({ "g.yaml": "kind: Gateway\nname: gateway\nmaxConnections: 5\n" }).policy.gateway?.maxConnections).toBe(5);
    expect(problems({ "g.yaml": "kind: Gateway\nname: main\n" }).join("\n")).toContain("a Gateway is named gateway");
    expect(problems({ "g.yaml": "kind: Gateway\nmaxConnection: 5\n" }).join("\n")).toContain("did you mean maxConnections?");
  });

  test("violations point at the Gateway document; get shows it as a document", () => {
    const l = load({ "gw.yaml": GATEWAY });
    const v = create(PolicyViolationSchema, { kind: "Gateway", name: "gateway", index: 0, field: "denyCidrs[0]", description: "bad" });
    expect(locateViolations([v], l.sources)).toEqual(["gw.yaml document 1 (Gateway gateway): field denyCidrs[0]: bad"]);
    const docs = policyDocuments(create(PolicySchema, { gateway: { maxConnections: 7 } }), { kind: "Gateway" });
    expect(docs).toEqual([{ kind: "Gateway", maxConnections: 7 }]);
  });
});

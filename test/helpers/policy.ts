import type { ControlPlane } from "@mysqlgw/sandbox";

/**
 * Applies `policy` (the proto3 JSON mapping of a Policy) through the control
 * plane's REST API, as `curl -X POST /v1/policy:apply` would, and returns the
 * version now current. Rejects with the API's answer when it is not 200.
 */
export async function applyPolicy(cp: ControlPlane | string, policy: unknown, appliedBy = "test"): Promise<{ version: string; changed: boolean }> {
  const url = typeof cp === "string" ? cp : cp.url;
  const res = await fetch(`${url}/v1/policy:apply`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ policy, appliedBy }),
  });
  const text = await res.text();
  if (res.status !== 200) throw new Error(`POST /v1/policy:apply answered ${res.status}: ${text}`);
  const body = JSON.parse(text) as { version: string; changed?: boolean };
  return { version: body.version, changed: body.changed === true };
}

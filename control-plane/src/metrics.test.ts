import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { AdminService } from "@mysqlgw/proto";
import { createMemoryConfigStore } from "./store/memory-config-store";
import { createAdminService } from "./api/admin-service";
import { startControlPlaneServer } from "./api/server";
import { applyFailureResult, createControlPlaneMetrics } from "./metrics";

const POLICY = {
  clusters: [{ name: "demo", backends: [{ name: "primary", address: "127.0.0.1:3306" }] }],
  listeners: [{ name: "demo-rw", port: 6033, cluster: "demo" }],
  users: [],
};

/** Value of one sample line ("name{labels}") of the text format. */
function sample(text: string, line: string): number | undefined {
  const l = text.split("\n").find((x) => x.startsWith(line + " "));
  return l === undefined ? undefined : Number(l.slice(line.length + 1));
}

describe("control-plane metrics", () => {
  it("counts API calls by method and code, with a latency histogram", async () => {
    const m = createControlPlaneMetrics();
    m.apiRequest("GetPolicy", "ok", 0.002);
    m.apiRequest("GetPolicy", "not_found", 0.0004);
    const text = await m.scrape();
    expect(sample(text, 'mysqlgw_api_requests_total{method="GetPolicy",code="ok"}')).toBe(1);
    expect(sample(text, 'mysqlgw_api_requests_total{method="GetPolicy",code="not_found"}')).toBe(1);
    expect(sample(text, 'mysqlgw_api_request_duration_seconds_bucket{le="0.001",method="GetPolicy"}')).toBe(1);
    expect(sample(text, 'mysqlgw_api_request_duration_seconds_count{method="GetPolicy"}')).toBe(2);
    // every apply result is present from the start, at 0
    expect(sample(text, 'mysqlgw_policy_applies_total{result="conflict"}')).toBe(0);
  });

  it("reads the current version at scrape, keeps the last one when etcd does not answer", async () => {
    const m = createControlPlaneMetrics();
    let answer: () => Promise<bigint | null> = async () => 7n;
    m.setCurrentVersionSource(() => answer(), 50);
    let text = await m.scrape();
    expect(sample(text, "mysqlgw_config_version")).toBe(7);
    expect(sample(text, "mysqlgw_etcd_reachable")).toBe(1);
    answer = () => new Promise(() => undefined); // never answers
    text = await m.scrape();
    expect(sample(text, "mysqlgw_config_version")).toBe(7);
    expect(sample(text, "mysqlgw_etcd_reachable")).toBe(0);
    answer = () => Promise.reject(new Error("down"));
    m.configVersion(8n);
    text = await m.scrape();
    expect(sample(text, "mysqlgw_config_version")).toBe(8);
    expect(sample(text, "mysqlgw_etcd_reachable")).toBe(0);
    answer = async () => null;
    expect(sample(await m.scrape(), "mysqlgw_config_version")).toBe(0);
  });

  it("reports the monitor's leadership, probes, and backend state; forgets a backend no longer probed", async () => {
    const m = createControlPlaneMetrics();
    let leading = false;
    m.setMonitorLeaderSource(() => leading);
    expect(sample(await m.scrape(), "mysqlgw_monitor_leader")).toBe(0);
    leading = true;
    m.monitor.probed("c", "r1", true, true, 2);
    m.monitor.probed("c", "r1", false, true, null);
    m.monitor.probed("c", "p", true, true, null);
    let text = await m.scrape();
    expect(sample(text, "mysqlgw_monitor_leader")).toBe(1);
    expect(sample(text, 'mysqlgw_monitor_probes_total{cluster="c",backend="r1",result="ok"}')).toBe(1);
    expect(sample(text, 'mysqlgw_monitor_probes_total{cluster="c",backend="r1",result="error"}')).toBe(1);
    expect(sample(text, 'mysqlgw_monitor_backend_up{cluster="c",backend="r1"}')).toBe(1);
    expect(sample(text, 'mysqlgw_monitor_backend_replication_lag_seconds{cluster="c",backend="r1"}')).toBeUndefined();
    m.monitor.probed("c", "r1", true, true, 0.5);
    m.monitor.probed("c", "p", false, false, null);
    text = await m.scrape();
    expect(sample(text, 'mysqlgw_monitor_backend_replication_lag_seconds{cluster="c",backend="r1"}')).toBe(0.5);
    expect(sample(text, 'mysqlgw_monitor_backend_up{cluster="c",backend="p"}')).toBe(0);
    m.monitor.forget("c", "r1");
    text = await m.scrape();
    expect(sample(text, 'mysqlgw_monitor_backend_up{cluster="c",backend="r1"}')).toBeUndefined();
    expect(sample(text, 'mysqlgw_monitor_probes_total{cluster="c",backend="r1",result="ok"}')).toBe(2);
  });

  it("maps apply failures to results", () => {
    expect(applyFailureResult("MGW_ERR_POLICY_INVALID")).toBe("invalid");
    expect(applyFailureResult("MGW_ERR_POLICY_VERSION_MISMATCH")).toBe("conflict");
    expect(applyFailureResult("MGW_ERR_STORE_CONFLICT")).toBe("conflict");
    expect(applyFailureResult("MGW_ERR_STORE_UNAVAILABLE")).toBe("error");
    expect(applyFailureResult("")).toBe("error");
  });
});

describe("GET /metrics on the API port", () => {
  it("counts REST and gRPC calls alike, and applies by result", async () => {
    const store = createMemoryConfigStore();
    const metrics = createControlPlaneMetrics();
    metrics.setCurrentVersionSource(async () => (await store.getCurrent())?.version ?? 0n);
    const server = await startControlPlaneServer({
      service: createAdminService({ store, metrics }),
      host: "127.0.0.1",
      port: 0,
      metrics: () => metrics.scrape(),
    });
    try {
      const base = `http://127.0.0.1:${server.address.port}`;
      const post = (p: string, body: unknown) => fetch(base + p, { method: "POST", body: JSON.stringify(body) });
      expect((await post("/v1/policy:apply", { policy: POLICY })).status).toBe(200);
      expect((await post("/v1/policy:apply", { policy: POLICY })).status).toBe(200); // unchanged
      expect((await post("/v1/policy:apply", { policy: POLICY, dryRun: true })).status).toBe(200);
      expect((await post("/v1/policy:apply", { policy: { ...POLICY, listeners: [{ name: "x", port: 70000, cluster: "demo" }] } })).status).toBe(400);
      expect((await post("/v1/policy:apply", { policy: POLICY, expectedVersion: "9" })).status).toBe(400);
      expect((await fetch(`${base}/v1/policy?version=5`)).status).toBe(404);
      const grpc = createClient(AdminService, createGrpcTransport({ baseUrl: base }));
      await grpc.getPolicy({});

      const r = await fetch(`${base}/metrics`);
      expect(r.status).toBe(200);
      expect(r.headers.get("content-type")).toBe("text/plain; version=0.0.4; charset=utf-8");
      const text = await r.text();
      expect(sample(text, 'mysqlgw_api_requests_total{method="ApplyPolicy",code="ok"}')).toBe(3);
      expect(sample(text, 'mysqlgw_api_requests_total{method="ApplyPolicy",code="invalid_argument"}')).toBe(1);
      expect(sample(text, 'mysqlgw_api_requests_total{method="ApplyPolicy",code="failed_precondition"}')).toBe(1);
      expect(sample(text, 'mysqlgw_api_requests_total{method="GetPolicy",code="not_found"}')).toBe(1);
      expect(sample(text, 'mysqlgw_api_requests_total{method="GetPolicy",code="ok"}')).toBe(1);
      expect(sample(text, 'mysqlgw_api_request_duration_seconds_count{method="ApplyPolicy"}')).toBe(5);
      expect(sample(text, 'mysqlgw_policy_applies_total{result="applied"}')).toBe(1);
      expect(sample(text, 'mysqlgw_policy_applies_total{result="unchanged"}')).toBe(1);
      expect(sample(text, 'mysqlgw_policy_applies_total{result="dry_run"}')).toBe(1);
      expect(sample(text, 'mysqlgw_policy_applies_total{result="invalid"}')).toBe(1);
      expect(sample(text, 'mysqlgw_policy_applies_total{result="conflict"}')).toBe(1);
      expect(sample(text, "mysqlgw_config_version")).toBe(1);
      expect((await fetch(`${base}/metrics`, { method: "POST" })).status).toBe(405);
    } finally {
      await server.close();
    }
  });
});

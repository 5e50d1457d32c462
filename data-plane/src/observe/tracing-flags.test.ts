import { parseFlags } from "../config/flags";

const D = { cpus: 2, hostname: "h", pid: 1 };
const tracing = (argv: string[], env: Record<string, string> = {}) => {
  const r = parseFlags(argv, env, D);
  if (r.help) throw new Error("help");
  return r.flags.tracing;
};

describe("tracing flags", () => {
  it("is off by default; adds /v1/traces to a bare OTLP/HTTP address; keeps only the authority for gRPC", () => {
    expect(tracing([]).otlpEndpoint).toBe("");
    expect(tracing(["--otlp-endpoint", "http://127.0.0.1:4318"])).toMatchObject({ otlpEndpoint: "http://127.0.0.1:4318/v1/traces", otlpProtocol: "http", serviceName: "mysqlgw", queueSize: 32768, batchSize: 2048, rawSql: false });
    expect(tracing(["--otlp-endpoint", "http://c:4318/custom/path"]).otlpEndpoint).toBe("http://c:4318/custom/path");
    expect(tracing(["--otlp-protocol", "grpc"], { MYSQLGW_OTLP_ENDPOINT: "http://127.0.0.1:4317/" }).otlpEndpoint).toBe("http://127.0.0.1:4317");
    expect(tracing(["--otlp-endpoint", "http://c:4318", "--trace-raw-sql", "--otlp-queue-size", "100", "--otlp-batch-size", "10"])).toMatchObject({ rawSql: true, queueSize: 100, batchSize: 10 });
  });

  it("refuses what cannot work, saying what to pass", () => {
    expect(() => tracing(["--otlp-protocol", "udp"])).toThrow(/must be http or grpc/);
    expect(() => tracing(["--otlp-endpoint", "collector:4318"])).toThrow(/must start with http/);
    expect(() => tracing(["--otlp-endpoint", "nope"])).toThrow(/is not a URL/);
    expect(() => tracing(["--otlp-queue-size", "10", "--otlp-batch-size", "20"])).toThrow(/at most --otlp-queue-size/);
  });
});

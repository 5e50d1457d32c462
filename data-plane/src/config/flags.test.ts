import * as path from "node:path";
import { parseFlags } from "./flags";

const host = { cpus: 4, hostname: "box", pid: 42 };
const flags = (argv: string[], env: Record<string, string> = {}) => {
  const r = parseFlags(argv, env, host);
  if (r.help) throw new Error("unexpected help");
  return r.flags;
};

describe("parseFlags", () => {
  it("has the documented defaults", () => {
    expect(flags([])).toEqual({
      etcdEndpoints: ["http://127.0.0.1:2379"],
      etcdPrefix: "/mysqlgw",
      workers: 4,
      stateDir: path.resolve(".mysqlgw/data-plane"),
      id: "box-42",
      drainTimeoutMs: 30000,
      handshakeTimeoutMs: 10000,
      backendConnectTimeoutMs: 5000,
      etcdTimeoutMs: 3000,
      etcdTls: {},
      maxPacketSize: 64 * 1024 * 1024,
      logLevel: "info",
      tlsCertFile: "",
      tlsKeyFile: "",
      tlsCaFile: "",
      rsaPrivateKeyFile: "",
      rsaPublicKeyFile: "",
      metricsListen: null,
      pluginFile: "",
      pluginBudgetMs: 5,
      bindAddress: "",
      observe: {
        requestLog: "",
        requestLogSample: 1,
        requestLogSlowMs: null,
        requestLogRawSql: false,
        requestLogSessions: true,
        digestsMax: 10000,
        digestsPublishIntervalMs: 5000,
        digestsPublishTop: 100,
        adminListen: null,
        adminUser: "admin",
        adminPasswordHash: "",
      },
      // the tracing flags' own defaults are asserted in observe/tracing-flags.test.ts
      tracing: expect.objectContaining({ otlpEndpoint: "", serviceName: "mysqlgw" }),
    });
  });

  it("takes the request log (stdout or a file), its sampling and slow-only threshold", () => {
    expect(flags(["--request-log", "stdout", "--request-log-sample", "0.25", "--request-log-slow", "100", "--request-log-raw-sql"]).observe).toMatchObject({
      requestLog: "stdout",
      requestLogSample: 0.25,
      requestLogSlowMs: 100,
      requestLogRawSql: true,
    });
    expect(flags([], { MYSQLGW_REQUEST_LOG: "logs/req.log", MYSQLGW_REQUEST_LOG_SLOW: "0" }).observe).toMatchObject({ requestLog: path.resolve("logs/req.log"), requestLogSlowMs: 0 });
    for (const bad of ["2", "1.01", "x", ""]) {
      expect(() => flags(["--request-log-sample", bad])).toThrow(/--request-log-sample .* must be a ratio between 0 and 1/);
    }
    expect(() => flags(["--request-log-slow", "1.5"])).toThrow(/--request-log-slow .* must be a whole number/);
  });

  it("takes the admin port with its user and password hash (or the password in MYSQLGW_ADMIN_PASSWORD)", () => {
    const hash = "*" + "A".repeat(40);
    expect(flags(["--admin-listen", "127.0.0.1:6032", "--admin-password-hash", hash]).observe).toMatchObject({ adminListen: { host: "127.0.0.1", port: 6032 }, adminUser: "admin", adminPasswordHash: hash });
    expect(flags(["--admin-listen", "127.0.0.1:6032", "--admin-user", "dba"], { MYSQLGW_ADMIN_PASSWORD: "secret" }).observe).toMatchObject({
      adminUser: "dba",
      adminPasswordHash: "*14E65567ABDB5135D0CFD9A70B3032C179A49EE7",
    });
    expect(() => flags(["--admin-listen", "127.0.0.1:6032"])).toThrow(/--admin-listen needs the admin password/);
    expect(() => flags(["--admin-password-hash", "secret"])).toThrow(/must be a mysql_native_password hash/);
  });

  it("takes --bind-address as an IP address (or MYSQLGW_BIND_ADDRESS) and refuses anything else", () => {
    expect(flags(["--bind-address", "127.0.0.2"])).toMatchObject({ bindAddress: "127.0.0.2" });
    expect(flags([], { MYSQLGW_BIND_ADDRESS: "::1" }).bindAddress).toBe("::1");
    expect(() => flags(["--bind-address", "localhost"])).toThrow(/--bind-address \(or MYSQLGW_BIND_ADDRESS\) must be an IPv4 or IPv6 address/);
  });

  it("takes --etcd-ca/--etcd-cert/--etcd-key (paths, resolved) for https:// endpoints only", () => {
    expect(flags(["--etcd", "https://127.0.0.1:2379", "--etcd-ca", "ca.pem", "--etcd-cert", "c.pem", "--etcd-key", "k.pem"]).etcdTls)
      .toEqual({ ca: path.resolve("ca.pem"), cert: path.resolve("c.pem"), key: path.resolve("k.pem") });
    expect(flags(["--etcd", "https://127.0.0.1:2379"], { MYSQLGW_ETCD_CA: "ca.pem" }).etcdTls).toEqual({ ca: path.resolve("ca.pem") });
    expect(() => flags(["--etcd-ca", "ca.pem"])).toThrow(/--etcd-ca needs https:\/\/ --etcd endpoints/);
    expect(() => flags(["--etcd", "https://e:2379", "--etcd-ca", "ca.pem", "--etcd-cert", "c.pem"])).toThrow(/--etcd-cert and --etcd-key go together/);
    expect(() => flags(["--etcd", "https://e:2379", "--etcd-cert", "c.pem", "--etcd-key", "k.pem"])).toThrow(/--etcd-cert needs --etcd-ca/);
  });

  it("takes --plugin as a path (resolved) and --plugin-budget in ms", () => {
    expect(flags(["--plugin", "hooks.js", "--plugin-budget", "20"])).toMatchObject({ pluginFile: path.resolve("hooks.js"), pluginBudgetMs: 20 });
  });

  it("takes --metrics-listen as HOST:PORT (IPv6 in brackets), or MYSQLGW_METRICS_LISTEN", () => {
    expect(flags(["--metrics-listen", "127.0.0.1:9104"]).metricsListen).toEqual({ host: "127.0.0.1", port: 9104 });
    expect(flags(["--metrics-listen", "[::1]:0"]).metricsListen).toEqual({ host: "::1", port: 0 });
    expect(flags([], { MYSQLGW_METRICS_LISTEN: "0.0.0.0:9104" }).metricsListen).toEqual({ host: "0.0.0.0", port: 9104 });
    expect(flags(["--metrics-listen", "localhost:1"], { MYSQLGW_METRICS_LISTEN: "0.0.0.0:9104" }).metricsListen).toEqual({ host: "localhost", port: 1 });
    for (const bad of ["9104", ":9104", "127.0.0.1:", "127.0.0.1:70000", "::1:9104", "[::1]", "a b:1"]) {
      expect(() => flags(["--metrics-listen", bad])).toThrow(/--metrics-listen \(or MYSQLGW_METRICS_LISTEN\) must be HOST:PORT/);
    }
  });

  it("takes the TLS and RSA files as absolute paths, and --tls-cert only with --tls-key", () => {
    const f = flags(["--tls-cert", "certs/gw.pem", "--tls-key", "/etc/gw-key.pem"], { MYSQLGW_RSA_PRIVATE_KEY: "/etc/rsa.pem" });
    expect(f.tlsCertFile).toBe(path.resolve("certs/gw.pem"));
    expect(f.tlsKeyFile).toBe("/etc/gw-key.pem");
    expect(f.rsaPrivateKeyFile).toBe("/etc/rsa.pem");
    expect(() => flags(["--tls-cert", "/x.pem"])).toThrow(/--tls-cert and --tls-key go together/);
  });

  it("takes flags over environment over defaults", () => {
    const f = flags(["--etcd", "http://127.0.0.1:1,http://127.0.0.1:2", "--workers", "0", "--id", "dp-a"], {
      MYSQLGW_ETCD: "http://127.0.0.1:9",
      MYSQLGW_WORKERS: "3",
      MYSQLGW_DRAIN_TIMEOUT: "500",
      MYSQLGW_STATE_DIR: "/var/lib/x",
    });
    expect(f.etcdEndpoints).toEqual(["http://127.0.0.1:1", "http://127.0.0.1:2"]);
    expect(f.workers).toBe(0);
    expect(f.id).toBe("dp-a");
    expect(f.drainTimeoutMs).toBe(500);
    expect(f.stateDir).toBe("/var/lib/x");
  });

  it("accepts --flag=value and --help", () => {
    expect(flags(["--etcd-timeout=250"]).etcdTimeoutMs).toBe(250);
    expect(parseFlags(["-h"], {}, host)).toEqual({ help: true });
  });

  it.each([
    [["--workers", "two"], /--workers \(or MYSQLGW_WORKERS\) must be a whole number/],
    [["--workers", "-1"], /--workers.*--help/],
    [["--etcd-timeout", "0"], /at least 1/],
    [["--etcd", "127.0.0.1:2379"], /is not a URL; use http:\/\/HOST:PORT/],
    [["--etcd", "unix:///run/etcd"], /must start with http/],
    [["--etcd", " , "], /names no endpoint/],
    [["--etcd-prefix", "mysqlgw"], /must start with "\/"/],
    [["--id", "a/b"], /contain no "\/"/],
    [["--bogus"], /Unknown option '--bogus'.*--help/],
    [["extra"], /--help/],
  ])("rejects %j with a message that says what to do", (argv, re) => {
    expect(() => parseFlags(argv, {}, host)).toThrow(re);
    try {
      parseFlags(argv, {}, host);
    } catch (err) {
      expect((err as { code?: string }).code).toBe("MGW_ERR_FLAGS_INVALID");
    }
  });
});

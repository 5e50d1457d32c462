#!/usr/bin/env node
import * as fs from "node:fs";
import * as os from "node:os";
import { parseArgs } from "node:util";
import pino from "pino";
import { DEFAULT_ETCD_PREFIX, descriptorSetPath, etcdKeys as etcdKeysFor } from "@mysqlgw/proto";
import { createAdminService } from "./api/admin-service";
import { startControlPlaneServer } from "./api/server";
import { createHistoryService } from "./api/history-service";
import { isMgwError } from "./errors";
import { createMonitor, createMonitorEtcdClient, monitorElection, readMonitorLeader, type Monitor } from "./monitor/monitor";
import { DEFAULT_CATCH_UP_TIMEOUT_MS, DEFAULT_FAILOVER_COOLDOWN_MS } from "./monitor/failover";
import { createEtcdConfigStore, DEFAULT_ETCD_CALL_TIMEOUT_MS } from "./store/etcd-config-store";
import { createEtcdDigestSource, type DigestSource } from "./digests/published-digests";
import { createControlPlaneMetrics } from "./metrics";
import { createEtcdReplication } from "./replication/replication-service";
import { createSwitchoverHandler } from "./switchover/switchover";
import { createEtcdOperationStore } from "./replication/operation-store";
import { collectDefaultMetrics } from "prom-client";
import { isRole, type Role } from "./api/access";
import { DEFAULT_AUDIT_RETENTION } from "./api/audit";
import { createAuthenticator, parseTokensFile, type TokensConfig } from "./api/tokens";
import { createEtcdAuditLog } from "./store/etcd-audit-log";
import { setEtcdTls } from "@mysqlgw/proto";

const USAGE = `usage: mysqlgw-control-plane [options]

  --listen HOST:PORT      API address, gRPC (h2c) + Connect + REST on one port
                          (default 127.0.0.1:7070, env MYSQLGW_LISTEN; port 0 picks a free one)
  --etcd URL[,URL]        etcd client URLs (default http://127.0.0.1:2379, env MYSQLGW_ETCD)
  --etcd-prefix PREFIX    key prefix in etcd (default ${DEFAULT_ETCD_PREFIX}, env MYSQLGW_ETCD_PREFIX)
  --etcd-timeout-ms N     bound on each etcd call (default ${DEFAULT_ETCD_CALL_TIMEOUT_MS})
  --etcd-ca FILE          PEM CA of etcd's certificate, for https:// --etcd (env MYSQLGW_ETCD_CA)
  --etcd-cert FILE --etcd-key FILE
                          PEM client certificate and key for etcd's --client-cert-auth
                          (env MYSQLGW_ETCD_CERT, MYSQLGW_ETCD_KEY)
  --log-level LEVEL       pino level (default info, env MYSQLGW_LOG_LEVEL)
  --id ID                 this control plane's id in the monitor election
                          (default <hostname>-<pid>, env MYSQLGW_CONTROL_PLANE_ID)
  --monitor / --no-monitor
                          take part in the backend health monitor (default on;
                          exactly one control plane leads it, elected in etcd)
  --failover              the monitor leader fails over automatically when a primary
                          is down, as the data planes confirm (default off; docs/monitor.md)
  --failover-cooldown-ms N
                          no second automatic failover of a cluster within N ms (default 60000)
  --failover-catch-up-ms N
                          bound on the chosen replica applying what it received (default 10000)
  --failover-without-data-planes
                          fail over on the monitor's probes alone when no data plane
                          reports on the primary (default off: wait for a data plane's view)

API security (docs/security.md):
  --tls-cert FILE --tls-key FILE
                          serve every protocol of the API port over TLS (PEM)
  --tls-client-ca FILE    mTLS: calls need a client certificate signed by this CA
                          (its CN maps to a role through the tokens file or --mtls-role)
  --mtls-role ROLE        role of a verified client certificate the tokens file
                          does not list (viewer, operator or admin; default: refused)
  --tokens-file FILE      bearer tokens (YAML or JSON: name, role, sha256 of the token;
                          mysqlgw token create); SIGHUP re-reads it (env MYSQLGW_TOKENS_FILE)
  --insecure-no-auth      allow a non-loopback --listen without --tokens-file or
                          --tls-client-ca (anyone who reaches the port is admin)
  --audit-retention N     audit records kept in etcd (default ${DEFAULT_AUDIT_RETENTION}; 0: all)
  -h, --help
`;

/** 127.0.0.0/8, ::1, localhost */
export function isLoopback(host: string): boolean {
  return host === "localhost" || host === "::1" || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host) || /^::ffff:127\./i.test(host);
}

function readFileOrExit(flag: string, file: string): Buffer {
  try {
    return fs.readFileSync(file);
  } catch (err) {
    usageError(`${flag} ${file} cannot be read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
}

function loadTokensFile(file: string): TokensConfig {
  return parseTokensFile(fs.readFileSync(file, "utf8"), file);
}

function usageError(message: string): never {
  process.stderr.write(`error: ${message} — see mysqlgw-control-plane --help\n`);
  process.exit(2);
}

/** "127.0.0.1:7070", "[::1]:7070", ":7070" → host and port. */
export function parseListen(value: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]*)):([0-9]{1,5})$/.exec(value);
  if (m === null) usageError(`--listen ${JSON.stringify(value)} is not HOST:PORT (e.g. 127.0.0.1:7070)`);
  const port = Number(m[3]);
  if (port > 65535) usageError(`--listen port ${port} is out of range; use 0..65535`);
  return { host: m[1] ?? (m[2] === "" ? "127.0.0.1" : m[2]!), port };
}

async function main(): Promise<void> {
  let values;
  try {
    ({ values } = parseArgs({
      options: {
        listen: { type: "string", default: process.env.MYSQLGW_LISTEN ?? "127.0.0.1:7070" },
        etcd: { type: "string", default: process.env.MYSQLGW_ETCD ?? "http://127.0.0.1:2379" },
        "etcd-prefix": { type: "string", default: process.env.MYSQLGW_ETCD_PREFIX ?? DEFAULT_ETCD_PREFIX },
        "etcd-timeout-ms": { type: "string", default: String(DEFAULT_ETCD_CALL_TIMEOUT_MS) },
        "etcd-ca": { type: "string", default: process.env.MYSQLGW_ETCD_CA },
        "etcd-cert": { type: "string", default: process.env.MYSQLGW_ETCD_CERT },
        "etcd-key": { type: "string", default: process.env.MYSQLGW_ETCD_KEY },
        "log-level": { type: "string", default: process.env.MYSQLGW_LOG_LEVEL ?? "info" },
        id: { type: "string", default: process.env.MYSQLGW_CONTROL_PLANE_ID ?? `${os.hostname()}-${process.pid}` },
        monitor: { type: "boolean", default: false },
        "no-monitor": { type: "boolean", default: false },
        failover: { type: "boolean", default: false },
        "failover-cooldown-ms": { type: "string", default: String(DEFAULT_FAILOVER_COOLDOWN_MS) },
        "failover-catch-up-ms": { type: "string", default: String(DEFAULT_CATCH_UP_TIMEOUT_MS) },
        "failover-without-data-planes": { type: "boolean", default: false },
        "tls-cert": { type: "string" },
        "tls-key": { type: "string" },
        "tls-client-ca": { type: "string" },
        "mtls-role": { type: "string" },
        "tokens-file": { type: "string", default: process.env.MYSQLGW_TOKENS_FILE },
        "insecure-no-auth": { type: "boolean", default: false },
        "audit-retention": { type: "string", default: String(DEFAULT_AUDIT_RETENTION) },
        help: { type: "boolean", short: "h", default: false },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (err) {
    usageError((err as Error).message);
  }
  if (values.help) {
    process.stdout.write(USAGE);
    return;
  }
  const { host, port } = parseListen(values.listen);
  const endpoints = values.etcd.split(",").map((s) => s.trim()).filter((s) => s !== "");
  if (endpoints.length === 0) usageError("--etcd is empty; pass etcd client URLs such as http://127.0.0.1:2379");
  for (const e of endpoints) {
    if (!/^https?:\/\/[^/]+\/?$/.test(e)) usageError(`--etcd ${JSON.stringify(e)} is not an etcd client URL; use http://HOST:PORT`);
  }
  const timeoutMs = Number(values["etcd-timeout-ms"]);
  if (!Number.isInteger(timeoutMs) || timeoutMs <= 0) usageError("--etcd-timeout-ms must be a positive integer");
  if (values["etcd-ca"] !== undefined && endpoints.some((e) => !e.startsWith("https://"))) usageError("--etcd-ca needs https:// --etcd endpoints");
  try {
    // every etcd client this process makes (@mysqlgw/proto etcd-security.ts)
    setEtcdTls({ ca: values["etcd-ca"], cert: values["etcd-cert"], key: values["etcd-key"] });
  } catch (err) {
    usageError((err as Error).message);
  }

  if (values.monitor && values["no-monitor"]) usageError("--monitor and --no-monitor contradict each other; pass one");
  if (!/^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$/.test(values.id)) usageError(`--id ${JSON.stringify(values.id)} must be 1-128 characters of letters, digits and . _ : @ -`);
  const monitorEnabled = !values["no-monitor"];
  const cooldownMs = Number(values["failover-cooldown-ms"]);
  if (!Number.isInteger(cooldownMs) || cooldownMs < 0) usageError("--failover-cooldown-ms must be an integer ≥ 0");
  const catchUpMs = Number(values["failover-catch-up-ms"]);
  if (!Number.isInteger(catchUpMs) || catchUpMs <= 0) usageError("--failover-catch-up-ms must be a positive integer");
  if (values.failover && !monitorEnabled) usageError("--failover needs the monitor; drop --no-monitor");
  const failover = values.failover ? { cooldownMs, catchUpTimeoutMs: catchUpMs, withoutDataPlanes: values["failover-without-data-planes"] } : undefined;

  // API security (docs/security.md)
  if ((values["tls-cert"] === undefined) !== (values["tls-key"] === undefined)) usageError("--tls-cert and --tls-key go together; pass both");
  if (values["tls-client-ca"] !== undefined && values["tls-cert"] === undefined) usageError("--tls-client-ca needs TLS; pass --tls-cert and --tls-key too");
  const tlsOptions = values["tls-cert"] === undefined ? undefined : {
    cert: readFileOrExit("--tls-cert", values["tls-cert"]),
    key: readFileOrExit("--tls-key", values["tls-key"]!),
    ...(values["tls-client-ca"] === undefined ? {} : { clientCa: readFileOrExit("--tls-client-ca", values["tls-client-ca"]) }),
  };
  const mtlsRole = values["mtls-role"] ?? null;
  if (mtlsRole !== null && !isRole(mtlsRole)) usageError(`--mtls-role ${JSON.stringify(mtlsRole)} is not a role; use viewer, operator or admin`);
  if (mtlsRole !== null && values["tls-client-ca"] === undefined) usageError("--mtls-role needs --tls-client-ca");
  const tokensFile = values["tokens-file"] === "" ? undefined : values["tokens-file"];
  let tokens: TokensConfig | null = null;
  if (tokensFile !== undefined) {
    try {
      tokens = loadTokensFile(tokensFile);
    } catch (err) {
      usageError(`--tokens-file: ${(err as NodeJS.ErrnoException).code === "ENOENT" ? `${tokensFile} does not exist` : (err as Error).message}`);
    }
  }
  const authenticator = createAuthenticator({ tokens, clientCertificates: tlsOptions?.clientCa !== undefined, mtlsRole: mtlsRole as Role | null });
  if (!authenticator.enabled && !isLoopback(host) && !values["insecure-no-auth"]) {
    usageError(`--listen ${values.listen} is not a loopback address and the API has no authentication; pass --tokens-file (and --tls-cert/--tls-key), or --insecure-no-auth to serve it open`);
  }
  const auditRetention = Number(values["audit-retention"]);
  if (!Number.isInteger(auditRetention) || auditRetention < 0) usageError("--audit-retention must be an integer ≥ 0");

  const log = pino({ level: values["log-level"], base: { pid: process.pid, component: "control-plane" } });
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const buildVersion = (require("../package.json") as { version: string }).version;
  const store = createEtcdConfigStore({
    endpoints,
    prefix: values["etcd-prefix"],
    callTimeoutMs: timeoutMs,
    onWarning: (msg, details) => log.warn(details, msg),
  });
  // The monitor's own etcd client also answers "who leads the monitor" for
  // ListBackendHealth, with or without --no-monitor.
  const electionClient = createMonitorEtcdClient(endpoints, timeoutMs);
  const election = monitorElection(electionClient, etcdKeysFor(values["etcd-prefix"]));
  // GET /metrics on the API port (docs/observability.md)
  if (!authenticator.enabled) log.warn({ listen: values.listen }, "the API has no authentication (no --tokens-file or --tls-client-ca): anyone who reaches the port can change the policy; see docs/security.md");
  else if (tlsOptions === undefined && !isLoopback(host)) log.warn({ listen: values.listen }, "bearer tokens over plain HTTP on a non-loopback address can be read on the network; pass --tls-cert and --tls-key");
  const auditLog = createEtcdAuditLog({ endpoints, prefix: values["etcd-prefix"], callTimeoutMs: timeoutMs, retention: auditRetention });
  const metrics = createControlPlaneMetrics();
  collectDefaultMetrics({ register: metrics.registry });
  metrics.setCurrentVersionSource(async () => (await store.getCurrent())?.version ?? 0n, Math.min(timeoutMs, 2000));
  const service = createAdminService({ store, buildVersion, logger: log, monitorLeader: () => readMonitorLeader(election, timeoutMs), metrics });
  let monitor: Monitor | null = null;
  metrics.setMonitorLeaderSource(() => monitor?.leading ?? false);
  let server;
  let digests: DigestSource | undefined;
  let replication: ReturnType<typeof createEtcdReplication> | undefined;
  try {
    // versions read straight from the store (not through GetPolicy), calls counted like the AdminService's
    const history = createHistoryService({ versions: store, admin: service, logger: log, metrics });
    // replication operations (docs/monitor.md), with their own etcd client for the cluster locks and records
    const switchoverOps = createEtcdOperationStore({ client: electionClient, keys: etcdKeysFor(values["etcd-prefix"]), description: `etcd at ${endpoints.join(",")}`, callTimeoutMs: timeoutMs });
    replication = createEtcdReplication({
      endpoints, prefix: values["etcd-prefix"], callTimeoutMs: timeoutMs, store, admin: service, logger: log, metrics,
      // planned switchover (switchover/switchover.ts; docs/monitor.md)
      switchover: createSwitchoverHandler({
        client: electionClient, prefix: values["etcd-prefix"], callTimeoutMs: timeoutMs, currentConfig: () => store.getCurrent(), controlPlaneId: values.id, log: log.child({ component: "switchover" }),
        recordOperation: (op) => switchoverOps.record(op),
      }),
    });
    // GET /v1/digests: the query digests the data planes publish to etcd (docs/observability.md)
    digests = createEtcdDigestSource({ endpoints, prefix: values["etcd-prefix"], timeoutMs });
    server = await startControlPlaneServer({
      service, history, host, port, descriptorSetPath, metrics: () => metrics.scrape(), digests,
      tls: tlsOptions, authenticator, audit: auditLog, logger: log, metricsRegistry: metrics.registry,
      replication: replication.service,
    });
  } catch (err) {
    log.fatal({ err }, "cannot listen");
    process.stderr.write(`error: cannot listen on ${values.listen} (${(err as Error).message}) — pick another --listen address\n`);
    await store.close();
    electionClient.close();
    process.exit(1);
  }
  const hostText = server.address.host.includes(":") ? `[${server.address.host}]` : server.address.host;
  log.info({
    address: `${hostText}:${server.address.port}`, etcd: endpoints, prefix: values["etcd-prefix"], version: buildVersion,
    tls: tlsOptions === undefined ? "off" : tlsOptions.clientCa === undefined ? "on" : "mtls",
    auth: authenticator.enabled ? `${tokens?.tokens.length ?? 0} tokens${tlsOptions?.clientCa === undefined ? "" : ", client certificates"}` : "off",
  }, "control plane listening");
  if (tokensFile !== undefined) {
    process.on("SIGHUP", () => {
      try {
        const t = loadTokensFile(tokensFile);
        authenticator.setTokens(t);
        log.info({ tokens: t.tokens.length, certificates: t.certificates.length }, "tokens file re-read");
      } catch (err) {
        log.error({ err: (err as Error).message }, "tokens file not re-read; the previous tokens stay in force");
      }
    });
  }

  if (monitorEnabled) {
    monitor = createMonitor({ endpoints, prefix: values["etcd-prefix"], id: values.id, logger: log.child({ component: "monitor" }), callTimeoutMs: timeoutMs, metrics: metrics.monitor, failover });
    monitor.start();
    log.info({ monitorId: values.id, failover: failover ?? "off" }, "monitor campaigning");
  } else {
    log.info({}, "monitor disabled (--no-monitor)");
  }

  store.getCurrent().then(
    (cur) => log.info({ currentVersion: (cur?.version ?? 0n).toString() }, "etcd reachable"),
    (err: unknown) => log.warn({ err: isMgwError(err) ? err.message : String(err) }, "etcd not reachable yet; the API answers Unavailable until it is"),
  );

  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, "control plane stopping");
    const force = setTimeout(() => process.exit(1), 5000);
    force.unref();
    void (monitor?.stop() ?? Promise.resolve())
      .then(() => server.close())
      .then(() => store.close())
      .then(() => electionClient.close())
      .then(() => digests?.close())
      .then(() => replication?.close())
      .then(() => auditLog.close())
      .then(() => process.exit(0));
  };
  process.on("SIGTERM", () => stop("SIGTERM"));
  process.on("SIGINT", () => stop("SIGINT"));
}

void main();

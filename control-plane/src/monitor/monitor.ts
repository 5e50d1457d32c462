import { fromJsonString, toJsonString } from "@bufbuild/protobuf";
import { noop } from "cockatiel";
import { Etcd3, type Campaign, type Election, type Lease, type Watcher } from "etcd3";
import { etcdSecurityOptions } from "@mysqlgw/proto";
import { Backend_Role, BackendHealth_State, BackendHealthSchema, ClusterEpochSchema, ConfigVersionSchema, etcdKeys, type Cluster, type ClusterEpoch, type ConfigVersion, type EtcdKeys } from "@mysqlgw/proto";
import { isMgwError } from "../errors";
import { applyProbe, buildHealth, DEFAULT_REFRESH_MS, healthFingerprint, newTracker, probeSettings, roleDisagreement, shouldWrite, type BackendTracker, type ProbeObservation, type ProbeSettings } from "./health";
import { probeBackend, type ProbeTarget } from "./probe";
import { resolveMonitorSecret } from "./secret";
import { FailoverController, type FailoverSettings } from "./failover";
import type { MonitorMetrics } from "../metrics";

/** The subset of a pino logger the monitor uses. */
export interface MonitorLogger {
  debug(obj: object, msg: string): void;
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

export interface MonitorOptions {
  endpoints: string[];
  prefix?: string;
  /** This control plane's id, the value it campaigns with (e.g. "<hostname>-<pid>"). */
  id: string;
  logger: MonitorLogger;
  /** Bound on each unary etcd call. Default 3000 ms. */
  callTimeoutMs?: number;
  /** TTL of the election and health leases, seconds. Default 3. */
  leaseTtlSeconds?: number;
  /** An unchanged health key is rewritten at most this often. Default 5000 ms. */
  refreshMs?: number;
  /** Where secret refs are resolved. Default process.env. */
  env?: NodeJS.ProcessEnv;
  /** Replaces the mysql2 probe (tests). */
  probe?: (t: ProbeTarget) => Promise<ProbeObservation>;
  /** Probes by result and the backends' state as seen here (only while leading). */
  metrics?: MonitorMetrics;
  /** Automatic failover of a cluster whose primary is down (failover.ts, docs/monitor.md); undefined: off. */
  failover?: FailoverSettings;
}

export interface Monitor {
  /** True while this process leads and probes. */
  readonly leading: boolean;
  /** Starts campaigning; returns at once. */
  start(): void;
  /** Stops probing, resigns, closes the etcd client. Bounded. */
  stop(): Promise<void>;
}

const DEFAULT_TTL_S = 3;
const DEFAULT_CALL_TIMEOUT_MS = 3000;
/** Re-read `current` this often while leading, in case a watch event was missed. */
const CONFIG_RESYNC_MS = 10_000;
const CAMPAIGN_RETRY_MIN_MS = 500;
const CAMPAIGN_RETRY_MAX_MS = 5000;

/** Creates the etcd client the monitor and the leader reader use. */
export function createMonitorEtcdClient(endpoints: string[], callTimeoutMs = DEFAULT_CALL_TIMEOUT_MS): Etcd3 {
  return new Etcd3({
    hosts: endpoints,
    ...etcdSecurityOptions(), // --etcd-ca/--etcd-cert/--etcd-key
    dialTimeout: callTimeoutMs,
    faultHandling: { host: () => noop, global: noop },
    // Unary calls get a deadline; streams (watch, lease keepalive) must not.
    defaultCallOptions: (ctx) => (ctx.isStream ? {} : { deadline: Date.now() + callTimeoutMs }),
  });
}

/** The election of the monitor, at exactly keys.monitorElection (etcd3 adds "election/<name>/"). */
export function monitorElection(client: Etcd3, keys: EtcdKeys, ttlSeconds = DEFAULT_TTL_S): Election {
  const suffix = "election/monitor";
  if (!keys.monitorElection.endsWith(`/${suffix}`)) throw new Error(`unexpected election key ${keys.monitorElection}`);
  return client.namespace(keys.monitorElection.slice(0, -suffix.length)).election("monitor", ttlSeconds);
}

/** Reads the current monitor leader's id ("" if none), bounded. */
export async function readMonitorLeader(election: Election, timeoutMs = DEFAULT_CALL_TIMEOUT_MS): Promise<string> {
  return (await withTimeout(election.leader(), timeoutMs, "read the monitor leader")) ?? "";
}

/**
 * The health monitor that runs in every control plane. Exactly one leads,
 * through an etcd election under keys.monitorElection with a short lease: the
 * leader watches the current config and probes every backend of every
 * cluster at the cluster's interval, writing BackendHealth to
 * keys.backendHealth(cluster, backend) under its own lease (so the keys of a
 * dead leader expire). Losing the lease or the campaign ends the term at once:
 * probers stop, nothing more is written, and the process campaigns again.
 */
export function createMonitor(options: MonitorOptions): Monitor {
  const log = options.logger;
  const keys = etcdKeys(options.prefix);
  const ttl = options.leaseTtlSeconds ?? DEFAULT_TTL_S;
  const callTimeoutMs = options.callTimeoutMs ?? DEFAULT_CALL_TIMEOUT_MS;
  const refreshMs = options.refreshMs ?? DEFAULT_REFRESH_MS;
  const env = options.env ?? process.env;
  const probe = options.probe ?? probeBackend;
  const client = createMonitorEtcdClient(options.endpoints, callTimeoutMs);
  const election = monitorElection(client, keys, ttl);

  let stopped = false;
  let campaign: Campaign | null = null;
  let term: Term | null = null;
  let retryTimer: NodeJS.Timeout | null = null;
  let retryDelay = CAMPAIGN_RETRY_MIN_MS;
  let campaignFailuresLogged = 0;

  function scheduleCampaign(): void {
    if (stopped || retryTimer !== null) return;
    retryTimer = setTimeout(() => {
      retryTimer = null;
      startCampaign();
    }, retryDelay);
    retryDelay = Math.min(retryDelay * 2, CAMPAIGN_RETRY_MAX_MS);
  }

  function startCampaign(): void {
    if (stopped || campaign !== null) return;
    const c = election.campaign(options.id);
    campaign = c;
    c.on("elected", () => {
      if (campaign !== c || stopped) return;
      retryDelay = CAMPAIGN_RETRY_MIN_MS;
      campaignFailuresLogged = 0;
      log.info({ monitorId: options.id }, "monitor: elected leader; probing backends");
      void beginTerm(c);
    });
    c.on("error", (err: Error) => {
      if (campaign !== c) return;
      const wasLeading = term !== null;
      endCampaign(c, wasLeading ? "lost leadership" : "campaign failed", err);
    });
  }

  /** Ends the campaign (and the term, if any) and campaigns again later. */
  function endCampaign(c: Campaign, why: string, err?: unknown): void {
    if (campaign !== c) return;
    campaign = null;
    const t = term;
    term = null;
    if (t !== null) {
      t.stop();
      log.warn({ monitorId: options.id, err: errText(err) }, `monitor: ${why}; stopped probing`);
    } else if (campaignFailuresLogged++ === 0) {
      log.warn({ monitorId: options.id, err: errText(err) }, `monitor: ${why}; retrying (etcd reachable?)`);
    }
    c.resign().catch(() => undefined);
    scheduleCampaign();
  }

  async function beginTerm(c: Campaign): Promise<void> {
    let lease: Lease;
    let leaseId: string;
    let campaignKey: string;
    try {
      lease = client.lease(ttl, { autoKeepAlive: true });
      leaseId = await withTimeout(lease.grant(), callTimeoutMs, "grant the health lease");
      campaignKey = await withTimeout(c.getCampaignKey(), callTimeoutMs, "read the campaign key");
    } catch (err) {
      endCampaign(c, "cannot grant the health lease", err);
      return;
    }
    if (campaign !== c || stopped) {
      lease.release();
      return;
    }
    const t = new Term({ client, keys, lease, leaseId, campaignKey, ttl, callTimeoutMs, refreshMs, env, probe, log, monitorId: options.id, metrics: options.metrics ?? null, failover: options.failover, onFatal: (why, err) => endCampaign(c, why, err) });
    term = t;
    t.start();
  }

  return {
    get leading() {
      return term !== null;
    },
    start() {
      startCampaign();
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      if (retryTimer !== null) clearTimeout(retryTimer);
      const t = term;
      term = null;
      // Health keys are left to expire with the lease (not revoked), so that
      // they stay readable until the next leader rewrites them.
      if (t !== null) t.stop();
      const c = campaign;
      campaign = null;
      if (c !== null) await withTimeout(c.resign(), callTimeoutMs, "resign the monitor election").catch(() => undefined);
      client.close();
    },
  };
}

interface TermOptions {
  client: Etcd3;
  keys: EtcdKeys;
  lease: Lease;
  leaseId: string;
  /** Our key in the election: every write is conditional on it existing, so a deposed leader cannot write. */
  campaignKey: string;
  ttl: number;
  callTimeoutMs: number;
  refreshMs: number;
  env: NodeJS.ProcessEnv;
  probe: (t: ProbeTarget) => Promise<ProbeObservation>;
  log: MonitorLogger;
  monitorId: string;
  metrics: MonitorMetrics | null;
  failover: FailoverSettings | undefined;
  onFatal: (why: string, err?: unknown) => void;
}

interface ProberSpec {
  cluster: string;
  backend: string;
  address: string;
  settings: ProbeSettings;
  user: string;
  secretRef: string;
  expectedRole: Backend_Role;
}

/** One leadership term: from election to the loss of leadership or stop. */
class Term {
  private stopped = false;
  private readonly probers = new Map<string, Prober>();
  private watcher: Watcher | null = null;
  private resyncTimer: NodeJS.Timeout | null = null;
  private watchdog: NodeJS.Timeout | null = null;
  private lastKeepAlive = Date.now();
  private lastConfigVersion = -1n;
  /** Clusters already warned about missing credentials, so the warning is said once. */
  private readonly warnedClusters = new Set<string>();
  private readonly failover: FailoverController | null;

  constructor(private readonly o: TermOptions) {
    this.failover =
      o.failover === undefined
        ? null
        : new FailoverController({
            client: o.client,
            keys: o.keys,
            campaignKey: o.campaignKey,
            callTimeoutMs: o.callTimeoutMs,
            env: o.env,
            log: o.log,
            monitorId: o.monitorId,
            settings: o.failover,
            backends: (cluster) => [...this.probers.values()].filter((p) => p.spec.cluster === cluster),
            stopped: () => this.stopped,
            metrics: o.metrics,
          });
  }

  start(): void {
    const { lease, ttl } = this.o;
    lease.on("keepaliveSucceeded", () => {
      this.lastKeepAlive = Date.now();
    });
    lease.on("lost", (err) => this.o.onFatal("lost the health lease", err));
    // The lease expires on etcd ttl s after the last keepalive etcd saw; stop
    // probing well before another control plane could be elected.
    const limitMs = Math.max(1000, ttl * 1000 - 1000);
    this.watchdog = setInterval(() => {
      if (Date.now() - this.lastKeepAlive > limitMs) this.o.onFatal(`no lease keepalive for ${limitMs} ms`);
    }, 250);
    void this.watchEpochs();
    // Fencing and cooldowns carry over from the previous leader: read them before probing.
    if (this.failover === null) void this.watchConfig();
    else {
      this.failover.load().then(
        () => void this.watchConfig(),
        (err: unknown) => this.o.onFatal("cannot read the cluster epochs (failover fencing)", err),
      );
    }
  }

  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    if (this.watchdog !== null) clearInterval(this.watchdog);
    if (this.resyncTimer !== null) clearInterval(this.resyncTimer);
    for (const p of this.probers.values()) p.stop();
    this.probers.clear();
    const w = this.watcher;
    this.watcher = null;
    if (w !== null) void withTimeout(w.cancel(), 1000, "cancel the config watch").catch(() => undefined);
    const ew = this.epochWatcher;
    this.epochWatcher = null;
    if (ew !== null) void withTimeout(ew.cancel(), 1000, "cancel the epoch watch").catch(() => undefined);
    this.o.lease.release();
  }

  private epochWatcher: Watcher | null = null;

  /**
   * Epochs written by others (a planned switchover, switchover/switchover.ts):
   * the failover controller follows the new primary, and the cluster is probed
   * at once so that its new roles reach the data planes.
   */
  private async watchEpochs(): Promise<void> {
    try {
      const w = await withTimeout(this.o.client.watch().prefix(this.o.keys.epochPrefix).create(), this.o.callTimeoutMs, "watch the cluster epochs");
      if (this.stopped) {
        void w.cancel().catch(() => undefined);
        return;
      }
      this.epochWatcher = w;
      w.on("put", (kv) => {
        if (this.stopped) return;
        let e: ClusterEpoch;
        try {
          e = fromJsonString(ClusterEpochSchema, kv.value.toString("utf8"), { ignoreUnknownFields: true });
        } catch {
          return;
        }
        this.failover?.epochChanged(e);
        for (const p of this.probers.values()) if (p.spec.cluster === e.cluster) void p.probeNow().catch(() => undefined);
      });
      w.on("error", (err) => this.o.log.warn({ err: errText(err) }, "monitor: the epoch watch failed; a switchover's new roles are published at the next probes"));
    } catch (err) {
      this.o.log.warn({ err: errText(err) }, "monitor: cannot watch the cluster epochs; a switchover's new roles are published at the next probes");
    }
  }

  private async watchConfig(): Promise<void> {
    const { client, keys } = this.o;
    try {
      const w = await withTimeout(client.watch().key(keys.currentConfig).create(), this.o.callTimeoutMs, "watch the current config");
      if (this.stopped) {
        void w.cancel().catch(() => undefined);
        return;
      }
      this.watcher = w;
      w.on("put", (kv) => this.onConfig(kv.value.toString("utf8")));
      w.on("delete", () => this.reconcile(undefined));
      // After a reconnect events may have been missed: read again.
      w.on("connected", () => void this.resync());
      w.on("error", (err) => this.o.onFatal("the config watch failed", err));
    } catch (err) {
      this.o.onFatal("cannot watch the current config", err);
      return;
    }
    await this.resync();
    this.resyncTimer = setInterval(() => void this.resync(), CONFIG_RESYNC_MS);
  }

  private async resync(): Promise<void> {
    if (this.stopped) return;
    try {
      const value = await withTimeout(this.o.client.get(this.o.keys.currentConfig).string(), this.o.callTimeoutMs, "read the current config");
      if (value === null) this.reconcile(undefined);
      else this.onConfig(value);
    } catch (err) {
      this.o.log.warn({ err: errText(err) }, "monitor: cannot read the current config; probing with the last one");
    }
  }

  private onConfig(value: string): void {
    if (this.stopped) return;
    let cfg: ConfigVersion;
    try {
      cfg = fromJsonString(ConfigVersionSchema, value, { ignoreUnknownFields: true });
    } catch (err) {
      this.o.log.error({ err: errText(err), key: this.o.keys.currentConfig }, "monitor: the current config does not decode; probing with the last one");
      return;
    }
    if (cfg.version === this.lastConfigVersion) return;
    this.lastConfigVersion = cfg.version;
    this.reconcile(cfg);
  }

  /** Starts, restarts and stops probers to match the config; deletes keys of backends no longer probed. */
  private reconcile(cfg: ConfigVersion | undefined): void {
    if (this.stopped) return;
    const want = new Map<string, ProberSpec>();
    for (const cluster of cfg?.policy?.clusters ?? []) {
      const creds = cluster.health?.credentials;
      if (creds === undefined || creds.user === "") {
        this.warnOnce(cluster);
        continue;
      }
      this.warnedClusters.delete(cluster.name);
      const settings = probeSettings(cluster.health);
      for (const b of cluster.backends) {
        want.set(this.o.keys.backendHealth(cluster.name, b.name), {
          cluster: cluster.name,
          backend: b.name,
          address: b.address,
          settings,
          user: creds.user,
          secretRef: creds.secretRef,
          expectedRole: b.expectedRole,
        });
      }
    }
    for (const [key, p] of this.probers) {
      const w = want.get(key);
      if (w === undefined || JSON.stringify(w) !== JSON.stringify(p.spec)) {
        p.stop();
        this.probers.delete(key);
      }
    }
    for (const [key, spec] of want) {
      if (this.probers.has(key)) continue;
      const p = new Prober(key, spec, this.o, () => this.stopped, this.failover);
      this.probers.set(key, p);
      p.start();
    }
    void this.deleteStale(new Set(want.keys()));
    this.o.log.info({ version: (cfg?.version ?? 0n).toString(), backends: want.size }, "monitor: probing the current config");
  }

  private warnOnce(cluster: Cluster): void {
    if (this.warnedClusters.has(cluster.name)) return;
    this.warnedClusters.add(cluster.name);
    this.o.log.warn(
      { cluster: cluster.name },
      `monitor: cluster ${cluster.name} has no health.credentials (user and secretRef of an account with REPLICATION CLIENT / SLAVE MONITOR); its backends are not probed`,
    );
  }

  private async deleteStale(keep: Set<string>): Promise<void> {
    try {
      const existing = await withTimeout(this.o.client.getAll().prefix(this.o.keys.healthPrefix).keys(), this.o.callTimeoutMs, "list health keys");
      for (const key of existing) {
        if (this.stopped) return;
        if (keep.has(key)) continue;
        const res = await withTimeout(
          this.o.client.if(this.o.campaignKey, "Create", ">", 0).then(this.o.client.delete().key(key)).commit(),
          this.o.callTimeoutMs,
          `delete ${key}`,
        );
        if (!res.succeeded) {
          this.o.onFatal("no longer the leader (campaign key gone)");
          return;
        }
        this.o.log.info({ key }, "monitor: deleted the health of a backend no longer in the policy");
      }
    } catch (err) {
      this.o.log.warn({ err: errText(err) }, "monitor: cannot delete stale health keys; retried at the next config change");
    }
  }
}

/** Probes one backend at its interval, one probe at a time. */
class Prober {
  private timer: NodeJS.Timeout | null = null;
  private stopped = false;
  private running: Promise<void> | null = null;
  readonly tracker: BackendTracker = newTracker();
  private lastWrite: { fingerprint: string; atMs: number } | undefined;
  private lastDisagreement = "";
  private readonly host: string;
  private readonly port: number;

  constructor(
    private readonly key: string,
    readonly spec: ProberSpec,
    private readonly o: TermOptions,
    private readonly termStopped: () => boolean,
    private readonly failover: FailoverController | null = null,
  ) {
    const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d+)$/.exec(spec.address);
    this.host = m?.[1] ?? m?.[2] ?? spec.address;
    this.port = m !== null ? Number(m[3]) : 3306;
  }

  private get done(): boolean {
    return this.stopped || this.termStopped();
  }

  start(): void {
    this.timer = setTimeout(() => void this.tick(), 0);
  }

  /** Probes and publishes now (after a probe under way), then at the interval again. */
  async probeNow(): Promise<void> {
    if (this.running !== null) await this.running;
    if (this.done) return;
    if (this.timer !== null) clearTimeout(this.timer);
    await this.tick();
  }

  stop(): void {
    this.stopped = true;
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    this.o.metrics?.forget(this.spec.cluster, this.spec.backend);
  }

  private tick(): Promise<void> {
    const run = this.probeOnce().finally(() => {
      if (this.running === run) this.running = null;
    });
    this.running = run;
    return run;
  }

  private async probeOnce(): Promise<void> {
    this.timer = null;
    if (this.done) return;
    const started = Date.now();
    const { settings } = this.spec;
    let result: { ok: true; observation: ProbeObservation } | { ok: false; error: string };
    try {
      const password = await resolveMonitorSecret(this.spec.secretRef, this.o.env);
      const observation = await this.o.probe({ host: this.host, port: this.port, user: this.spec.user, password, timeoutMs: settings.timeoutMs });
      result = { ok: true, observation };
    } catch (err) {
      result = { ok: false, error: isMgwError(err) ? err.message : (errText(err) ?? "probe failed") };
    }
    if (this.done) return;
    const before = this.tracker.state;
    applyProbe(this.tracker, result, settings.failureThreshold);
    this.o.metrics?.probed(this.spec.cluster, this.spec.backend, result.ok, this.tracker.state === BackendHealth_State.UP, result.ok ? result.observation.lagSeconds : null);
    if (this.tracker.state !== before) {
      this.o.log.info({ cluster: this.spec.cluster, backend: this.spec.backend, from: BackendHealth_State[before], to: BackendHealth_State[this.tracker.state], err: this.tracker.lastError || undefined }, "monitor: backend state changed");
    }
    const disagreement = roleDisagreement(this.spec.expectedRole, this.tracker.last);
    if (disagreement !== this.lastDisagreement) {
      this.lastDisagreement = disagreement;
      if (disagreement !== "") this.o.log.warn({ cluster: this.spec.cluster, backend: this.spec.backend }, `monitor: ${this.spec.cluster}/${this.spec.backend}: ${disagreement}`);
    }
    await this.publish();
    if (this.done) return;
    this.failover?.onProbed(this);
    const delay = Math.max(0, settings.intervalMs - (Date.now() - started));
    this.timer = setTimeout(() => void this.tick(), delay);
  }

  private async publish(): Promise<void> {
    const now = Date.now();
    const built = buildHealth(this.tracker, { cluster: this.spec.cluster, backend: this.spec.backend, address: this.spec.address, monitorId: this.o.monitorId }, now, this.spec.expectedRole);
    const health = this.failover?.adjustHealth(built) ?? built;
    const fp = healthFingerprint(health, this.spec.settings.failureThreshold);
    if (!shouldWrite(this.lastWrite, fp, now, this.o.refreshMs)) return;
    try {
      const value = toJsonString(BackendHealthSchema, health);
      const { client, campaignKey, leaseId } = this.o;
      const res = await withTimeout(
        client.if(campaignKey, "Create", ">", 0).then(client.put(this.key).value(value).lease(leaseId)).commit(),
        this.o.callTimeoutMs,
        `write ${this.key}`,
      );
      if (!res.succeeded) {
        this.o.onFatal("no longer the leader (campaign key gone)");
        return;
      }
      this.lastWrite = { fingerprint: fp, atMs: now };
    } catch (err) {
      if (!this.done) this.o.log.warn({ key: this.key, err: errText(err) }, "monitor: cannot write backend health; retried at the next probe");
    }
  }
}

function errText(err: unknown): string | undefined {
  if (err === undefined) return undefined;
  return err instanceof Error ? err.message : String(err);
}

async function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer from etcd within ${ms} ms`)), ms + 250);
  });
  try {
    return await Promise.race([p, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

import type { Buffer } from "node:buffer";
import type { ConfigVersion } from "@mysqlgw/proto";
import { parseNativePasswordHash } from "../protocol/auth/mysql-native-password";
import { parseCachingSha2Verifier, type CachingSha2Verifier } from "../protocol/auth/sha256-crypt";
import { compileRules, statementKindOf, type CompiledRules } from "../routing/rules";
import type { StatementKind } from "../routing/statement-kind";
import { Firewall_Mode, type Firewall } from "@mysqlgw/proto";
import { compilePoolSettings, type PoolSettings } from "../pool/pool-settings";
import { compileBackendTls, type BackendTlsSettings } from "./tls";
import { compileProxyProtocol, type ProxyProtocolSettings } from "./proxy-intake";
import { NO_GATEWAY, compileCidrAccess, durationMs, type CidrAccess, type GatewaySnapshot } from "./access";
import { ClusterState, backendRoleOf, type BackendRole, type ClusterStateOptions } from "../routing/backend-state";
import { compileTracing, type TracingSettings } from "../observe/tracing-settings";
import { compileQuotas, type CompiledQuotas, type ListenerQuotas } from "../quota";

/**
 * Immutable per-config-version views that sessions keep for their whole life:
 * a session started under version N keeps N's cluster and users even after
 * the listener moved on. Only `ClusterRuntime` is shared and mutable.
 */

/** One backend address of a cluster. */
export interface BackendTarget {
  readonly name: string;
  readonly host: string;
  readonly port: number;
  readonly weight: number;
  /** Sessions one data plane holds on it (see access.ts); 0 or absent: no limit. */
  readonly maxConnections?: number;
  /** The policy's Backend.expected_role (an expectation; the monitor's report wins, see routing/backend-state.ts); absent: Unknown. */
  readonly expectedRole?: BackendRole;
  /** Told the outcome of every login to this backend (BackendHandshake): the cluster's ClusterState, for local ejection. */
  readonly loginOutcomes?: LoginOutcomes;
}

/** What a backend login reports (implemented by ClusterState). */
export interface LoginOutcomes {
  connectFailed(name: string, now: number): void;
  connectSucceeded(name: string): void;
}

/**
 * Mutable state shared by every session of one cluster name across config
 * versions, in one worker: the round-robin cursor and what we learned from the
 * last backend handshake (advertised to later clients).
 */
export interface ClusterRuntime {
  rr: number;
  serverVersion: string | null;
  capabilities: number | null;
  /** MariaDB extended capabilities of the last backend greeting (0: none, or not MariaDB). */
  mariadbCapabilities: number | null;
  characterSet: number | null;
  /** Roles, health, local ejection and load of the cluster's backends (routing/backend-state.ts). */
  readonly state: ClusterState;
  /** The last GTID a write through this worker produced on the cluster (read-your-writes GLOBAL); null: none yet. */
  lastGtid: string | null;
}

/** A fresh ClusterRuntime for cluster `name` (before any config or health named it). */
export function createClusterRuntime(name: string, stateOptions?: ClusterStateOptions): ClusterRuntime {
  return { rr: 0, serverVersion: null, capabilities: null, mariadbCapabilities: null, characterSet: null, state: new ClusterState(name, stateOptions), lastGtid: null };
}

export interface ClusterSnapshot {
  readonly name: string;
  readonly backends: readonly BackendTarget[];
  /** Indices into backends, each repeated by weight, interleaved (smooth WRR). */
  readonly ring: readonly number[];
  readonly runtime: ClusterRuntime;
  /** TLS toward this cluster's backends; null for plain TCP. */
  readonly tls: BackendTlsSettings | null;
  /** Write a PROXY v2 header (the client's real address) first on every backend connection. */
  readonly sendProxyProtocol: boolean;
  /** Backend connection pools of routed listeners (Cluster.pool with defaults). */
  readonly pool: PoolSettings;
}

export interface UserSnapshot {
  readonly name: string;
  /** SHA1(SHA1(pw)); null when password_hash is empty. */
  readonly stage2: Buffer | null;
  /** caching_sha2_password verifier as stored ("" if none) and parsed (null if none). */
  readonly sha2Hash: string;
  readonly sha2: CachingSha2Verifier | null;
  /** False when password_hash or caching_sha2_password_hash is malformed: nobody can log in as this user. */
  readonly hashValid: boolean;
  /** Refuse plain (non-TLS) client connections. */
  readonly requireTls: boolean;
  readonly backendUser: string;
  readonly secretRef: string;
  /** LOAD DATA LOCAL INFILE allowed (else CLIENT_LOCAL_FILES is cleared toward the backend). */
  readonly allowLoadDataLocal: boolean;
  /** IP lists checked at authentication (see access.ts); null: all addresses. */
  readonly access: CidrAccess | null;
  /** Concurrent sessions of this user per data plane; 0: no limit. */
  readonly maxConnections: number;
  /** Schemas the user may select; null: any. */
  readonly allowedSchemas: ReadonlySet<string> | null;
  /** Only reads (and session/transaction control) are allowed. */
  readonly readOnly: boolean;
  /** Statement kinds allowed; null: any. */
  readonly allowedKinds: ReadonlySet<StatementKind> | null;
  /** Its statements are checked one by one (permissions or the firewall apply): its sessions run on the routed engine. */
  readonly checked: boolean;
}

export interface ListenerSnapshot {
  readonly configVersion: bigint;
  readonly name: string;
  readonly bindAddress: string;
  readonly port: number;
  readonly clusterName: string;
  /** null when the listener names a cluster this version does not define. */
  readonly cluster: ClusterSnapshot | null;
  readonly users: ReadonlyMap<string, UserSnapshot>;
  /** Peers whose PROXY header is believed; null: no peer is trusted. */
  readonly proxyProtocol: ProxyProtocolSettings | null;
  /** IP lists checked at accept after the gateway's; null: all addresses. */
  readonly access: CidrAccess | null;
  /** Client connections per data plane on this listener; 0: no limit. */
  readonly maxConnections: number;
  /** Overrides the data plane's --handshake-timeout when > 0. */
  readonly handshakeTimeoutMs: number;
  /** A session idle between commands this long is closed; 0: never. */
  readonly idleTimeoutMs: number;
  /** The gateway-wide lists and limit of the same config version. */
  readonly gateway: GatewaySnapshot;
  /** proto ListenerRole: 0/1 READ_WRITE, 2 READ_ONLY, 3 SPLIT. */
  readonly role: number;
  /** proto ReplicaFallback: 0/1 PRIMARY, 2 NONE. */
  readonly replicaFallback: number;
  /** Listener.multiplexing as written; null: absent (see routedListener). */
  readonly multiplexing: boolean | null;
  /** proto ReadYourWrites. */
  readonly readYourWrites: number;
  readonly causalReadTimeoutMs: number;
  /** Some query rule may apply to this listener's statements: its sessions run on the routed engine. */
  readonly rulesApply: boolean;
  /** The SQL firewall's allowlist; null: off. */
  readonly firewall: FirewallSnapshot | null;
  /** The quotas that can count this listener's statements (quota/); null: none. Sessions of users it covers run on the routed engine. */
  readonly quotas: ListenerQuotas | null;
  /** The version's query rules, compiled once (shared by its listeners). */
  readonly rules: CompiledRules;
  /** Every cluster of the version, for rules that route elsewhere. */
  readonly clusters: ReadonlyMap<string, ClusterSnapshot>;
}

/** Weights above this are clamped (keeps the ring small). */
const MAX_WEIGHT = 100;

/** "host:port", "[v6]:port", or "host" (port 3306). */
export function parseBackendAddress(address: string): { host: string; port: number } {
  const a = address.trim();
  let host = a;
  let port = 3306;
  if (a.startsWith("[")) {
    const close = a.indexOf("]");
    host = a.slice(1, close < 0 ? undefined : close);
    const rest = close < 0 ? "" : a.slice(close + 1);
    if (rest.startsWith(":")) port = Number(rest.slice(1));
  } else {
    const colon = a.lastIndexOf(":");
    if (colon >= 0 && a.indexOf(":") === colon) {
      host = a.slice(0, colon);
      port = Number(a.slice(colon + 1));
    }
  }
  if (!Number.isInteger(port) || port < 1 || port > 65535) port = 3306;
  return { host, port };
}

/** Smooth weighted round robin (nginx) unrolled into one cycle of indices. */
export function buildRing(weights: readonly number[]): number[] {
  const w = weights.map((x) => Math.min(Math.max(x | 0, 1), MAX_WEIGHT));
  const total = w.reduce((a, b) => a + b, 0);
  const current = w.map(() => 0);
  const ring: number[] = [];
  for (let step = 0; step < total; step++) {
    let best = 0;
    for (let i = 0; i < w.length; i++) {
      current[i] += w[i];
      if (current[i] > current[best]) best = i;
    }
    current[best] -= total;
    ring.push(best);
  }
  return ring;
}

/**
 * Backends to try for one new connection, in order: starts at the next ring
 * position (advancing the shared cursor) and then every other backend once;
 * those the monitor reports DOWN or this worker ejected come last (tried only
 * if no other one logs us in).
 */
export function backendOrder(cluster: ClusterSnapshot): BackendTarget[] {
  const ring = cluster.ring;
  const n = cluster.backends.length;
  if (n === 0) return [];
  const start = cluster.runtime.rr++ % ring.length;
  if (cluster.runtime.rr >= 0x40000000) cluster.runtime.rr = 0;
  const seen = new Array<boolean>(n).fill(false);
  const out: BackendTarget[] = [];
  for (let k = 0; k < ring.length && out.length < n; k++) {
    const idx = ring[(start + k) % ring.length];
    if (!seen[idx]) {
      seen[idx] = true;
      out.push(cluster.backends[idx]);
    }
  }
  const state = cluster.runtime.state;
  const now = Date.now();
  if (out.every((b) => state.available(b.name, now))) return out;
  return [...out.filter((b) => state.available(b.name, now)), ...out.filter((b) => !state.available(b.name, now))];
}

export interface CompiledConfig {
  readonly version: bigint;
  readonly listeners: ListenerSnapshot[];
  /** Users whose password_hash is unusable (for a warning). */
  readonly invalidUsers: string[];
  /** Gateway.tracing, for the tracing observer (observe/tracing-settings.ts). */
  readonly tracing: TracingSettings;
  /** Every cluster of the version by name. */
  readonly clusters: ReadonlyMap<string, ClusterSnapshot>;
  /** Policy.quotas, put in force (quotas.activate) once the version is served. */
  readonly quotas: CompiledQuotas;
}

/** Builds per-listener snapshots of `config`, reusing `runtimes` by cluster name; `bindAddress` (--bind-address) replaces every listener's. */
export function compileConfig(config: ConfigVersion, runtimes: Map<string, ClusterRuntime>, stateOptions?: ClusterStateOptions, bindAddress = ""): CompiledConfig {
  const policy = config.policy;
  const users = new Map<string, UserSnapshot>();
  const invalidUsers: string[] = [];
  for (const u of policy?.users ?? []) {
    const stage2 = u.passwordHash === "" ? null : parseNativePasswordHash(u.passwordHash);
    const sha2Parsed = u.cachingSha2PasswordHash === "" ? null : parseCachingSha2Verifier(u.cachingSha2PasswordHash);
    const sha2 = typeof sha2Parsed === "object" ? sha2Parsed : null;
    const hashValid = (u.passwordHash === "" || stage2 !== null) && (u.cachingSha2PasswordHash === "" || sha2 !== null);
    if (!hashValid) invalidUsers.push(u.name);
    users.set(u.name, {
      name: u.name,
      stage2,
      sha2Hash: u.cachingSha2PasswordHash,
      sha2,
      hashValid,
      requireTls: u.requireTls,
      backendUser: u.backendCredentials?.user || u.name,
      secretRef: u.backendCredentials?.secretRef ?? "",
      allowLoadDataLocal: u.allowLoadDataLocal,
      access: compileCidrAccess(u.allowCidrs, u.denyCidrs),
      maxConnections: u.maxConnections,
      allowedSchemas: u.allowedSchemas.length === 0 ? null : new Set(u.allowedSchemas),
      readOnly: u.readOnly,
      allowedKinds: kindSet(u.allowedStatementKinds),
      checked: u.readOnly || u.allowedSchemas.length > 0 || u.allowedStatementKinds.length > 0 || firewallCovers(policy?.gateway?.firewall, u.name),
    });
  }
  const clusters = new Map<string, ClusterSnapshot>();
  for (const c of policy?.clusters ?? []) {
    let runtime = runtimes.get(c.name);
    if (runtime === undefined) {
      runtime = createClusterRuntime(c.name, stateOptions);
      runtimes.set(c.name, runtime);
    }
    const backends = c.backends.map((b) => ({ name: b.name, ...parseBackendAddress(b.address), weight: b.weight || 1, maxConnections: b.maxConnections, expectedRole: backendRoleOf(b.expectedRole), loginOutcomes: runtime.state }));
    runtime.state.setBackends(backends, c.loadBalancing, durationMs(c.health?.maxReplicationLag) || null);
    clusters.set(c.name, { name: c.name, backends, ring: buildRing(backends.map((b) => b.weight)), runtime, tls: compileBackendTls(c.tls), sendProxyProtocol: c.sendProxyProtocol, pool: compilePoolSettings(c.pool) });
  }
  const g = policy?.gateway;
  const gateway: GatewaySnapshot = g === undefined ? NO_GATEWAY : { access: compileCidrAccess(g.allowCidrs, g.denyCidrs), maxConnections: g.maxConnections };
  const rules = compileRules(policy?.rules ?? []);
  const quotas = compileQuotas(policy?.quotas ?? []);
  const listeners = (policy?.listeners ?? []).map(
    (l): ListenerSnapshot => ({
      configVersion: config.version,
      name: l.name,
      bindAddress: bindAddress || l.bindAddress || "0.0.0.0",
      port: l.port,
      clusterName: l.cluster,
      cluster: clusters.get(l.cluster) ?? null,
      users,
      proxyProtocol: compileProxyProtocol(l.proxyProtocol),
      access: compileCidrAccess(l.allowCidrs, l.denyCidrs),
      maxConnections: l.maxConnections,
      handshakeTimeoutMs: durationMs(l.handshakeTimeout),
      idleTimeoutMs: durationMs(l.idleTimeout),
      gateway,
      role: l.role,
      replicaFallback: l.replicaFallback,
      multiplexing: l.multiplexing ?? null,
      readYourWrites: l.readYourWrites,
      causalReadTimeoutMs: durationMs(l.causalReadTimeout),
      rules,
      clusters,
      firewall: compileFirewall(policy?.gateway?.firewall),
      rulesApply: rules.appliesToListener(l.name),
      quotas: quotas.forListener(l.name, l.cluster),
    }),
  );
  return { version: config.version, listeners, invalidUsers, tracing: compileTracing(g?.tracing), clusters, quotas };
}

/** Gateway.firewall as sessions use it. */
export interface FirewallSnapshot {
  /** true: statements off the list are refused; false: learning (they run and are reported). */
  readonly enforce: boolean;
  readonly digests: ReadonlySet<string>;
  /** Users it applies to; null: every user. */
  readonly users: ReadonlySet<string> | null;
}

function compileFirewall(f: Firewall | undefined): FirewallSnapshot | null {
  if (f === undefined || (f.mode !== Firewall_Mode.LEARN && f.mode !== Firewall_Mode.ENFORCE)) return null;
  return { enforce: f.mode === Firewall_Mode.ENFORCE, digests: new Set(f.allowedDigests.map((d) => d.toLowerCase())), users: f.users.length === 0 ? null : new Set(f.users) };
}

function firewallCovers(f: Firewall | undefined, user: string): boolean {
  const c = compileFirewall(f);
  return c !== null && (c.users === null || c.users.has(user));
}

function kindSet(names: readonly string[]): ReadonlySet<StatementKind> | null {
  if (names.length === 0) return null;
  const out = new Set<StatementKind>();
  for (const n of names) {
    const k = statementKindOf(n);
    if (k !== null) out.add(k);
  }
  return out;
}

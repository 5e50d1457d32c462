import { isIP, isIPv4, isIPv6 } from "node:net";
import type { Cluster, Listener, Policy, User } from "@mysqlgw/proto";
import type { PolicyViolationInit } from "../errors";
import { DEFAULT_BIND_ADDRESS } from "./normalize";
import { checkFirewallUsers, checkGateway, checkListenerAccess, checkMaxConnections, checkUserAccess } from "./validate-access";
import { checkClusterHealth } from "./validate-health";
import { checkRules } from "./validate-rules";
import { checkQuotas } from "./validate-quotas";
import { checkClusterPool } from "./validate-pool";

/** Names of clusters, listeners and backends. */
export const RESOURCE_NAME_RE = /^[a-z0-9][a-z0-9_-]{0,62}$/;
/** mysql_native_password verifier as stored in mysql.user. */
export const PASSWORD_HASH_RE = /^\*[0-9A-F]{40}$/;
/** MariaDB allows user names of up to 80 characters. */
export const MAX_USER_NAME_LENGTH = 80;

const ENV_NAME_RE = /^[A-Za-z_][A-Za-z0-9_]*$/;
const HOST_LABEL = "[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?";
const HOSTNAME_RE = new RegExp(`^(?=.{1,253}$)${HOST_LABEL}(?:\\.${HOST_LABEL})*\\.?$`);
const HASH_HOWTO = "use `mysqlgw hash-password` or SELECT PASSWORD('…') in MariaDB to get it";

type Kind = "Cluster" | "Listener" | "User" | "Gateway";

/**
 * Checks a policy as the caller sent it (before normalisation, so indexes point
 * into the caller's lists) and returns every problem found, in a stable order:
 * clusters, then listeners, then users, then the gateway, then the query rules, then the quotas. An empty result means valid.
 *
 * Descriptions say what is wrong and what to do. They never repeat a value that
 * might be a secret (password_hash, secret_ref that is not a reference).
 */
export function validatePolicy(policy: Policy): PolicyViolationInit[] {
  const out: PolicyViolationInit[] = [];
  const add = (kind: Kind, name: string, index: number, field: string, description: string): void => {
    out.push({ kind, name, index, field, description });
  };

  // Clusters
  const clusterNames = new Map<string, number>();
  policy.clusters.forEach((c, i) => {
    checkResourceName("Cluster", c.name, i, clusterNames, add);
    if (c.backends.length === 0) {
      add("Cluster", c.name, i, "backends", "a cluster needs at least one backend; add one, e.g. backends: [{name: db1, address: \"db1.example.internal:3306\"}]");
    }
    const backendNames = new Map<string, number>();
    c.backends.forEach((b, j) => {
      const f = `backends[${j}]`;
      if (b.name === "") {
        add("Cluster", c.name, i, `${f}.name`, "backend name is missing; give each backend a name of lower-case letters, digits, '-' or '_' (e.g. db1)");
      } else if (!RESOURCE_NAME_RE.test(b.name)) {
        add("Cluster", c.name, i, `${f}.name`, `${JSON.stringify(b.name)} is not a valid backend name; use 1-63 lower-case letters, digits, '-' or '_', starting with a letter or digit`);
      } else if (backendNames.has(b.name)) {
        add("Cluster", c.name, i, `${f}.name`, `backend ${JSON.stringify(b.name)} appears twice in this cluster (also backends[${backendNames.get(b.name)}]); rename or remove one`);
      } else {
        backendNames.set(b.name, j);
      }
      const problem = checkAddress(b.address);
      if (problem !== null) add("Cluster", c.name, i, `${f}.address`, problem);
      checkMaxConnections(add, "Cluster", c.name, i, `${f}.maxConnections`, b.maxConnections);
    });
    checkBackendTls(c, i, add);
    checkClusterHealth(c, i, out);
    checkClusterPool(c, i, out);
  });

  // Listeners
  const listenerNames = new Map<string, number>();
  const endpoints: { bind: string; port: number; name: string }[] = [];
  policy.listeners.forEach((l, i) => {
    checkResourceName("Listener", l.name, i, listenerNames, add);
    let bindOk = true;
    if (l.bindAddress !== "" && isIP(l.bindAddress) === 0) {
      bindOk = false;
      add("Listener", l.name, i, "bindAddress", `${JSON.stringify(l.bindAddress)} is not an IP address; use an IPv4 or IPv6 address such as 127.0.0.1 or ::1, or leave bindAddress out to listen on ${DEFAULT_BIND_ADDRESS}`);
    }
    let portOk = true;
    if (l.port === 0) {
      portOk = false;
      add("Listener", l.name, i, "port", "port is missing; set port to a TCP port in 1..65535 (e.g. 6033)");
    } else if (l.port > 65535) {
      portOk = false;
      add("Listener", l.name, i, "port", `${l.port} is out of range; use 1..65535`);
    }
    if (bindOk && portOk) checkEndpoint(l, i, endpoints, add);
    if (l.cluster === "") {
      add("Listener", l.name, i, "cluster", "cluster is missing; name the Cluster this listener forwards to");
    } else if (!clusterNames.has(l.cluster)) {
      const defined = [...clusterNames.keys()];
      add("Listener", l.name, i, "cluster", `cluster ${JSON.stringify(l.cluster)} is not defined in this policy; define a Cluster with that name or fix the reference` +
        (defined.length > 0 ? ` (defined: ${defined.join(", ")})` : " (the policy defines no clusters)"));
    }
    checkProxyProtocol(l, i, add);
    checkListenerAccess(add, l, i);
  });

  // Users
  const userNames = new Map<string, number>();
  policy.users.forEach((u, i) => {
    checkUser(u, i, userNames, add);
    checkUserAccess(add, u, i);
  });

  // Gateway (a singleton: the CLI refuses a second Gateway document)
  if (policy.gateway !== undefined) checkGateway(add, policy.gateway);
  checkFirewallUsers(add, policy.gateway, policy.users);

  // Query rules (in order; kind "QueryRule")
  checkRules(policy, out);
  // Quotas (kind "Quota")
  checkQuotas(policy, out);
  return out;
}

type Add = (kind: Kind, name: string, index: number, field: string, description: string) => void;

/**
 * proxyProtocol.trustedCidrs: each an IPv4 or IPv6 CIDR (or a single address);
 * an IPv4 CIDR with host bits set is refused with the network it probably
 * means. required needs at least one trusted CIDR.
 */
function checkProxyProtocol(l: Listener, index: number, add: Add): void {
  const pp = l.proxyProtocol;
  if (pp === undefined) return;
  pp.trustedCidrs.forEach((cidr, k) => {
    const problem = checkCidr(cidr);
    if (problem !== null) add("Listener", l.name, index, `proxyProtocol.trustedCidrs[${k}]`, problem);
  });
  if (pp.required && pp.trustedCidrs.length === 0) {
    add("Listener", l.name, index, "proxyProtocol.required",
      "required has no effect without trustedCidrs; list the load balancers' addresses in proxyProtocol.trustedCidrs (e.g. [10.0.0.0/24]) or drop required");
  }
}

/** null if `cidr` is "address/prefix" or a bare address; else what to write instead. */
export function checkCidr(cidr: string): string | null {
  const how = "write an IPv4 or IPv6 network as address/prefix-length, e.g. 10.0.0.0/24 or fd00::/64, or a single address such as 10.0.0.7";
  const slash = cidr.indexOf("/");
  const address = slash < 0 ? cidr : cidr.slice(0, slash);
  const v4 = isIPv4(address);
  if (!v4 && !isIPv6(address)) return `${JSON.stringify(cidr)} is not a CIDR; ${how}`;
  if (slash < 0) return null;
  const max = v4 ? 32 : 128;
  const p = cidr.slice(slash + 1);
  if (!/^(0|[1-9][0-9]{0,2})$/.test(p) || Number(p) > max) {
    return `${JSON.stringify(cidr)} has a bad prefix length; use 0..${max} after the '/' (${how})`;
  }
  if (v4) {
    const n = address.split(".").reduce((a, o) => a * 256 + Number(o), 0);
    const size = 2 ** (32 - Number(p));
    const network = n - (n % size);
    if (network !== n) {
      const dotted = [24, 16, 8, 0].map((sh) => Math.floor(network / 2 ** sh) % 256).join(".");
      return `${JSON.stringify(cidr)} has host bits set; write the network, ${dotted}/${p}, or the single address ${address}`;
    }
  }
  return null;
}

function checkResourceName(kind: Kind, name: string, index: number, seen: Map<string, number>, add: Add): void {
  const plural = `${kind.toLowerCase()}s`;
  if (name === "") {
    add(kind, name, index, "name", `name is missing; give every ${kind} a name of lower-case letters, digits, '-' or '_' (e.g. orders)`);
  } else if (!RESOURCE_NAME_RE.test(name)) {
    add(kind, name, index, "name", `${JSON.stringify(name)} is not a valid name; use 1-63 lower-case letters, digits, '-' or '_', starting with a letter or digit`);
  } else if (seen.has(name)) {
    add(kind, name, index, "name", `${kind} ${JSON.stringify(name)} is defined twice (also ${plural}[${seen.get(name)}]); rename or remove one`);
  } else {
    seen.set(name, index);
  }
}

/** Returns null if `address` is host:port, else what is wrong and what to do. */
export function checkAddress(address: string): string | null {
  const example = "use host:port, e.g. db1.example.internal:3306, 127.0.0.1:3306 or [::1]:3306";
  if (address === "") return `address is missing; ${example}`;
  let host: string;
  let portText: string;
  if (address.startsWith("[")) {
    const close = address.indexOf("]");
    if (close < 0) return `${JSON.stringify(address)} has no closing ']'; ${example}`;
    host = address.slice(1, close);
    if (!isIPv6(host)) return `${JSON.stringify(host)} in brackets is not an IPv6 address; ${example}`;
    if (address[close + 1] !== ":") return `${JSON.stringify(address)} has no port; ${example}`;
    portText = address.slice(close + 2);
  } else {
    const colon = address.lastIndexOf(":");
    if (colon < 0) return `${JSON.stringify(address)} has no port; ${example}`;
    host = address.slice(0, colon);
    portText = address.slice(colon + 1);
    if (host.includes(":")) return `${JSON.stringify(address)} looks like an IPv6 address without brackets; write it as [${host}]:${portText}`;
    if (host === "") return `${JSON.stringify(address)} has no host; ${example}`;
    if (!isIPv4(host) && !HOSTNAME_RE.test(host)) return `${JSON.stringify(host)} is not a valid host name or IP address; ${example}`;
  }
  if (!/^[0-9]{1,5}$/.test(portText)) return `port ${JSON.stringify(portText)} in ${JSON.stringify(address)} is not a number; ${example}`;
  const port = Number(portText);
  if (port < 1 || port > 65535) return `port ${port} in ${JSON.stringify(address)} is out of range; use 1..65535`;
  return null;
}

function isWildcard(bind: string): boolean {
  return bind === "0.0.0.0" || bind === "::";
}

function checkEndpoint(l: Listener, index: number, endpoints: { bind: string; port: number; name: string }[], add: Add): void {
  const bind = l.bindAddress === "" ? DEFAULT_BIND_ADDRESS : l.bindAddress;
  for (const e of endpoints) {
    if (e.port !== l.port) continue;
    if (e.bind === bind || isWildcard(e.bind) || isWildcard(bind)) {
      add("Listener", l.name, index, "port", `port ${l.port} on ${bind} clashes with listener ${JSON.stringify(e.name)} (${e.bind}:${e.port}); give each listener its own port or a distinct bind address`);
      return;
    }
  }
  endpoints.push({ bind, port: l.port, name: l.name });
}

function checkUser(u: User, i: number, seen: Map<string, number>, add: Add): void {
  if (u.name === "") {
    add("User", u.name, i, "name", "name is missing; set the MySQL user name clients log in with");
  } else if (u.name.includes("\0")) {
    add("User", u.name, i, "name", "name contains a NUL character; remove it");
  } else if ([...u.name].length > MAX_USER_NAME_LENGTH) {
    add("User", u.name, i, "name", `name is ${[...u.name].length} characters long; MariaDB user names are at most ${MAX_USER_NAME_LENGTH}`);
  } else if (seen.has(u.name)) {
    add("User", u.name, i, "name", `User ${JSON.stringify(u.name)} is defined twice (also users[${seen.get(u.name)}]); rename or remove one`);
  } else {
    seen.set(u.name, i);
  }

  const h = u.passwordHash;
  if (h !== "" && !PASSWORD_HASH_RE.test(h)) {
    if (/^\*[0-9a-fA-F]{40}$/.test(h)) {
      add("User", u.name, i, "passwordHash", "the hash has lower-case hex digits; write it in upper case, as mysql.user stores it");
    } else if (h.startsWith("*")) {
      add("User", u.name, i, "passwordHash", `not a mysql_native_password hash ("*" and 40 upper-case hex digits, value not shown); ${HASH_HOWTO}`);
    } else {
      add("User", u.name, i, "passwordHash", `this looks like a clear password (value not shown); a policy must never hold one: put the mysql_native_password hash here instead — ${HASH_HOWTO}`);
    }
  }

  const sha2Problem = checkCachingSha2Hash(u.cachingSha2PasswordHash);
  if (sha2Problem !== null) add("User", u.name, i, "cachingSha2PasswordHash", sha2Problem);

  const bc = u.backendCredentials;
  if (bc === undefined) return;
  if (bc.user.includes("\0")) {
    add("User", u.name, i, "backendCredentials.user", "contains a NUL character; remove it");
  } else if ([...bc.user].length > MAX_USER_NAME_LENGTH) {
    add("User", u.name, i, "backendCredentials.user", `is ${[...bc.user].length} characters long; MariaDB user names are at most ${MAX_USER_NAME_LENGTH}`);
  }
  const problem = checkSecretRef(bc.secretRef);
  if (problem !== null) add("User", u.name, i, "backendCredentials.secretRef", problem);
}

const SHA2_HOWTO = "use `mysqlgw hash-password` (it prints both verifiers), or copy authentication_string of a caching_sha2_password account from MySQL 8's mysql.user";
const CRYPT_B64_RE = /^[./0-9A-Za-z]{43}$/;

/**
 * Returns null if `h` is empty or a caching_sha2_password verifier in
 * mysql.user format ("$A$" + 3 hex digits of rounds/1000 + "$" + 20-byte salt
 * without '$' or NUL + 43 crypt-base64 characters), else what is wrong.
 */
export function checkCachingSha2Hash(h: string): string | null {
  if (h === "") return null;
  if (!h.startsWith("$A$")) {
    if (h.startsWith("*")) return `this is a mysql_native_password hash; put it in passwordHash, and here the caching_sha2_password verifier ("$A$005$…"); ${SHA2_HOWTO}`;
    return `this looks like a clear password (value not shown); a policy must never hold one: put the caching_sha2_password verifier ("$A$005$…") here instead — ${SHA2_HOWTO}`;
  }
  const digits = h.slice(3, 6);
  if (!/^[0-9A-Fa-f]{3}$/.test(digits) || h[6] !== "$") return `must start with "$A$", three hex digits (rounds / 1000) and "$", as "$A$005$"; ${SHA2_HOWTO}`;
  const rounds = parseInt(digits, 16) * 1000;
  if (rounds < 1000) return `round count ${rounds} is below MySQL's minimum of 1000 ("$A$001$"); ${SHA2_HOWTO}`;
  if (h.length !== 70) return `must be 70 characters ("$A$005$", a 20-character salt, a 43-character hash), got ${h.length} (value not shown); ${SHA2_HOWTO}`;
  for (let k = 7; k < 27; k++) {
    const c = h.charCodeAt(k);
    if (c < 1 || c > 0x7f || c === 0x24) return `the 20-character salt may hold only ASCII characters other than '$' and NUL; ${SHA2_HOWTO}`;
  }
  if (!CRYPT_B64_RE.test(h.slice(27))) return `the last 43 characters must use the crypt base64 alphabet [./0-9A-Za-z]; ${SHA2_HOWTO}`;
  return null;
}

const TLS_MODE_NAMES: Record<number, string> = { 1: "MODE_DISABLED", 2: "MODE_REQUIRED", 3: "MODE_VERIFY_CA", 4: "MODE_VERIFY_IDENTITY" };

function checkBackendTls(c: Cluster, i: number, add: Add): void {
  const t = c.tls;
  if (t === undefined) return;
  const mode = TLS_MODE_NAMES[t.mode];
  const verify = t.mode === 3 || t.mode === 4;
  if (mode === undefined && t.mode !== 0) {
    add("Cluster", c.name, i, "tls.mode", `unknown mode ${t.mode}; use MODE_DISABLED, MODE_REQUIRED, MODE_VERIFY_CA or MODE_VERIFY_IDENTITY`);
    return;
  }
  if (t.mode === 0 && (t.caFile !== "" || t.serverName !== "")) {
    add("Cluster", c.name, i, "tls.mode", "tls.caFile or tls.serverName is set but tls.mode is not; set mode to MODE_VERIFY_CA or MODE_VERIFY_IDENTITY (or MODE_REQUIRED to encrypt without checking the certificate)");
  }
  if (verify && t.caFile === "") {
    add("Cluster", c.name, i, "tls.caFile", `${mode} checks the server certificate against a CA: set caFile to the CA's PEM file on the data plane hosts (absolute path)`);
  }
  if (t.caFile !== "" && !t.caFile.startsWith("/")) {
    add("Cluster", c.name, i, "tls.caFile", `${JSON.stringify(t.caFile)} is not an absolute path; data planes read it where they run: use /absolute/path/ca.pem`);
  }
  if (t.caFile.includes("\0")) add("Cluster", c.name, i, "tls.caFile", "contains a NUL character; remove it");
}

/** Returns null if `ref` is empty, env:NAME or file:/absolute/path, else what is wrong and what to do. */
export function checkSecretRef(ref: string): string | null {
  if (ref === "") return null;
  const howto = "use env:NAME (an environment variable of the data plane) or file:/absolute/path (a file on the data plane host)";
  if (ref.startsWith("env:")) {
    const name = ref.slice(4);
    return ENV_NAME_RE.test(name) ? null : `${JSON.stringify(name)} is not an environment variable name; use letters, digits and '_', not starting with a digit (e.g. env:ORDERS_DB_PASSWORD)`;
  }
  if (ref.startsWith("file:")) {
    const p = ref.slice(5);
    if (p.includes("\0")) return "the file path contains a NUL character; remove it";
    return p.startsWith("/") ? null : `${JSON.stringify(p)} is not an absolute path; use file:/absolute/path`;
  }
  // Not shown: this may be a clear password written in the wrong place.
  return `not a secret reference (value not shown); ${howto} — never the password itself`;
}

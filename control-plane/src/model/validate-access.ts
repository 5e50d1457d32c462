import type { Duration } from "@bufbuild/protobuf/wkt";
import type { Gateway, Listener, User } from "@mysqlgw/proto";
import { checkCidr } from "./validate";
import { checkTracing } from "./validate-tracing";
import { RULE_KINDS } from "./validate-rules";

/**
 * Rules for the access-control fields (issue 6): allow/deny CIDR lists,
 * max_connections, and a listener's handshake/idle timeouts. Shared by
 * Gateway, Listener, User (lists and limit) and Backend (limit).
 */

type Add = (kind: "Cluster" | "Listener" | "User" | "Gateway", name: string, index: number, field: string, description: string) => void;

/** Largest max_connections accepted anywhere (a data plane could not hold more). */
export const MAX_CONNECTIONS_LIMIT = 1_000_000;
const HANDSHAKE_TIMEOUT_MIN_MS = 100;
const HANDSHAKE_TIMEOUT_MAX_MS = 3_600_000;
const IDLE_TIMEOUT_MIN_MS = 1000;
/** MariaDB's largest wait_timeout: one year. */
const IDLE_TIMEOUT_MAX_MS = 31_536_000_000;

export function checkMaxConnections(add: Add, kind: "Cluster" | "Listener" | "User" | "Gateway", name: string, index: number, field: string, n: number): void {
  if (n > MAX_CONNECTIONS_LIMIT) {
    add(kind, name, index, field, `${n} is more connections than one data plane can hold; use 1..${MAX_CONNECTIONS_LIMIT}, or 0 (or leave it out) for no limit`);
  }
}

/** allowCidrs / denyCidrs: each a CIDR or a single address (IPv4 or IPv6); a CIDR in both lists is pointless. */
export function checkCidrLists(add: Add, kind: "Listener" | "User" | "Gateway", name: string, index: number, r: { allowCidrs: string[]; denyCidrs: string[] }): void {
  r.allowCidrs.forEach((c, k) => {
    const problem = checkCidr(c);
    if (problem !== null) add(kind, name, index, `allowCidrs[${k}]`, problem);
  });
  r.denyCidrs.forEach((c, k) => {
    const problem = checkCidr(c);
    if (problem !== null) add(kind, name, index, `denyCidrs[${k}]`, problem);
    else if (r.allowCidrs.includes(c)) add(kind, name, index, `denyCidrs[${k}]`, `${JSON.stringify(c)} is in both allowCidrs and denyCidrs (deny wins, so it is refused); remove it from one of them`);
  });
}

export function checkGateway(add: Add, g: Gateway): void {
  checkCidrLists(add, "Gateway", "gateway", 0, g);
  checkMaxConnections(add, "Gateway", "gateway", 0, "maxConnections", g.maxConnections);
  if (g.tracing !== undefined) checkTracing(g.tracing, (field, description) => add("Gateway", "gateway", 0, field, description));
  if (g.firewall !== undefined) {
    g.firewall.allowedDigests.forEach((d, k) => {
      if (!/^[0-9a-fA-F]{16}$/.test(d)) add("Gateway", "gateway", 0, `firewall.allowedDigests[${k}]`, `${JSON.stringify(d)} is not a statement digest; use the 16 hex digits mysqlgw explain (or mysqlgw firewall suggest) prints`);
    });
  }
}

/** Gateway.firewall.users must name users of the policy. */
export function checkFirewallUsers(add: Add, g: Gateway | undefined, users: readonly User[]): void {
  if (g?.firewall === undefined) return;
  const names = new Set(users.map((u) => u.name));
  g.firewall.users.forEach((n, k) => {
    if (!names.has(n)) add("Gateway", "gateway", 0, `firewall.users[${k}]`, `no user ${JSON.stringify(n)} in this policy; name a User, or remove it`);
  });
}

export function checkListenerAccess(add: Add, l: Listener, index: number): void {
  checkCidrLists(add, "Listener", l.name, index, l);
  checkMaxConnections(add, "Listener", l.name, index, "maxConnections", l.maxConnections);
  checkTimeout(add, l, index, "handshakeTimeout", l.handshakeTimeout, HANDSHAKE_TIMEOUT_MIN_MS, HANDSHAKE_TIMEOUT_MAX_MS, "e.g. 10s");
  checkTimeout(add, l, index, "idleTimeout", l.idleTimeout, IDLE_TIMEOUT_MIN_MS, IDLE_TIMEOUT_MAX_MS, "e.g. 28800s, MariaDB's default wait_timeout");
}

export function checkUserAccess(add: Add, u: User, index: number): void {
  checkCidrLists(add, "User", u.name, index, u);
  checkMaxConnections(add, "User", u.name, index, "maxConnections", u.maxConnections);
  u.allowedStatementKinds.forEach((kind, k) => {
    if (!RULE_KINDS.includes(kind.toUpperCase())) {
      add("User", u.name, index, `allowedStatementKinds[${k}]`, `unknown statement kind ${JSON.stringify(kind)}; use one of ${RULE_KINDS.join(", ")}`);
    }
  });
  u.allowedSchemas.forEach((s, k) => {
    if (s === "" || s.length > 64) add("User", u.name, index, `allowedSchemas[${k}]`, `a schema name has 1..64 characters; got ${JSON.stringify(s)}`);
  });
}

function checkTimeout(add: Add, l: Listener, index: number, field: string, d: Duration | undefined, minMs: number, maxMs: number, example: string): void {
  if (d === undefined) return;
  const ms = Number(d.seconds) * 1000 + d.nanos / 1e6;
  const range = `${minMs / 1000}s..${maxMs / 1000}s`;
  if (d.seconds < 0n || d.nanos < 0 || d.nanos > 999_999_999) {
    add("Listener", l.name, index, field, `must be a positive duration in ${range} (${example}); leave it out for the default`);
  } else if (ms < minMs || ms > maxMs) {
    add("Listener", l.name, index, field, `${ms / 1000}s is out of range; use ${range} (${example}), or leave it out for the default`);
  }
}

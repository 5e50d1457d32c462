/**
 * Who may call what on the control plane's API: THE role matrix, for every
 * transport (gRPC, Connect, gRPC-Web through the interceptor; REST through its
 * route column). docs/security.md shows the same table; change both together.
 */

/** API roles, each including the one before: viewer ⊂ operator ⊂ admin. */
export type Role = "viewer" | "operator" | "admin";
/** "open": served without authentication (health, metrics). */
export type Access = "open" | Role;

export const ROLES: readonly Role[] = ["viewer", "operator", "admin"];
const RANK: Record<Access, number> = { open: 0, viewer: 1, operator: 2, admin: 3 };

/** True when `role` may do what `needed` guards. */
export function allows(role: Role, needed: Access): boolean {
  return RANK[role] >= RANK[needed];
}

export function isRole(s: string): s is Role {
  return (ROLES as readonly string[]).includes(s);
}

export interface AccessRule {
  /** "<package>.<Service>/<Method>" as gRPC names it; null for REST-only routes. */
  readonly rpc: string | null;
  /** "METHOD /path", `{name}` for one path segment; null for RPCs without a REST route. */
  readonly rest: string | null;
  /** The least role that may call it. */
  readonly access: Access;
  /** Changes something: every call is written to the audit log (refused calls of any method are too). */
  readonly mutating: boolean;
}

const A = "mysqlgw.admin.v1.AdminService/";
const H = "mysqlgw.admin.v1.HistoryService/";
const U = "mysqlgw.admin.v1.AuditService/";
const R = "mysqlgw.admin.v1.ReplicationService/";
const C = "/v1/clusters/{cluster}";

/**
 * The role matrix. An RPC or REST route that is not listed needs admin and is
 * audited (a new mutating RPC is closed until someone places it here); an
 * unlisted GET route needs viewer.
 */
export const ACCESS_RULES: readonly AccessRule[] = [
  // open: probes and scrapers carry no token
  { rpc: `${A}GetHealth`, rest: "GET /v1/health", access: "open", mutating: false },
  { rpc: null, rest: "GET /metrics", access: "open", mutating: false },
  // viewer: reads
  { rpc: `${A}GetPolicy`, rest: "GET /v1/policy", access: "viewer", mutating: false },
  { rpc: `${A}DiffPolicy`, rest: "POST /v1/policy:diff", access: "viewer", mutating: false },
  { rpc: `${A}ListDataPlanes`, rest: "GET /v1/dataplanes", access: "viewer", mutating: false },
  { rpc: `${A}ListBackendHealth`, rest: "GET /v1/backends", access: "viewer", mutating: false },
  { rpc: `${A}ListFailovers`, rest: "GET /v1/failovers", access: "viewer", mutating: false },
  { rpc: `${H}ListVersions`, rest: "GET /v1/versions", access: "viewer", mutating: false },
  { rpc: `${R}ListOperations`, rest: "GET /v1/operations", access: "viewer", mutating: false },
  { rpc: null, rest: "GET /v1/digests", access: "viewer", mutating: false },
  { rpc: null, rest: "GET /v1/descriptor", access: "viewer", mutating: false },
  { rpc: "grpc.reflection.v1.ServerReflection/ServerReflectionInfo", rest: null, access: "viewer", mutating: false },
  { rpc: "grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo", rest: null, access: "viewer", mutating: false },
  // operator: the audit log, and replication operations on the servers
  { rpc: `${U}ListAuditRecords`, rest: "GET /v1/audit", access: "operator", mutating: false },
  { rpc: `${R}Switchover`, rest: `POST ${C}:switchover`, access: "operator", mutating: true },
  { rpc: `${R}RegisterBackend`, rest: `POST ${C}/backends`, access: "operator", mutating: true },
  { rpc: `${R}UnregisterBackend`, rest: `DELETE ${C}/backends/{backend}`, access: "operator", mutating: true },
  { rpc: `${R}AttachReplica`, rest: `POST ${C}/backends/{backend}:attach`, access: "operator", mutating: true },
  { rpc: `${R}DetachReplica`, rest: `POST ${C}/backends/{backend}:detach`, access: "operator", mutating: true },
  { rpc: `${R}PauseBackend`, rest: `POST ${C}/backends/{backend}:pause`, access: "operator", mutating: true },
  { rpc: `${R}ResumeBackend`, rest: `POST ${C}/backends/{backend}:resume`, access: "operator", mutating: true },
  { rpc: `${R}RejoinBackend`, rest: `POST ${C}/backends/{backend}:rejoin`, access: "operator", mutating: true },
  // admin: the policy itself
  { rpc: `${A}ApplyPolicy`, rest: "POST /v1/policy:apply", access: "admin", mutating: true },
  { rpc: `${H}RollbackPolicy`, rest: "POST /v1/policy:rollback", access: "admin", mutating: true },
];

/** What an unlisted RPC or non-GET REST route gets. */
const UNLISTED: AccessRule = { rpc: null, rest: null, access: "admin", mutating: true };
const UNLISTED_GET: AccessRule = { rpc: null, rest: null, access: "viewer", mutating: false };

const BY_RPC = new Map(ACCESS_RULES.filter((r) => r.rpc !== null).map((r) => [r.rpc!, r]));

interface RestPattern {
  readonly method: string;
  readonly re: RegExp;
  readonly rule: AccessRule;
}
const REST_PATTERNS: readonly RestPattern[] = ACCESS_RULES.filter((r) => r.rest !== null).map((rule) => {
  const [method, path] = rule.rest!.split(" ") as [string, string];
  const re = new RegExp("^" + path.split(/\{[a-z]+\}/).map((s) => s.replace(/[.*+?^$()|[\]\\]/g, "\\$&")).join("[^/]+") + "$");
  return { method, re, rule };
});

/** The rule of an RPC by its gRPC path ("/pkg.Service/Method" or "pkg.Service/Method"). */
export function accessOfRpc(rpc: string): AccessRule {
  return BY_RPC.get(rpc.replace(/^\//, "")) ?? UNLISTED;
}

/** The rule of a REST request (HEAD as GET); unlisted GETs need viewer, anything else unlisted admin. */
export function accessOfRest(method: string, path: string): AccessRule {
  const m = method === "HEAD" ? "GET" : method;
  for (const p of REST_PATTERNS) if (p.method === m && p.re.test(path)) return p.rule;
  return m === "GET" ? UNLISTED_GET : UNLISTED;
}

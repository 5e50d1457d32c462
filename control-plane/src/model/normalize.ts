import { createHash } from "node:crypto";
import { clone, create, toBinary } from "@bufbuild/protobuf";
import { BackendCredentialsSchema, PolicySchema, type Policy } from "@mysqlgw/proto";

/** Bind address used when a listener leaves bind_address empty. */
export const DEFAULT_BIND_ADDRESS = "0.0.0.0";
/** Weight used when a backend leaves weight at 0. */
export const DEFAULT_BACKEND_WEIGHT = 1;

const byName = (a: { name: string }, b: { name: string }): number => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);

/**
 * The canonical form of a policy, which is what is stored and served:
 *
 * - defaults are written out: backend weight 0 → 1, listener bind_address "" →
 *   "0.0.0.0", a user's missing backend_credentials / empty backend user → the
 *   user's own name (as the proto documents);
 * - clusters, listeners, users, and the backends of each cluster are sorted by
 *   name. None of these lists carries meaning in its order (names are unique
 *   keys; backend roles are discovered, not positional), so reordering a file
 *   is a no-op and gives the same digest.
 *
 * Returns a new message; the argument is not modified. Expects a policy that
 * passed validatePolicy (names unique), but never throws on one that did not.
 */
export function normalizePolicy(policy: Policy): Policy {
  const p = clone(PolicySchema, policy);
  for (const c of p.clusters) {
    for (const b of c.backends) {
      if (b.weight === 0) b.weight = DEFAULT_BACKEND_WEIGHT;
    }
    c.backends.sort(byName);
  }
  for (const l of p.listeners) {
    if (l.bindAddress === "") l.bindAddress = DEFAULT_BIND_ADDRESS;
  }
  for (const u of p.users) {
    if (u.backendCredentials === undefined) u.backendCredentials = create(BackendCredentialsSchema);
    if (u.backendCredentials.user === "") u.backendCredentials.user = u.name;
  }
  p.clusters.sort(byName);
  p.listeners.sort(byName);
  p.users.sort(byName);
  return p;
}

/**
 * Hex SHA-256 of the binary encoding of a policy that is already normalised.
 * protobuf-es writes fields in field-number order and this schema has no maps,
 * so the encoding of equal messages is byte-identical.
 */
export function policyDigest(normalized: Policy): string {
  return createHash("sha256").update(toBinary(PolicySchema, normalized)).digest("hex");
}

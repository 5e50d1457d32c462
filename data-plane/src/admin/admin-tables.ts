/**
 * The admin port's virtual tables, built from the workers' figures (gathered
 * over IPC at each query) and the supervisor's own state (config served).
 */
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { ListenerRole } from "@mysqlgw/proto";
import { digestP99, mergeDigestStats } from "../observe/digest-table";
import type { WorkerFigures } from "../observe/worker-observation";
import type { Serving } from "../supervisor/supervisor";
import type { Row, VirtualTable } from "./admin-sql";

export interface AdminSources {
  /** Every worker's figures (those that answered in time). */
  figures(): Promise<WorkerFigures[]>;
  /** What the supervisor serves; null before the first config. */
  serving(): Serving | null;
  /** This data plane's registry id. */
  id: string;
  workers: number;
}

const iso = (ms: number): string | null => (ms > 0 ? new Date(ms).toISOString() : null);
const r3 = (x: number): number => Math.round(x * 1000) / 1000;

export const DIGEST_COLUMNS = ["digest", "user", "schema", "digest_text", "count", "errors", "rows", "total_ms", "avg_ms", "min_ms", "max_ms", "p99_ms", "first_seen", "last_seen"] as const;

/** The tables over `sources`; each query reads the figures once per table it touches. */
export function adminTables(sources: AdminSources): Map<string, VirtualTable> {
  const t = new Map<string, VirtualTable>();
  t.set("digests", {
    columns: DIGEST_COLUMNS,
    async rows() {
      const merged = mergeDigestStats((await sources.figures()).map((f) => f.digests));
      return merged.map(
        (d): Row => ({
          digest: d.hash,
          user: d.user,
          schema: d.schema,
          digest_text: d.text,
          count: d.count,
          errors: d.errors,
          rows: d.rows,
          total_ms: r3(d.totalMs),
          avg_ms: d.count === 0 ? 0 : r3(d.totalMs / d.count),
          min_ms: r3(d.minMs),
          max_ms: r3(d.maxMs),
          p99_ms: r3(digestP99(d)),
          first_seen: iso(d.firstSeen),
          last_seen: iso(d.lastSeen),
        }),
      );
    },
  });
  t.set("connections", {
    columns: ["worker", "id", "user", "client", "listener", "tls", "state", "opened_at", "statements", "errors", "rows", "last_statement_at"],
    async rows() {
      const out: Row[] = [];
      for (const f of await sources.figures()) {
        for (const c of f.connections) {
          out.push({
            worker: f.worker,
            id: c.id,
            user: c.user,
            client: c.client,
            listener: c.listener,
            tls: c.tls,
            state: c.state,
            opened_at: iso(c.openedAt),
            statements: c.statements,
            errors: c.errors,
            rows: c.rows,
            last_statement_at: iso(c.lastStatementAt),
          });
        }
      }
      return out;
    },
  });
  t.set("backends", {
    columns: ["worker", "cluster", "backend", "role", "role_source", "monitor_state", "up", "lag_ms", "lagging", "outstanding", "latency_ewma_us", "ejected", "connect_failures"],
    async rows() {
      const out: Row[] = [];
      const now = Date.now();
      for (const f of await sources.figures()) {
        for (const c of f.backends) {
          for (const b of c.backends) {
            if (!b.inConfig) continue;
            out.push({
              worker: f.worker,
              cluster: c.cluster,
              backend: b.name,
              role: b.role,
              role_source: b.roleSource,
              monitor_state: b.monitorState,
              up: b.up,
              lag_ms: b.lagMs,
              lagging: b.lagging,
              outstanding: b.outstanding,
              latency_ewma_us: b.latencyEwmaUs === null ? null : Math.round(b.latencyEwmaUs),
              ejected: b.ejectedUntil > now,
              connect_failures: b.consecutiveConnectFailures,
            });
          }
        }
      }
      return out;
    },
  });
  t.set("config", {
    columns: ["data_plane", "version", "source", "applied_at", "applied_by", "digest", "workers", "listening"],
    rows() {
      const s = sources.serving();
      if (s === null) return [{ data_plane: sources.id, version: null, source: null, applied_at: null, applied_by: null, digest: null, workers: sources.workers, listening: null }];
      const c = s.doc.config;
      return [
        {
          data_plane: sources.id,
          version: s.doc.version.toString(),
          source: s.source,
          applied_at: c.appliedAt === undefined ? null : timestampDate(c.appliedAt).toISOString(),
          applied_by: c.appliedBy,
          digest: c.digest,
          workers: sources.workers,
          listening: s.listening.join(","),
        },
      ];
    },
  });
  t.set("listeners", {
    columns: ["name", "bind_address", "port", "cluster", "role", "multiplexing", "max_connections", "listening"],
    rows() {
      const s = sources.serving();
      if (s === null) return [];
      const listening = new Set(s.listening);
      return (s.doc.config.policy?.listeners ?? []).map(
        (l): Row => ({
          name: l.name,
          bind_address: l.bindAddress,
          port: l.port,
          cluster: l.cluster,
          role: ListenerRole[l.role] ?? String(l.role),
          multiplexing: l.multiplexing ?? null,
          max_connections: l.maxConnections,
          listening: listening.has(l.name),
        }),
      );
    },
  });
  return t;
}

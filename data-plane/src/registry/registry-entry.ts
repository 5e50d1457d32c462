import * as fs from "node:fs";
import * as path from "node:path";
import { create, toJsonString } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { DataPlaneSchema, type DataPlane } from "@mysqlgw/proto";

export type ConfigSource = "etcd" | "disk" | "";

/**
 * What this data plane tells the registry about itself: the DataPlane message
 * stored (as proto3 JSON) at `<prefix>/v1/dataplanes/<id>` under a lease.
 * Owned by the supervisor; not safe to share across processes.
 */
export interface RegistryEntry {
  /** Records the config all workers now serve and bumps updated_at. */
  setServing(version: bigint, listeners: readonly string[], source: ConfigSource): void;
  /** The current entry as proto3 JSON, the registry value. */
  toJson(): string;
  snapshot(): DataPlane;
}

export interface RegistryEntryOptions {
  id: string;
  hostname: string;
  pid: number;
  workers: number;
  buildVersion?: string;
  /** Injected clock for tests. */
  now?: () => Date;
}

export function createRegistryEntry(options: RegistryEntryOptions): RegistryEntry {
  const now = options.now ?? (() => new Date());
  const started = now();
  const msg = create(DataPlaneSchema, {
    id: options.id,
    hostname: options.hostname,
    pid: options.pid,
    workers: options.workers,
    configVersion: 0n,
    listeners: [],
    startedAt: timestampFromDate(started),
    updatedAt: timestampFromDate(started),
    configSource: "",
    buildVersion: options.buildVersion ?? readBuildVersion(),
  });
  return {
    setServing(version, listeners, source) {
      msg.configVersion = version;
      msg.listeners = [...listeners];
      msg.configSource = source;
      msg.updatedAt = timestampFromDate(now());
    },
    toJson: () => toJsonString(DataPlaneSchema, msg),
    snapshot: () => msg,
  };
}

let cachedBuildVersion: string | null = null;

/** The data-plane package version ("0.1.0"), read from its package.json next to src/ or dist/. */
export function readBuildVersion(): string {
  if (cachedBuildVersion !== null) return cachedBuildVersion;
  let v = "unknown";
  for (const rel of [["..", "..", "package.json"], ["..", "package.json"]]) {
    try {
      const pkg = JSON.parse(fs.readFileSync(path.join(__dirname, ...rel), "utf8")) as { name?: string; version?: string };
      if (pkg.name === "@mysqlgw/data-plane" && typeof pkg.version === "string") {
        v = pkg.version;
        break;
      }
    } catch {
      // try the next location
    }
  }
  cachedBuildVersion = v;
  return v;
}

import { fromJsonString, toJsonString } from "@bufbuild/protobuf";
import { ConfigVersionSchema, type ConfigVersion } from "@mysqlgw/proto";

/**
 * A config version as it travels inside the data plane: the parsed message and
 * the exact proto3 JSON text it came from (what etcd holds, what goes over IPC
 * and to disk), so it is parsed once per process and never re-serialized.
 */
export interface ConfigDoc {
  readonly config: ConfigVersion;
  readonly json: string;
  readonly version: bigint;
}

export type DecodeResult = { ok: true; doc: ConfigDoc } | { ok: false; reason: string };

/**
 * Minimal validation of a ConfigVersion value: it parses as proto3 JSON of
 * ConfigVersion and carries a version ≥ 1. Deeper checks belong to the control
 * plane (which validated it before writing) and to the listener manager.
 */
export function decodeConfig(json: string): DecodeResult {
  let config: ConfigVersion;
  try {
    config = fromJsonString(ConfigVersionSchema, json, { ignoreUnknownFields: true });
  } catch (err) {
    return { ok: false, reason: `not a ConfigVersion in proto3 JSON: ${(err as Error).message}` };
  }
  if (config.version < 1n) return { ok: false, reason: "version is 0 or missing" };
  return { ok: true, doc: { config, json, version: config.version } };
}

/** Wraps a message built in code (tests, tools) as a ConfigDoc. */
export function encodeConfig(config: ConfigVersion): ConfigDoc {
  return { config, json: toJsonString(ConfigVersionSchema, config), version: config.version };
}

/** Names of the listeners a config declares, in policy order. */
export function listenerNames(config: ConfigVersion): string[] {
  return (config.policy?.listeners ?? []).map((l) => l.name);
}

// @mysqlgw/cli: the `mysqlgw` command (dist/main.js). Exported for tests and
// for tools that want to load policy files the same way.
export { run, buildProgram, DEFAULT_API } from "./program";
export type { ProgramIo } from "./program";
export { loadPolicy, locateViolations, createPolicyBuilder } from "./policy-files";
export type { LoadedPolicy, ResourceSource, Kind } from "./policy-files";
export { formatChanges, policyDocuments, toYamlDocuments } from "./output";
export { mysqlNativePasswordHash } from "./password-hash";
export { createAdminClient } from "./client";
export type { AdminClient } from "./client";
export { CliError } from "./cli-error";

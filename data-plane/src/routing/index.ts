/**
 * Statement routing inputs: classification, digests and hints from a fast
 * lexer over COM_QUERY bytes (issue 4). Not yet used by the session code.
 */
export { classify } from "./classify";
export { digest, digestHash, DEFAULT_DIGEST_MAX_TEXT_BYTES } from "./digest";
export type { Digest, DigestOptions } from "./digest";
export { StatementKind, StatementFlags, RouteHint, createClassification } from "./statement-kind";
export type { Classification } from "./statement-kind";
// The routing decision and query rules (also the entry point `mysqlgw explain` imports:
// @mysqlgw/data-plane/dist/routing, which loads neither sockets nor etcd). Const enums are
// erased in dist: other packages use the helper functions, not the enum values.
export { decideRoute, createSessionRouteState, listenerModeOf, listenerModeName, routeTargetName, RouteTarget, ListenerMode } from "./decide";
export type { RouteDecision, SessionRouteState } from "./decide";
export { compileRules, createRuleContext, DEFAULT_DENY_ERRNO, DEFAULT_DENY_SQLSTATE, DEFAULT_CACHE_MAX_RESULT_BYTES, DEFAULT_CACHE_MAX_BYTES } from "./rules";
export type { CompiledRules, RuleAction, RuleContext, RuleContextInit } from "./rules";
export { STATEMENT_KIND_NAMES, statementKindName, statementKindOf, statementFlagNames } from "./names";
export { createTableExtractor, parseTables, DEFAULT_TABLE_CACHE_ENTRIES } from "./tables";
export type { TableExtractor, TableExtractorOptions, TableExtractorStats, TableRef } from "./tables";

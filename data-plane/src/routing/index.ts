/**
 * Statement routing inputs: classification, digests and hints from a fast
 * lexer over COM_QUERY bytes (issue 4). Not yet used by the session code.
 */
export { classify } from "./classify";
export { digest, digestHash, DEFAULT_DIGEST_MAX_TEXT_BYTES } from "./digest";
export type { Digest, DigestOptions } from "./digest";
export { StatementKind, StatementFlags, RouteHint, createClassification } from "./statement-kind";
export type { Classification } from "./statement-kind";

import { ConnectError } from "@connectrpc/connect";
import { codeToString } from "@connectrpc/connect/protocol-connect";
import { isMgwError } from "../errors";
import { toConnectError } from "./connect-errors";

/** Where a handler guard reports: the API request metric and the log of unexpected errors. */
export interface HandlerGuardOptions {
  metrics?: { apiRequest(method: string, code: string, seconds: number): void } | undefined;
  logger?: { error(obj: object, msg: string): void } | undefined;
}

/**
 * Wraps the handlers of a service: each call is counted with its outcome and
 * duration, every error leaves as a ConnectError (MgwErrors mapped once by
 * toConnectError), and an error that is neither an MgwError nor a ConnectError
 * — a bug — is logged.
 */
export function handlerGuard(options: HandlerGuardOptions): <A extends unknown[], R>(method: string, fn: (...args: A) => Promise<R>) => (...args: A) => Promise<R> {
  const { metrics, logger: log } = options;
  return <A extends unknown[], R>(method: string, fn: (...args: A) => Promise<R>) =>
    async (...args: A): Promise<R> => {
      const started = performance.now();
      try {
        const r = await fn(...args);
        metrics?.apiRequest(method, "ok", (performance.now() - started) / 1000);
        return r;
      } catch (err) {
        const ce = toConnectError(err);
        if (!isMgwError(err) && !(err instanceof ConnectError)) log?.error({ err, method }, "unexpected error in handler");
        metrics?.apiRequest(method, codeToString(ce.code), (performance.now() - started) / 1000);
        throw ce;
      }
    };
}

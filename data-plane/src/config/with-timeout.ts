import { SupervisorError, type SupervisorErrorCode } from "../supervisor/errors";

/**
 * Settles with `p`, or rejects with SupervisorError(code) after `ms`. The etcd3 client
 * retries unreachable endpoints on its own schedule, so every call we make is
 * bounded here as well as by a gRPC deadline. The timer never keeps the
 * process alive and is cleared as soon as `p` settles.
 */
export function withTimeout<T>(
  p: Promise<T>,
  ms: number,
  what: string,
  code: SupervisorErrorCode = "MGW_ERR_ETCD_TIMEOUT",
): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new SupervisorError(code, `${what} did not complete within ${ms} ms`)), ms);
    timer.unref();
  });
  // A late rejection of `p` after the timeout must not become an unhandled rejection.
  p.catch(() => undefined);
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

/** Resolves after `ms` or as soon as `signal` aborts, whichever is first. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const onAbort = () => {
      clearTimeout(t);
      resolve();
    };
    const t = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

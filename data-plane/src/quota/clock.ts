/**
 * Time as the quota module sees it: a monotonic clock in milliseconds and
 * one-shot timers. Injected so that unit tests drive time by hand
 * (fakeClock in the tests) instead of waiting.
 */
export interface QuotaClock {
  now(): number;
  setTimer(fn: () => void, ms: number): unknown;
  clearTimer(handle: unknown): void;
}

/** performance.now() and unref'd Node timers (a waiting statement keeps its session, not the process, alive). */
export const realClock: QuotaClock = {
  now: () => performance.now(),
  setTimer(fn, ms) {
    const t = setTimeout(fn, ms);
    t.unref();
    return t;
  },
  clearTimer(handle) {
    clearTimeout(handle as NodeJS.Timeout);
  },
};

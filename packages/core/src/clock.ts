/**
 * Where time comes from. `Batcher` takes time as a parameter; `batched()` and
 * `Worker` read it and arm timers through a `Clock`, so tests can move a
 * `SimulatedClock` instead of sleeping.
 *
 * Times are absolute epoch milliseconds.
 */
export interface Clock {
  /** Current time, epoch ms. */
  now(): number;
  /** Call `fn` once at absolute time `at` (or as soon as possible if `at` is past). */
  setTimer(at: number, fn: () => void): unknown;
  /** Cancel a timer returned by `setTimer`; unknown or fired handles are ignored. */
  clearTimer(handle: unknown): void;
}

// setTimeout fires at once for delays above 2^31 - 1 ms; cap it and let the
// caller re-arm, since every driver treats an early wake as "poll again".
const MAX_TIMEOUT = 2 ** 31 - 1;

/** The real clock: `Date.now()` and `setTimeout`. */
export const systemClock: Clock = {
  now: Date.now,
  setTimer(at, fn) {
    return setTimeout(fn, Math.min(Math.max(0, at - Date.now()), MAX_TIMEOUT));
  },
  clearTimer(handle) {
    clearTimeout(handle as ReturnType<typeof setTimeout>);
  },
};

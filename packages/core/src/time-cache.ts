import type { Clock } from "./clock.js";

/**
 * One read of a clock serving a burst of calls: on this machine reading the system clock
 * costs more than the rest of a `batched()` call. A read serves up to `reads` calls, and
 * only within the synchronous stretch that made it: the cache empties on the next
 * microtask. So a time it returns is never older than the current stretch of code, and at
 * most `reads` calls share one. Not for lower bounds (a call's `delay`): read the clock for those.
 */
export class TimeCache {
  private time = 0;
  /** Calls the cached time may still serve. */
  private left = 0;
  private expiring = false;
  private readonly expire = () => {
    this.expiring = false;
    this.left = 0;
  };

  constructor(
    private readonly clock: Clock,
    private readonly reads: number,
  ) {}

  now(): number {
    if (this.left > 0) {
      this.left--;
      return this.time;
    }
    const now = this.clock.now();
    this.time = now;
    this.left = this.reads - 1;
    if (!this.expiring) {
      this.expiring = true;
      queueMicrotask(this.expire);
    }
    return now;
  }
}

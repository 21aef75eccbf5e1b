import { DELAYED, ELIGIBLE, type Entry } from "./entry.js";

/**
 * Buffered entries by dedupe key. An entry is not deleted when it leaves the buffer: a stale
 * value (an entry no longer buffered, or buffered under another key) counts as absent, and
 * the stale keys are swept out together once the map holds `sweepAt` keys (then twice the
 * live ones, at least `threshold`), so keys are not deleted one by one.
 */
export class DedupeIndex<T> {
  private byKey = new Map<string, Entry<T>>();
  private sweepAt: number;

  constructor(private readonly threshold: number) {
    this.sweepAt = threshold;
  }

  /** The buffered entry under `key`, if any. */
  buffered(key: string): Entry<T> | undefined {
    const entry = this.byKey.get(key);
    return entry !== undefined && entry._key === key && (entry._state === ELIGIBLE || entry._state === DELAYED) ? entry : undefined;
  }

  /** `entry`, buffered now, is the one under `key`. */
  set(key: string, entry: Entry<T>): void {
    let byKey = this.byKey;
    if (byKey.size >= this.sweepAt && !byKey.has(key)) {
      const live = new Map<string, Entry<T>>();
      for (const [k, e] of byKey) if (this.buffered(k) === e) live.set(k, e);
      this.byKey = byKey = live;
      this.sweepAt = Math.max(this.threshold, live.size * 2);
    }
    byKey.set(key, entry);
  }

  /** Nothing is buffered any more. */
  clear(): void {
    this.byKey = new Map();
  }
}

import type { Attributes, BatchObservableResult, ObservableCounter } from "@opentelemetry/api";

/**
 * A monotonic count per attribute set, kept in plain numbers and handed to an observable counter
 * when the SDK collects. A counter's `add` hashes its attributes on every call; items are counted
 * far more often than metrics are read, so adding here costs a map lookup and an addition.
 */
export class Tally {
  private readonly entries = new Map<string, { readonly extra: Attributes | undefined; value: number }>();

  constructor(readonly counter: ObservableCounter) {}

  /** Adds `n` to the count of `key`; `extra` (the attributes `key` stands for) is read only the first time. */
  add(n: number, key = "", extra?: Attributes): void {
    const entry = this.entries.get(key);
    if (entry === undefined) this.entries.set(key, { extra, value: n });
    else entry.value += n;
  }

  /** Reports every count with `base` and its own attributes; `plus` more under `base` alone (counts kept elsewhere). */
  observe(result: BatchObservableResult, base: Attributes, plus = 0): void {
    if (plus > 0 && !this.entries.has("")) result.observe(this.counter, plus, base);
    for (const [key, { extra, value }] of this.entries) {
      result.observe(this.counter, key === "" ? value + plus : value, extra === undefined ? base : { ...base, ...extra });
    }
  }
}

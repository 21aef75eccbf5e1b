import type { Batch, Item } from "./batcher-api.js";
import type { Entry } from "./entry.js";
import { SettledError } from "./errors.js";
import type { FlushReason } from "./options.js";

/** An in-flight batch. */
export class Flight<T> implements Batch<T> {
  /** Unsettled entries. */
  _remaining: number;
  /** Index of the next entry expected to settle, for in-order settles by id. */
  _cursor = 0;
  _byId: Map<string, Entry<T>> | undefined = undefined;
  /** Neighbours in the Batcher's list of in-flight batches, oldest first. */
  _prev: Flight<T> | undefined = undefined;
  _next: Flight<T> | undefined = undefined;
  /** The driver's own record of this batch (its handler context). */
  _driver: unknown = undefined;
  readonly items: Item<T>[];

  constructor(
    readonly id: string,
    readonly reason: FlushReason,
    readonly group: string | undefined,
    /** The batch as taken: never handed out, so a handler reordering `items` cannot confuse settling. */
    readonly _entries: Entry<T>[],
    readonly _no: number,
  ) {
    this._remaining = _entries.length;
    this.items = _entries.slice();
  }
}

/** The in-flight batches, oldest first, as a list linked through their `_prev` / `_next`. */
export class Flights<T> {
  oldest: Flight<T> | undefined = undefined;
  private newest: Flight<T> | undefined = undefined;
  count = 0;
  /** The batch the last `find` found: drivers settle one batch's items together. */
  private lastFound: Flight<T> | undefined = undefined;

  /** A batch starts. */
  add(flight: Flight<T>): void {
    if (this.newest === undefined) this.oldest = flight;
    else {
      this.newest._next = flight;
      flight._prev = this.newest;
    }
    this.newest = flight;
    this.count++;
  }

  /** A batch completed: every item has its outcome. */
  land(flight: Flight<T>): void {
    const { _prev: prev, _next: next } = flight;
    if (prev === undefined) this.oldest = next;
    else prev._next = next;
    if (next === undefined) this.newest = prev;
    else next._prev = prev;
    flight._prev = flight._next = undefined;
    this.count--;
    if (this.lastFound === flight) this.lastFound = undefined;
  }

  /** The batches, oldest first. */
  all(): Flight<T>[] {
    const out: Flight<T>[] = [];
    for (let flight = this.oldest; flight !== undefined; flight = flight._next) out.push(flight);
    return out;
  }

  /** The in-flight entry `itemId` of batch `batchId`; a `SettledError` when there is none. */
  find(batchId: string, itemId: string): Entry<T> {
    let flight = this.lastFound;
    if (flight === undefined || flight.id !== batchId) {
      flight = this.newest;
      while (flight !== undefined && flight.id !== batchId) flight = flight._prev;
      this.lastFound = flight;
    }
    if (flight === undefined) throw new SettledError(itemId, `[tranche/core] batch ${JSON.stringify(batchId)} is not in flight`);
    const entries = flight._entries;
    // Drivers usually settle in order: check the cursor before building an index.
    let cursor = flight._cursor;
    while (cursor < entries.length && (entries[cursor] as Entry<T>)._flight !== flight) cursor++;
    flight._cursor = cursor;
    const next = entries[cursor];
    if (next !== undefined && next.id === itemId) return next;
    if (flight._byId === undefined) {
      flight._byId = new Map();
      for (const entry of entries) if (!flight._byId.has(entry.id)) flight._byId.set(entry.id, entry);
    }
    let entry = flight._byId.get(itemId);
    if (entry !== undefined && entry._flight !== flight) {
      // Duplicate ids in one batch: settle the first one still in flight.
      entry = entries.find((e) => e.id === itemId && e._flight === flight) ?? entry;
    }
    if (entry === undefined) throw new SettledError(itemId, `[tranche/core] item ${JSON.stringify(itemId)} is not in batch ${JSON.stringify(batchId)}`);
    // Settled in this batch already, though it may be in flight again in a later one after a retry.
    if (entry._flight !== flight) throw new SettledError(itemId);
    return entry;
  }
}

import type { Batch, Item } from "./batcher-api.js";
import type { Entry } from "./entry.js";
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

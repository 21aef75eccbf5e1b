import type { Item } from "./batcher-api.js";
import type { Flight } from "./flight.js";
import type { Group } from "./group.js";

// Where an entry is: buffered and eligible, buffered and delayed, in an in-flight batch, or
// none of these (settled, evicted, or not added yet).
export const ELIGIBLE = 0;
export const DELAYED = 1;
export const IN_FLIGHT = 2;
export const DONE = 3;

/**
 * The Batcher's record of an item. `batched()` extends it into the request its
 * handler receives, so an item costs one object from call to outcome.
 */
export class Entry<T> implements Item<T> {
  // Fields assigned in the constructor, not class fields: V8 (Node 20) does not inline a
  // base class constructor that initialises class fields into its subclass's, so every
  // `new` of a subclass (`batched()`'s request) would go through a generic construct stub.
  declare _id: string | undefined;
  declare payload: T;
  declare attempt: number;
  /**
   * `notBefore` as ms since the batcher's origin (its first `now`). Epoch ms do not fit
   * a small integer, and a field holding them costs a heap number per item.
   */
  declare _nb: number;
  /** `notBefore − enqueuedAt`, in ms. */
  declare _wait: number;
  /** Tie-break of equal `notBefore`: add order. */
  declare _order: number;
  declare _state: number;
  declare _size: number;
  declare _group: Group<T> | undefined;
  declare _key: string | undefined;
  declare _flight: Flight<T> | undefined;

  constructor(payload: T, id: string | undefined, attempt: number) {
    this._id = id;
    this.payload = payload;
    this.attempt = attempt;
    this._nb = 0;
    this._wait = 0;
    this._order = 0;
    this._state = DONE;
    this._size = 0;
    this._group = undefined;
    this._key = undefined;
    this._flight = undefined;
  }

  get id(): string {
    // Built only when read: most in-process callers never do. `_order` values are
    // never reused within a batcher, so the id is unique; once built it stays.
    return (this._id ??= `${this._order}`);
  }

  get notBefore(): number {
    return this._nb + (this._group === undefined ? 0 : this._group.origin.at);
  }

  get enqueuedAt(): number {
    return this.notBefore - this._wait;
  }
}

/** Eligibility order: earlier `notBefore` first, then add order. */
export const earlier = <T>(a: Entry<T>, b: Entry<T>): boolean =>
  a._nb < b._nb || (a._nb === b._nb && a._order < b._order);

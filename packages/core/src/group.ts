import type { Entry } from "./entry.js";

/** A group's eligible items in eligibility order, plus its trigger state. */
export class Group<T> {
  /** FIFO of eligible entries from `head` on. */
  queue: Entry<T>[] = [];
  head = 0;
  /** Summed `sizeOf` of the eligible entries. */
  bytes = 0;
  /** Entries ever pushed; with `forcedTo` it tells how many a `flush()` still owes. */
  pushed = 0;
  forcedTo = 0;
  /** Eligible + delayed entries of this group. */
  held = 0;
  heapIndex = -1;
  /** A count, bytes or flush trigger holds. */
  inReady = false;
  /** Listed in `Batcher.readyList` (possibly stale until the next scan). */
  listed = false;

  constructor(
    readonly key: string | undefined,
    /** The batcher's time origin, shared by its groups so an entry can tell its absolute times. */
    readonly origin: { at: number },
  ) {}

  get length(): number {
    return this.queue.length - this.head;
  }

  first(): Entry<T> {
    return this.queue[this.head] as Entry<T>;
  }
}

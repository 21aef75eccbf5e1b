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
  /** Listed as ready in `GroupOrder` (possibly stale until the next scan). */
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

/**
 * The groups of a `groupBy`, by key. A group left empty stays until a sweep drops every empty
 * one together, once `sweepAt` keys are held (then twice the live ones, at least `threshold`):
 * keys are not deleted one by one (see the note on Maps in batcher.ts).
 */
export class GroupRegistry<T> {
  private groups = new Map<string, Group<T>>();
  private sweepAt: number;

  constructor(
    private readonly threshold: number,
    private readonly origin: { at: number },
  ) {
    this.sweepAt = threshold;
  }

  /** The group of `key`, made when there is none. */
  get(key: string): Group<T> {
    let group = this.groups.get(key);
    if (group === undefined) {
      if (this.groups.size >= this.sweepAt) this.sweep();
      group = new Group<T>(key, this.origin);
      this.groups.set(key, group);
    }
    return group;
  }

  /** The live group object for a returning entry (its old one may have been dropped when it emptied). */
  rejoin(group: Group<T>): Group<T> {
    if (group.key === undefined) return group;
    const live = this.groups.get(group.key);
    if (live !== undefined) return live;
    this.groups.set(group.key, group);
    return group;
  }

  /** Every group is empty. */
  clear(): void {
    this.groups = new Map();
  }

  /** Drops the empty groups in one go, into a fresh Map. */
  private sweep(): void {
    const live = new Map<string, Group<T>>();
    for (const [key, group] of this.groups) if (group.held > 0) live.set(key, group);
    this.groups = live;
    this.sweepAt = Math.max(this.threshold, live.size * 2);
  }
}

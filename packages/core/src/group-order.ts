import { earlier } from "./entry.js";
import type { Group } from "./group.js";
import { Heap } from "./heap.js";

/**
 * Which group flushes next (SPEC rule 4: oldest first among those with a trigger due). Every
 * group with eligible entries sits in a heap by its oldest one; a group whose count, bytes or
 * `flush()` trigger holds is also marked ready, so a poll need not scan the groups waiting for
 * their interval.
 */
export class GroupOrder<T> {
  /** Groups with eligible entries, by their oldest one. */
  private readonly heap = new Heap<Group<T>>(
    (a, b) => earlier(a.first(), b.first()),
    (group, index) => {
      group.heapIndex = index;
    },
  );
  // Not a Set: a list where a group that stopped being ready is dropped on the next scan (see
  // the note on Maps in batcher.ts).
  /** The ready groups, plus groups no longer ready (`inReady` false) until the next scan. */
  private readonly list: Group<T>[] = [];
  /** Groups marked ready. */
  private readyCount = 0;

  constructor(
    private readonly flushEvery: number,
    private readonly maxBatchBytes: number,
  ) {}

  /** The groups with eligible entries, in no particular order. */
  get groups(): readonly Group<T>[] {
    return this.heap.items;
  }

  /** The group whose oldest eligible entry is the oldest of all. */
  oldest(): Group<T> | undefined {
    return this.heap.peek();
  }

  get hasReady(): boolean {
    return this.readyCount > 0;
  }

  /** An entry was appended to the group's queue: it joins the heap if it was empty, and may turn ready. */
  appended(group: Group<T>): void {
    if (group.heapIndex < 0) this.heap.push(group);
    if (!group.inReady && (group.length >= this.flushEvery || group.bytes >= this.maxBatchBytes)) this.markReady(group);
  }

  /** An entry was inserted anywhere in the group's queue: it takes its place in the heap, and may turn ready. */
  inserted(group: Group<T>): void {
    if (group.heapIndex < 0) this.heap.push(group);
    else this.heap.update(group.heapIndex);
    if (this.triggered(group)) this.markReady(group);
  }

  /** Eligible entries left the group: it takes its new place (or leaves), and drops a trigger that no longer holds. */
  shrunk(group: Group<T>): void {
    if (group.length === 0) {
      this.heap.removeAt(group.heapIndex);
      group.heapIndex = -1;
      this.unready(group);
    } else {
      this.heap.update(group.heapIndex);
      if (group.inReady && !this.triggered(group)) this.unready(group);
    }
  }

  /** The group's bytes changed in place: its bytes trigger is checked again. */
  resized(group: Group<T>): void {
    if (this.triggered(group)) this.markReady(group);
    else this.unready(group);
  }

  /** `flush()`: every group owes its eligible entries now. */
  forceAll(): void {
    for (const group of this.heap.items) {
      group.forcedTo = group.pushed;
      this.markReady(group);
    }
  }

  /** The group that flushes next at `now`, if any: every group once `closed`, else a ready one or one whose interval is over. */
  next(now: number, flushInterval: number, closed: boolean): Group<T> | undefined {
    const top = this.heap.peek();
    if (top === undefined) return undefined;
    if (closed || top.inReady || top.first()._nb + flushInterval <= now) return top;
    let best: Group<T> | undefined;
    for (const group of this.ready()) if (best === undefined || earlier(group.first(), best.first())) best = group;
    return best;
  }

  /** Whether some `flush()` still owes batches. */
  flushPending(): boolean {
    for (const group of this.ready()) if (group.pushed - group.length < group.forcedTo) return true;
    return false;
  }

  /** No group holds eligible entries any more (the caller emptied them). */
  clear(): void {
    this.heap.clear();
    for (const group of this.list) group.listed = false;
    this.list.length = 0;
    this.readyCount = 0;
  }

  /** Whether a count, bytes or flush trigger holds for the group. */
  private triggered(group: Group<T>): boolean {
    return group.length >= this.flushEvery || group.bytes >= this.maxBatchBytes || group.pushed - group.length < group.forcedTo;
  }

  /** Every caller's group has eligible entries (it is in the heap). */
  private markReady(group: Group<T>): void {
    if (!group.inReady) {
      group.inReady = true;
      this.readyCount++;
      if (!group.listed) {
        group.listed = true;
        this.list.push(group);
      }
    }
  }

  private unready(group: Group<T>): void {
    if (group.inReady) {
      group.inReady = false;
      this.readyCount--;
    }
  }

  /** The ready groups, dropping stale list entries on the way. */
  private ready(): Group<T>[] {
    const list = this.list;
    let write = 0;
    for (let read = 0; read < list.length; read++) {
      const group = list[read] as Group<T>;
      if (group.inReady) list[write++] = group;
      else group.listed = false;
    }
    list.length = write;
    return list;
  }
}

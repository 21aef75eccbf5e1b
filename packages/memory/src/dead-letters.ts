import type { DeadLetter } from "@tranche/core";

/**
 * The dead letters of a `MemoryTransport`, oldest first, at most `max` of them: beyond it the
 * oldest is dropped, counted and handed to `onDrop`, never silently. One per item id: an item
 * dead-lettered again replaces its older letter.
 */
export class DeadLetterList<T> {
  private readonly letters = new Map<string, DeadLetter<T>>();
  /** Letters dropped to keep within `max`. */
  dropped = 0;

  constructor(
    private readonly max: number,
    private readonly onDrop: ((letter: DeadLetter<T>) => void) | undefined,
  ) {}

  get size(): number {
    return this.letters.size;
  }

  add(letter: DeadLetter<T>): void {
    this.letters.delete(letter.id);
    this.letters.set(letter.id, letter);
    while (this.letters.size > this.max) {
      const [id, oldest] = this.letters.entries().next().value as [string, DeadLetter<T>];
      this.letters.delete(id);
      this.dropped++;
      this.onDrop?.(oldest);
    }
  }

  /** Up to `limit` letters, oldest first, starting after the letter of id `after`. */
  page(limit: number, after: string | undefined): DeadLetter<T>[] {
    const out: DeadLetter<T>[] = [];
    let open = after === undefined;
    for (const letter of this.letters.values()) {
      if (out.length >= limit) break;
      if (open) out.push(letter);
      else if (letter.id === after) open = true;
    }
    return out;
  }

  /** Removes and returns the letters of `ids` (those there are), or all of them. */
  take(ids: readonly string[] | "all"): DeadLetter<T>[] {
    if (ids === "all") {
      const all = [...this.letters.values()];
      this.letters.clear();
      return all;
    }
    const out: DeadLetter<T>[] = [];
    for (const id of ids) {
      const letter = this.letters.get(id);
      if (letter === undefined) continue;
      this.letters.delete(id);
      out.push(letter);
    }
    return out;
  }

  clear(): void {
    this.letters.clear();
  }
}

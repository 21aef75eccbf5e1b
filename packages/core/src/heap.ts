/**
 * Binary min-heap over an array, ordered by `less`. `onMove` tells an element
 * its index whenever it moves, so it can be removed or re-sifted in O(log n).
 */
export class Heap<E> {
  readonly items: E[] = [];

  constructor(
    private readonly less: (a: E, b: E) => boolean,
    private readonly onMove?: (element: E, index: number) => void,
  ) {}

  get size(): number {
    return this.items.length;
  }

  peek(): E | undefined {
    return this.items[0];
  }

  push(element: E): void {
    this.items.push(element);
    this.up(this.items.length - 1);
  }

  pop(): E | undefined {
    const items = this.items;
    const top = items[0];
    const last = items.pop();
    if (items.length > 0 && last !== undefined) {
      items[0] = last;
      this.down(0);
    }
    return top;
  }

  /** Removes the element at `index` (as last reported by `onMove`). */
  removeAt(index: number): void {
    const items = this.items;
    const last = items.pop() as E;
    if (index === items.length) return;
    items[index] = last;
    this.update(index);
  }

  /** Restores order after the element at `index` changed its key. */
  update(index: number): void {
    if (!this.up(index)) this.down(index);
  }

  clear(): void {
    this.items.length = 0;
  }

  private up(index: number): boolean {
    const items = this.items;
    const element = items[index] as E;
    const start = index;
    while (index > 0) {
      const parentIndex = (index - 1) >> 1;
      const parent = items[parentIndex] as E;
      if (!this.less(element, parent)) break;
      items[index] = parent;
      this.onMove?.(parent, index);
      index = parentIndex;
    }
    items[index] = element;
    this.onMove?.(element, index);
    return index !== start;
  }

  private down(index: number): void {
    const items = this.items;
    const length = items.length;
    const element = items[index] as E;
    for (;;) {
      const left = 2 * index + 1;
      if (left >= length) break;
      const right = left + 1;
      let child = left;
      if (right < length && this.less(items[right] as E, items[left] as E)) child = right;
      const childElement = items[child] as E;
      if (!this.less(childElement, element)) break;
      items[index] = childElement;
      this.onMove?.(childElement, index);
      index = child;
    }
    items[index] = element;
    this.onMove?.(element, index);
  }
}

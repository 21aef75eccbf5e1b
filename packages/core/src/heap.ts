/**
 * Binary min-heap over an array, ordered by `less`: `peek` in O(1), `push` and `pop` in
 * O(log n). For drivers and adapters that keep timers, deadlines or queues in order.
 *
 * An element can also leave or move in O(log n) from anywhere in the heap: `onMove` tells it its
 * index whenever it moves (keep it on the element), and `removeAt(index)` and `update(index)`
 * take that index. A removed or popped element is not told; mark it out yourself.
 *
 * ```ts
 * interface Timer { at: number; index: number }
 * const timers = new Heap<Timer>((a, b) => a.at < b.at, (timer, index) => (timer.index = index));
 * timers.push(timer);
 * timer.at = later;
 * timers.update(timer.index);
 * ```
 */
export class Heap<E> {
  private readonly elements: E[] = [];
  /** The elements in heap order, the least first; read it, never write it. */
  readonly items: readonly E[] = this.elements;

  /**
   * @param less Whether `a` comes before `b`; elements equal by it come out in no fixed order.
   * @param onMove Told an element's new index each time it is placed.
   */
  constructor(
    private readonly less: (a: E, b: E) => boolean,
    private readonly onMove?: (element: E, index: number) => void,
  ) {}

  get size(): number {
    return this.elements.length;
  }

  /** The least element, left in the heap. */
  peek(): E | undefined {
    return this.elements[0];
  }

  /** Adds an element. */
  push(element: E): void {
    this.elements.push(element);
    this.up(this.elements.length - 1);
  }

  /** Takes out the least element. */
  pop(): E | undefined {
    const items = this.elements;
    const top = items[0];
    const last = items.pop() as E;
    if (items.length > 0) {
      items[0] = last;
      this.down(0);
    }
    return top;
  }

  /** Takes out the element at `index` (as last reported by `onMove`). */
  removeAt(index: number): void {
    const items = this.elements;
    const last = items.pop() as E;
    if (index === items.length) return;
    items[index] = last;
    this.update(index);
  }

  /** Restores order after the element at `index` changed its key. */
  update(index: number): void {
    if (!this.up(index)) this.down(index);
  }

  /** Removes every element. */
  clear(): void {
    this.elements.length = 0;
  }

  private up(index: number): boolean {
    const items = this.elements;
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
    const items = this.elements;
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

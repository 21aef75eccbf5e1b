/** What a keyed heap orders: by `key`, ties by `seq`. The heap keeps `heapIndex` current while it holds the node. */
export interface HeapNode {
  key: number;
  seq: number;
  heapIndex: number;
}

/**
 * A binary min-heap of nodes ordered by `key`, then `seq`, each told its index, so a node can
 * leave or move from anywhere in O(log n).
 *
 * Not core's general `Heap` (a `less` and an `onMove` callback): this one runs per message, and
 * the Batcher of a `Worker` in the same process drives core's `Heap` with other callbacks. Its
 * call sites then see two targets, V8 stops inlining them, and with them every sift of the
 * transport. Comparisons written out here keep the transport's heaps as fast next to a worker
 * as they are alone.
 */
export class KeyedHeap<N extends HeapNode> {
  private readonly nodes: N[] = [];

  get size(): number {
    return this.nodes.length;
  }

  /** The least node, left in the heap. */
  peek(): N | undefined {
    return this.nodes[0];
  }

  /** Takes out the least node; its `heapIndex` becomes −1. */
  pop(): N | undefined {
    const nodes = this.nodes;
    const top = nodes[0];
    if (top === undefined) return undefined;
    const last = nodes.pop() as N;
    if (last !== top) this.down(last, 0);
    top.heapIndex = -1;
    return top;
  }

  /** Files `node` under `key`: moves it when the heap holds it, adds it when not. */
  rekey(node: N, key: number): void {
    node.key = key;
    if (this.holds(node)) this.place(node, node.heapIndex);
    else this.up(node, this.nodes.push(node) - 1);
  }

  /** Takes `node` out; does nothing when the heap does not hold it. */
  remove(node: N): void {
    if (!this.holds(node)) return;
    const index = node.heapIndex;
    const last = this.nodes.pop() as N;
    node.heapIndex = -1;
    if (last !== node) this.place(last, index);
  }

  clear(): void {
    for (const node of this.nodes) node.heapIndex = -1;
    this.nodes.length = 0;
  }

  private holds(node: N): boolean {
    return node.heapIndex >= 0 && this.nodes[node.heapIndex] === node;
  }

  /** Puts `node` at `index` (a hole, or its own place) and sifts it to where it belongs. */
  private place(node: N, index: number): void {
    if (index > 0) {
      const parent = this.nodes[(index - 1) >> 1] as N;
      if (node.key < parent.key || (node.key === parent.key && node.seq < parent.seq)) {
        this.up(node, index);
        return;
      }
    }
    this.down(node, index);
  }

  private up(node: N, index: number): void {
    const nodes = this.nodes;
    const { key, seq } = node;
    while (index > 0) {
      const parentIndex = (index - 1) >> 1;
      const parent = nodes[parentIndex] as N;
      if (!(key < parent.key || (key === parent.key && seq < parent.seq))) break;
      nodes[index] = parent;
      parent.heapIndex = index;
      index = parentIndex;
    }
    nodes[index] = node;
    node.heapIndex = index;
  }

  private down(node: N, index: number): void {
    const nodes = this.nodes;
    const length = nodes.length;
    const { key, seq } = node;
    for (;;) {
      const left = 2 * index + 1;
      if (left >= length) break;
      let child = nodes[left] as N;
      let childIndex = left;
      const right = left + 1;
      if (right < length) {
        const other = nodes[right] as N;
        if (other.key < child.key || (other.key === child.key && other.seq < child.seq)) {
          child = other;
          childIndex = right;
        }
      }
      if (!(child.key < key || (child.key === key && child.seq < seq))) break;
      nodes[index] = child;
      child.heapIndex = index;
      index = childIndex;
    }
    nodes[index] = node;
    node.heapIndex = index;
  }
}

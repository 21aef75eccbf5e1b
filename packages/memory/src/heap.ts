/** What a `KeyedHeap` orders: by `key`, ties by `seq`. The heap owns `heapIndex` (-1 when out). */
export interface HeapNode {
  key: number;
  seq: number;
  heapIndex: number;
}

/**
 * Binary min-heap that tracks each node's index, so a node can be removed or re-keyed
 * in O(log n). A node is in at most one heap at a time (it has one `heapIndex`).
 */
export class KeyedHeap<N extends HeapNode> {
  private readonly nodes: N[] = [];

  get size(): number {
    return this.nodes.length;
  }

  peek(): N | undefined {
    return this.nodes[0];
  }

  push(node: N): void {
    node.heapIndex = this.nodes.length;
    this.nodes.push(node);
    this.up(node.heapIndex);
  }

  pop(): N | undefined {
    const top = this.nodes[0];
    if (top !== undefined) this.remove(top);
    return top;
  }

  remove(node: N): void {
    const index = node.heapIndex;
    if (index < 0 || this.nodes[index] !== node) return;
    const last = this.nodes.pop() as N;
    node.heapIndex = -1;
    if (last === node) return;
    this.nodes[index] = last;
    last.heapIndex = index;
    if (!this.up(index)) this.down(index);
  }

  /** Moves `node` to `key`, re-ordering it (pushes it when it is not in the heap). */
  rekey(node: N, key: number): void {
    node.key = key;
    if (node.heapIndex < 0 || this.nodes[node.heapIndex] !== node) {
      this.push(node);
    } else if (!this.up(node.heapIndex)) {
      this.down(node.heapIndex);
    }
  }

  clear(): void {
    for (const node of this.nodes) node.heapIndex = -1;
    this.nodes.length = 0;
  }

  private less(a: N, b: N): boolean {
    return a.key < b.key || (a.key === b.key && a.seq < b.seq);
  }

  private place(node: N, index: number): void {
    this.nodes[index] = node;
    node.heapIndex = index;
  }

  private up(index: number): boolean {
    const node = this.nodes[index] as N;
    const start = index;
    while (index > 0) {
      const parentIndex = (index - 1) >> 1;
      const parent = this.nodes[parentIndex] as N;
      if (!this.less(node, parent)) break;
      this.place(parent, index);
      index = parentIndex;
    }
    this.place(node, index);
    return index !== start;
  }

  private down(index: number): void {
    const nodes = this.nodes;
    const node = nodes[index] as N;
    for (;;) {
      const left = 2 * index + 1;
      if (left >= nodes.length) break;
      const right = left + 1;
      const child = right < nodes.length && this.less(nodes[right] as N, nodes[left] as N) ? right : left;
      const childNode = nodes[child] as N;
      if (!this.less(childNode, node)) break;
      this.place(childNode, index);
      index = child;
    }
    this.place(node, index);
  }
}

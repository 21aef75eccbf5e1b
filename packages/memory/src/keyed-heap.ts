import { Heap } from "@tranche/core";

/** What a keyed heap orders: by `key`, ties by `seq`. The heap keeps `heapIndex` current while it holds the node. */
export interface HeapNode {
  key: number;
  seq: number;
  heapIndex: number;
}

const byKey = (a: HeapNode, b: HeapNode): boolean => a.key < b.key || (a.key === b.key && a.seq < b.seq);
const track = (node: HeapNode, index: number): void => {
  node.heapIndex = index;
};

/** A core `Heap` of nodes ordered by `key` then `seq`, each told its index. */
export function keyedHeap<N extends HeapNode>(): Heap<N> {
  return new Heap<N>(byKey, track);
}

function holds<N extends HeapNode>(heap: Heap<N>, node: N): boolean {
  return node.heapIndex >= 0 && heap.items[node.heapIndex] === node;
}

/** Takes `node` out of `heap`; does nothing when the heap does not hold it. */
export function removeNode<N extends HeapNode>(heap: Heap<N>, node: N): void {
  if (!holds(heap, node)) return;
  heap.removeAt(node.heapIndex);
  node.heapIndex = -1;
}

/** Files `node` in `heap` under `key`: moves it when the heap holds it, pushes it when not. */
export function rekey<N extends HeapNode>(heap: Heap<N>, node: N, key: number): void {
  node.key = key;
  if (holds(heap, node)) heap.update(node.heapIndex);
  else heap.push(node);
}

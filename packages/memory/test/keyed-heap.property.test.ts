/**
 * `KeyedHeap` against a sorted list: random adds, re-keyings, removals, pops and clears of
 * nodes, some of them not in the heap, checking the order, the size and every node's `heapIndex`.
 *
 * Runs: FC_RUNS (default 300); FC_SEED replays a failure.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { fcRuns } from "../../../scripts/fc-runs.js";
import { type HeapNode, KeyedHeap } from "../src/keyed-heap.js";

const numRuns = fcRuns(300);
const seed = process.env.FC_SEED === undefined ? undefined : Number(process.env.FC_SEED);
const params = { numRuns, ...(seed === undefined ? {} : { seed }) };

type Op = { op: "rekey"; pick: number; key: number } | { op: "remove"; pick: number } | { op: "pop" } | { op: "clear" };

const op: fc.Arbitrary<Op> = fc.oneof(
  { weight: 6, arbitrary: fc.record({ op: fc.constant("rekey" as const), pick: fc.nat(), key: fc.integer({ min: 0, max: 12 }) }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant("remove" as const), pick: fc.nat() }) },
  { weight: 3, arbitrary: fc.record({ op: fc.constant("pop" as const) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant("clear" as const) }) },
);

const before = (a: HeapNode, b: HeapNode): number => a.key - b.key || a.seq - b.seq;

describe("KeyedHeap", () => {
  it("pops by key then seq through rekey, remove, pop and clear, and keeps heapIndex current (−1 once out)", () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 16 }), fc.array(op, { maxLength: 150 }), (count, ops) => {
        // A fixed pool of nodes, each in the heap or not: an op on a node not in it must be harmless.
        const nodes: HeapNode[] = Array.from({ length: count }, (_, seq) => ({ key: 0, seq, heapIndex: -1 }));
        const heap = new KeyedHeap<HeapNode>();
        const held = new Set<HeapNode>();
        const least = (): HeapNode | undefined => [...held].sort(before)[0];
        for (const step of ops) {
          if (step.op === "pop") {
            const expected = least();
            expect(heap.pop()).toBe(expected);
            if (expected !== undefined) held.delete(expected);
          } else if (step.op === "clear") {
            heap.clear();
            held.clear();
          } else {
            const node = nodes[step.pick % count] as HeapNode;
            if (step.op === "rekey") {
              heap.rekey(node, step.key);
              held.add(node);
            } else {
              heap.remove(node);
              held.delete(node);
            }
          }
          expect(heap.size).toBe(held.size);
          expect(heap.peek()).toBe(least());
          for (const node of nodes) {
            if (held.has(node)) expect(node.heapIndex).toBeGreaterThanOrEqual(0);
            else expect(node.heapIndex).toBe(-1);
          }
        }
        const drained: HeapNode[] = [];
        for (let node = heap.pop(); node !== undefined; node = heap.pop()) drained.push(node);
        expect(drained).toEqual([...held].sort(before));
      }),
      params,
    );
  });

  it("ignores a node that another heap holds at the same index", () => {
    const a = new KeyedHeap<HeapNode>();
    const b = new KeyedHeap<HeapNode>();
    const inA: HeapNode = { key: 1, seq: 0, heapIndex: -1 };
    const inB: HeapNode = { key: 2, seq: 1, heapIndex: -1 };
    a.rekey(inA, 1);
    b.rekey(inB, 2);
    a.remove(inB);
    expect(a.size).toBe(1);
    expect(a.peek()).toBe(inA);
    expect(inB.heapIndex).toBe(0);
  });
});

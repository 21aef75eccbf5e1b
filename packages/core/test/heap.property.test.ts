/**
 * `Heap` against a sorted list: random pushes, pops, removals and re-keyings by index, with the
 * index every element was last told by `onMove`.
 *
 * Runs: FC_RUNS (default 300); FC_SEED replays a failure.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { fcRuns } from "../../../scripts/fc-runs.js";
import { Heap } from "../src/internal.js";

const numRuns = fcRuns(300);
const seed = process.env.FC_SEED === undefined ? undefined : Number(process.env.FC_SEED);
const params = { numRuns, ...(seed === undefined ? {} : { seed }) };

interface Timer {
  at: number;
  seq: number;
  index: number;
}

const earlier = (a: Timer, b: Timer): boolean => a.at < b.at || (a.at === b.at && a.seq < b.seq);
const track = (timer: Timer, index: number): void => {
  timer.index = index;
};

type Op =
  | { op: "push"; at: number }
  | { op: "pop" }
  | { op: "remove"; pick: number }
  | { op: "rekey"; pick: number; at: number }
  | { op: "clear" };

const op: fc.Arbitrary<Op> = fc.oneof(
  { weight: 6, arbitrary: fc.record({ op: fc.constant("push" as const), at: fc.integer({ min: 0, max: 20 }) }) },
  { weight: 3, arbitrary: fc.record({ op: fc.constant("pop" as const) }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant("remove" as const), pick: fc.nat() }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant("rekey" as const), pick: fc.nat(), at: fc.integer({ min: 0, max: 20 }) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant("clear" as const) }) },
);

describe("Heap", () => {
  it("peeks and pops in `less` order through pushes, pops, removeAt and update, and tells each element its index", () => {
    fc.assert(
      fc.property(fc.array(op, { maxLength: 120 }), (ops) => {
        const heap = new Heap<Timer>(earlier, track);
        let held: Timer[] = [];
        let seq = 0;
        const least = (): Timer | undefined => [...held].sort((a, b) => (earlier(a, b) ? -1 : 1))[0];
        for (const step of ops) {
          if (step.op === "push") {
            const timer = { at: step.at, seq: seq++, index: -1 };
            heap.push(timer);
            held.push(timer);
          } else if (step.op === "pop") {
            const expected = least();
            expect(heap.pop()).toBe(expected);
            held = held.filter((t) => t !== expected);
          } else if (step.op === "clear") {
            heap.clear();
            held = [];
          } else if (held.length > 0) {
            const timer = held[step.pick % held.length] as Timer;
            if (step.op === "remove") {
              heap.removeAt(timer.index);
              held = held.filter((t) => t !== timer);
            } else {
              timer.at = step.at;
              heap.update(timer.index);
            }
          }
          expect(heap.size).toBe(held.length);
          expect(heap.peek()).toBe(least());
          for (const timer of held) expect(heap.items[timer.index]).toBe(timer);
        }
      }),
      params,
    );
  });

  it("moves an element up when `update` lowers its key, or when a removal puts a lesser one in its place", () => {
    // Shapes the property above reaches only in some runs (FC_RUNS may be small).
    const heap = new Heap<Timer>(earlier, track);
    const timers = [0, 10, 1, 11, 12, 2].map((at, seq) => ({ at, seq, index: -1 }));
    for (const timer of timers) heap.push(timer);
    const [, , , eleven, twelve] = timers as [Timer, Timer, Timer, Timer, Timer, Timer];
    // The last element (at 2) fills the place of 11, under 10: it must rise above 10.
    heap.removeAt(eleven.index);
    twelve.at = -1;
    heap.update(twelve.index);
    expect(heap.peek()).toBe(twelve);
    for (const timer of heap.items) expect(heap.items[timer.index]).toBe(timer);
    expect([heap.pop(), heap.pop(), heap.pop(), heap.pop(), heap.pop()].map((t) => t?.at)).toEqual([-1, 0, 1, 2, 10]);
  });

  it("works without `onMove`", () => {
    const heap = new Heap<number>((a, b) => a < b);
    for (const n of [5, 1, 4, 2, 3]) heap.push(n);
    expect([heap.pop(), heap.pop(), heap.pop(), heap.pop(), heap.pop(), heap.pop()]).toEqual([1, 2, 3, 4, 5, undefined]);
    expect(heap.size).toBe(0);
    expect(heap.peek()).toBeUndefined();
  });

  it("orders an undefined element like any other", () => {
    // Here undefined sorts last: popping what is above it must still bring it up.
    const heap = new Heap<number | undefined>((a, b) => (a ?? Infinity) < (b ?? Infinity));
    for (const n of [2, 1, undefined]) heap.push(n);
    expect(heap.pop()).toBe(1);
    expect(heap.size).toBe(2);
    expect(heap.pop()).toBe(2);
    expect(heap.size).toBe(1);
    expect(heap.pop()).toBeUndefined();
    expect(heap.size).toBe(0);
  });
});

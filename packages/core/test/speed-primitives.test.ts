// The primitives the fast paths are built on, each held to the rule it keeps: `small` changes
// no value, only how it is stored; `TimeCache` never serves a time from an earlier stretch
// of code, nor one time to more calls than it was told; an `Entry`, the one object an item
// costs, reads its times before a batcher has placed it.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { fcRuns } from "../../../scripts/fc-runs.js";
import type { Clock } from "../src/clock.js";
import { Batcher, Entry } from "../src/internal.js";
import { small } from "../src/small.js";
import { TimeCache } from "../src/time-cache.js";

describe("small", () => {
  it("returns the same number for every input (a zero may lose its sign)", () => {
    fc.assert(
      fc.property(fc.oneof(fc.double(), fc.integer(), fc.integer({ min: -(2 ** 40), max: 2 ** 40 })), (ms) => {
        const out = small(ms);
        expect(Number.isNaN(ms) ? Number.isNaN(out) : out === ms).toBe(true);
      }),
      { numRuns: fcRuns(1000) },
    );
  });

  it("keeps what does not fit 32 bits, fractions and infinities as they are", () => {
    for (const ms of [2 ** 31, -(2 ** 31) - 1, Date.UTC(2026, 11, 2), 0.5, -1.25, Infinity, -Infinity]) expect(small(ms)).toBe(ms);
  });
});

/** A clock that counts its reads and moves only when told. */
function countingClock(start: number): Clock & { reads: number; time: number } {
  return {
    reads: 0,
    time: start,
    now() {
      this.reads++;
      return this.time;
    },
    setTimer: () => undefined,
    clearTimer: () => {},
  };
}

describe("TimeCache", () => {
  it("serves one read to at most `reads` calls of one synchronous stretch", () => {
    const clock = countingClock(1000);
    const times = new TimeCache(clock, 4);
    for (let i = 0; i < 10; i++) times.now();
    expect(clock.reads).toBe(3); // calls 1, 5 and 9 read
  });

  it("reads again in the next microtask: a time never outlives the stretch that read it", async () => {
    const clock = countingClock(1000);
    const times = new TimeCache(clock, 64);
    expect(times.now()).toBe(1000);
    clock.time = 1005;
    expect(times.now()).toBe(1000); // the same stretch
    await Promise.resolve();
    expect(times.now()).toBe(1005);
    expect(clock.reads).toBe(2);
  });

  it("reads every time with reads = 1", () => {
    const clock = countingClock(0);
    const times = new TimeCache(clock, 1);
    for (let i = 0; i < 5; i++) {
      clock.time = i;
      expect(times.now()).toBe(i);
    }
    expect(clock.reads).toBe(5);
  });

  it("serves the time of its last read, whatever the clock does in between, within the bound", () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 16 }), fc.array(fc.integer({ min: -50, max: 50 }), { maxLength: 100 }), (reads, steps) => {
        const clock = countingClock(10_000);
        const times = new TimeCache(clock, reads);
        let lastRead = clock.time;
        let served = 0;
        for (const step of steps) {
          clock.time += step;
          const before = clock.reads;
          const now = times.now();
          if (clock.reads > before) {
            lastRead = clock.time;
            served = 0;
          }
          served++;
          expect(now).toBe(lastRead);
          expect(served).toBeLessThanOrEqual(reads);
        }
      }),
      { numRuns: fcRuns(300) },
    );
  });
});

describe("Entry", () => {
  it("reads its times as 0 before it is offered, and as epoch ms once buffered", () => {
    const entry = new Entry("p", "id", 1);
    expect([entry.notBefore, entry.enqueuedAt]).toEqual([0, 0]);
    const batcher = new Batcher<string>();
    batcher._offer(entry, 1_000, 1_500, false);
    expect([entry.notBefore, entry.enqueuedAt]).toEqual([1_500, 1_000]);
  });
});

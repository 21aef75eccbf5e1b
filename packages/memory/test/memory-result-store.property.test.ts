/**
 * `MemoryResultStore` against a list in store order: random sets (new ids and overwrites, with
 * and without a `ttl`, `Infinity` included) and clock moves, checking after each step which ids
 * it holds: those whose `ttl` has not run out, at most `maxEntries` of them, the oldest stored
 * going first.
 *
 * Runs: FC_RUNS (default 300); FC_SEED replays a failure.
 */
import { SimulatedClock } from "@tranche/core/testing";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { fcRuns } from "../../../scripts/fc-runs.js";
import { MemoryResultStore } from "../src/index.js";

const numRuns = fcRuns(300);
const seed = process.env.FC_SEED === undefined ? undefined : Number(process.env.FC_SEED);
const params = { numRuns, ...(seed === undefined ? {} : { seed }) };

type Step = { op: "set"; id: number; ttl: number | undefined } | { op: "advance"; ms: number };

const step: fc.Arbitrary<Step> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ op: fc.constant("set" as const), id: fc.integer({ min: 0, max: 9 }), ttl: fc.constantFrom(undefined, 1, 5, 20, Infinity) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant("advance" as const), ms: fc.integer({ min: 0, max: 12 }) }) },
);

describe("MemoryResultStore bounds (property)", () => {
  it("holds the ids whose ttl has not run out, at most maxEntries, the oldest stored dropped first", async () => {
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 1, max: 5 }), fc.array(step, { maxLength: 60 }), async (maxEntries, steps) => {
        const clock = new SimulatedClock(0);
        const store = new MemoryResultStore<number>({ clock, ttl: 10, maxEntries });
        // The model: held ids in store order, each with the time it expires at.
        let held: { id: string; until: number }[] = [];
        for (const [i, s] of steps.entries()) {
          if (s.op === "advance") {
            await clock.advance(s.ms);
          } else {
            const id = `i${s.id}`;
            await store.set(id, { ok: true, value: i }, s.ttl);
            held = held.filter((h) => h.id !== id);
            held.push({ id, until: clock.now() + (s.ttl ?? 10) });
          }
          held = held.filter((h) => h.until > clock.now());
          if (held.length > maxEntries) held = held.slice(held.length - maxEntries);
          const present: string[] = [];
          for (let n = 0; n <= 9; n++) if ((await store.get(`i${n}`)) !== undefined) present.push(`i${n}`);
          expect(present).toEqual(held.map((h) => h.id).sort());
          expect(store.size).toBe(held.length);
        }
      }),
      params,
    );
  });
});

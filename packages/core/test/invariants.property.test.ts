/**
 * SPEC §5, one property per invariant. Each runs random programs through the driver
 * in `support/model-driver.ts` (which tracks items from the Batcher's outputs only)
 * and checks its own rule, so that breaking that rule fails that test by name.
 *
 * Runs: FC_RUNS per test (default 300); FC_SEED replays a failure.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { fcRuns } from "../../../scripts/fc-runs.js";
import { batched } from "../src/batched.js";
import { SimulatedClock } from "../src/testing.js";
import { Sim, steps, type Tracked } from "./support/model-driver.js";
import { type AddSpec, addSpecWithOversize, optionSpec } from "./support/model-options.js";
import { replay } from "./support/model-recorder.js";

const numRuns = fcRuns(300);
const seed = process.env.FC_SEED === undefined ? undefined : Number(process.env.FC_SEED);
const params = { numRuns, ...(seed === undefined ? {} : { seed }) };

const earlier = (a: Tracked, b: Tracked): boolean => a.eligibleAt < b.eligibleAt || (a.eligibleAt === b.eligibleAt && a.seq < b.seq);

/** Adds whose delays collide often, so ties of eligibility are common. */
const tiedAdd: fc.Arbitrary<AddSpec> = fc.record({
  g: fc.nat(2),
  k: fc.nat(3),
  s: fc.nat(30),
  delay: fc.constantFrom(0, 0, 5, 10),
  oversize: fc.constant(false),
});

describe("Batcher invariants (SPEC §5)", () => {
  it("I1 conservation: every accepted item ends acked or failed exactly once, and is only handed over while held", () => {
    fc.assert(
      fc.property(optionSpec(), steps({ settle: 8, settleAgain: 4, retries: true }), (spec, program) => {
        const sim = new Sim(spec, {
          settleAgain(s, outcome, before) {
            // A second outcome for the same try is refused, even when the item is in flight again after a retry.
            expect(outcome).toEqual({ error: "SettledError" });
            expect(s.stats).toEqual(before);
          },
          batch(s, batch) {
            for (const view of batch.items) {
              // Not in another batch, not already settled, not unknown: held, once.
              expect(s.items.get(view.id)?.state, `${view.id} handed over in batch ${batch.id}`).toBe("held");
            }
            expect(new Set(batch.items.map((item) => item.id)).size, "an item twice in one batch").toBe(batch.items.length);
          },
        });
        sim.run(program);
        sim.closeAndDrain();
        let absorbedRetries = 0;
        for (const item of sim.items.values()) {
          const root = sim.root(item.id);
          expect(root?.state, `final state of ${item.id}`).toBe("done");
          expect(root?.outcomes, `outcomes of ${item.id}`).toBe(1);
          if (item.state === "merged" && item.handed.length > 0) absorbedRetries++;
        }
        const { items } = sim.stats;
        expect(items.acked + items.failed + absorbedRetries).toBe(items.accepted);
      }),
      params,
    );
  });

  it("I2 size: every batch has 1..flushEvery items and at most maxBatchBytes bytes", () => {
    fc.assert(
      fc.property(
        optionSpec({ maxBatchBytes: fc.integer({ min: 1, max: 30 }), groups: fc.integer({ min: 0, max: 2 }) }),
        steps({ add: 14, flush: 2 }, 80, addSpecWithOversize),
        (spec, program) => {
          const sim = new Sim(spec, {
            batch(s, batch) {
              expect(batch.items.length).toBeGreaterThanOrEqual(1);
              expect(batch.items.length).toBeLessThanOrEqual(s.options.flushEvery);
              const bytes = batch.items.reduce((sum, item) => sum + item.payload.s, 0);
              expect(bytes).toBeLessThanOrEqual(s.options.maxBatchBytes);
            },
            add(s, _id, payload, outcome) {
              // The one exception the SPEC allows is refused at the door.
              if (payload.s > s.options.maxBatchBytes) expect(outcome).toEqual({ error: "OversizeError" });
            },
          });
          sim.run(program);
          sim.closeAndDrain();
        },
      ),
      params,
    );
  });

  it("I3 promptness: a group with flushEvery eligible items flushes on the poll at that instant, with no clock advance", () => {
    fc.assert(
      fc.property(
        optionSpec({ flushInterval: fc.constantFrom(1000, Infinity), maxBatchBytes: fc.constant(undefined) }),
        steps({ add: 14, advance: 2 }),
        (spec, program) => {
          const sim = new Sim(spec, {
            afterPoll(s, at) {
              if (!s.freeSlot()) return;
              for (const [group, items] of s.eligibleByGroup()) {
                expect(items.length, `group ${group} holds ${items.length} eligible items at ${at} with a free slot`).toBeLessThan(s.options.flushEvery);
              }
            },
          });
          sim.run(program);
        },
      ),
      params,
    );
  });

  it("I4 latency bound: with a free slot, an eligible item is handed over within flushInterval of becoming eligible", () => {
    fc.assert(
      fc.property(optionSpec({ flushInterval: fc.integer({ min: 0, max: 50 }) }), steps({ advance: 6 }), (spec, program) => {
        const deadline = (item: Tracked): number => item.eligibleAt + spec.flushInterval;
        const sim = new Sim(spec, {
          afterPoll(s, at) {
            if (!s.freeSlot()) return;
            for (const item of s.held()) {
              if (item.eligibleAt <= at) expect(deadline(item), `${item.id} still held at ${at}`).toBeGreaterThan(at);
            }
          },
          afterStep(s) {
            // A driver sleeps until nextWake(): it must not sleep past any deadline.
            if (!s.freeSlot()) return;
            const first = Math.min(...s.held().map(deadline));
            if (first < Infinity) expect(s.nextWake(), `wake-up for a deadline at ${first}`).toBeLessThanOrEqual(first);
          },
        });
        sim.run(program);
      }),
      params,
    );
  });

  it('I5 no early flush: an "interval" batch\'s oldest item waited ≥ flushInterval, and a "count" batch is full', () => {
    fc.assert(
      fc.property(optionSpec({ flushInterval: fc.integer({ min: 1, max: 50 }) }), steps({ advance: 6 }), (spec, program) => {
        const sim = new Sim(spec, {
          batch(s, batch, at) {
            if (batch.reason === "interval") {
              const oldest = Math.min(...batch.items.map((view) => s.items.get(view.id)?.eligibleAt ?? -Infinity));
              expect(at - oldest, `interval batch ${batch.id} at ${at}`).toBeGreaterThanOrEqual(spec.flushInterval);
            }
            if (batch.reason === "count") expect(batch.items.length).toBe(spec.flushEvery);
          },
        });
        sim.run(program);
      }),
      params,
    );
  });

  it("I6 retry lower bound: an item retried at t with delay d is handed over no earlier than t + d, and by t + d + flushInterval with a free slot", () => {
    fc.assert(
      fc.property(optionSpec({ flushInterval: fc.integer({ min: 0, max: 50 }) }), steps({ settle: 8, advance: 6 }), (spec, program) => {
        const sim = new Sim(spec, {
          batch(s, batch, at) {
            for (const view of batch.items) {
              const retry = s.items.get(view.id)?.retry;
              if (retry !== undefined) expect(at, `${view.id} retried at ${retry.at} until ${retry.notBefore}`).toBeGreaterThanOrEqual(retry.notBefore);
            }
          },
          afterPoll(s, at) {
            if (!s.freeSlot()) return;
            for (const item of s.held()) {
              if (item.retry === undefined) continue;
              expect(Math.max(item.retry.notBefore, item.retry.at) + spec.flushInterval, `retried ${item.id} still held at ${at}`).toBeGreaterThan(at);
            }
          },
        });
        sim.run(program);
      }),
      params,
    );
    // celery-batches' documented case, generalised: one item, retried with delay d, interval i.
    fc.assert(
      fc.property(fc.constantFrom(10_000, 1, 250), fc.constantFrom(10_000, 0, 1, 333), fc.integer({ min: 0, max: 5_000 }), (interval, delay, wait) => {
        const sim = new Sim({ flushEvery: 2, flushInterval: interval, concurrency: 1, maxBuffered: undefined, groups: 0, keys: 0, coalesce: "first", maxBatchBytes: undefined });
        sim.add({ g: 0, k: 0, s: 0, delay: 0, oversize: false });
        sim.advanceTo(interval);
        sim.advanceTo(interval + wait);
        const first = sim.flights[0];
        expect(first?.batch.items.map((item) => item.id)).toEqual(["i1"]);
        const t = sim.now;
        sim.settle((first as { batch: { id: string } }).batch.id, "i1", "retry", delay);
        sim.advanceTo(t + delay + interval + 1);
        const handed = sim.items.get("i1")?.handed ?? [];
        expect(handed).toHaveLength(2);
        const second = (handed[1] as { at: number }).at;
        expect(second).toBeGreaterThanOrEqual(t + delay);
        expect(second).toBeLessThanOrEqual(t + delay + interval);
      }),
      params,
    );
  });

  it("I7 concurrency: in-flight batches never exceed concurrency", () => {
    fc.assert(
      fc.property(optionSpec({ concurrency: fc.integer({ min: 1, max: 3 }), flushInterval: fc.integer({ min: 0, max: 20 }) }), steps({ add: 14, advance: 6, settle: 2 }), (spec, program) => {
        const check = (s: Sim): void => {
          expect(s.stats.inFlightBatches).toBeLessThanOrEqual(spec.concurrency);
          expect(s.flights.length, "batches handed over and not settled").toBeLessThanOrEqual(spec.concurrency);
        };
        const sim = new Sim(spec, { afterPoll: check, afterStep: check });
        sim.run(program);
      }),
      params,
    );
  });

  it("I8 capacity: held items never exceed maxBuffered; an add beyond it is refused as \"full\", changes nothing and is never handed over", () => {
    fc.assert(
      fc.property(
        optionSpec({ maxBufferedExtra: fc.integer({ min: 0, max: 4 }), flushInterval: fc.integer({ min: 10, max: 50 }) }),
        steps({ add: 16, advance: 3, settle: 3 }),
        (spec, program) => {
          const refused = new Set<string>();
          const sim = new Sim(spec, {
            add(s, id, _payload, outcome, before) {
              expect(s.stats.held).toBeLessThanOrEqual(s.options.maxBuffered);
              if ("value" in outcome && outcome.value === "full") {
                refused.add(id);
                // The documented rule: held + unsettled in-flight items reached maxBuffered.
                expect(before.held + before.inFlight).toBeGreaterThanOrEqual(s.options.maxBuffered);
                expect(s.stats).toEqual(before);
              }
            },
            batch(_s, batch) {
              for (const view of batch.items) expect(refused.has(view.id), `refused ${view.id} handed over`).toBe(false);
            },
            afterStep(s) {
              expect(s.stats.held).toBeLessThanOrEqual(s.options.maxBuffered);
            },
          });
          sim.run(program);
        },
      ),
      params,
    );
  });

  it("I9 order: within a group, items are handed over in eligibility order (ties: add order)", () => {
    fc.assert(
      fc.property(optionSpec({ flushInterval: fc.integer({ min: 0, max: 20 }) }), steps({ add: 14, advance: 5 }, 80, tiedAdd), (spec, program) => {
        const sim = new Sim(spec, {
          afterPoll(s, _at, batches) {
            const left = s.eligibleByGroup();
            const handed = new Map<string | undefined, Tracked[]>();
            for (const batch of batches) {
              const items = batch.items.map((view) => s.items.get(view.id) as Tracked);
              handed.set(batch.group, [...(handed.get(batch.group) ?? []), ...items]);
            }
            for (const [group, items] of handed) {
              const sequence = [...items, ...(left.get(group) ?? [])];
              for (let i = 1; i < sequence.length; i++) {
                const a = sequence[i - 1] as Tracked;
                const b = sequence[i] as Tracked;
                expect(earlier(a, b), `group ${group}: ${a.id}@${a.eligibleAt} before ${b.id}@${b.eligibleAt}`).toBe(true);
              }
            }
          },
        });
        sim.run(program);
      }),
      params,
    );
  });

  it("I10 groups: no batch mixes groups, and a batch's group is that of every payload in it", () => {
    fc.assert(
      fc.property(optionSpec({ groups: fc.integer({ min: 2, max: 3 }) }), steps({ add: 14, advance: 5 }), (spec, program) => {
        const sim = new Sim(spec, {
          batch(s, batch) {
            for (const view of batch.items) expect(s.options.groupBy?.(view.payload), `${view.id} in batch ${batch.id}`).toBe(batch.group);
          },
        });
        sim.run(program);
        sim.closeAndDrain();
      }),
      params,
    );
  });

  it("I11 coalescing: at most one buffered item per dedupeKey, and every merged caller settles with the survivor's outcome", async () => {
    fc.assert(
      fc.property(optionSpec({ keys: fc.integer({ min: 1, max: 4 }), flushInterval: fc.integer({ min: 0, max: 30 }) }), steps({ add: 14, settle: 6 }), (spec, program) => {
        const keyOf = (item: { payload: { k: string } }): string => item.payload.k;
        const sim = new Sim(spec, {
          add(s, id, payload, outcome) {
            if ("error" in outcome) return;
            const buffered = s.held().filter((item) => item.id !== id && keyOf(item) === payload.k);
            if (buffered.length > 0) {
              expect(outcome.value, `add ${id} with buffered key ${payload.k}`).toMatchObject({ result: "coalesced", survivor: (buffered[0] as Tracked).id });
            } else {
              expect(outcome.value, `add ${id} with key ${payload.k} not buffered`).not.toMatchObject({ result: "coalesced" });
            }
            expect(s.held().filter((item) => keyOf(item) === payload.k).length).toBeLessThanOrEqual(1);
          },
          batch(s, batch) {
            for (const view of batch.items) {
              // The survivor carries the payload its policy keeps ("first": its own, "last": the newest).
              expect(view.payload.n, `payload of ${view.id}`).toBe(s.items.get(view.id)?.payload.n);
            }
          },
          afterPoll(_s, _at, batches) {
            const keys = batches.flatMap((batch) => batch.items.map(keyOf));
            expect(new Set(keys).size, "items buffered together share a key").toBe(keys.length);
          },
        });
        sim.run(program);
      }),
      params,
    );
    // Through batched(): callers merged under one key all get the survivor's result or error.
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom("first" as const, "last" as const),
        fc.array(fc.record({ k: fc.constantFrom("a", "b", "c"), fails: fc.boolean() }), { minLength: 1, maxLength: 12 }),
        async (coalesce, calls) => {
          const clock = new SimulatedClock(0);
          const run = batched<{ k: string; n: number; fails: boolean }, string>(
            (requests) => requests.map((r) => (r.payload.fails ? new Error(`fail ${r.payload.k}:${r.payload.n}`) : `${r.payload.k}:${r.payload.n}`)),
            { dedupeKey: (p) => p.k, coalesce, flushEvery: 100, flushInterval: 10, clock },
          );
          const settled = calls.map((call, n) =>
            run({ ...call, n }).then(
              (value) => ({ value }),
              (error: unknown) => ({ value: (error as Error).message }),
            ),
          );
          await clock.advance(10);
          const results = await Promise.all(settled);
          for (const key of ["a", "b", "c"]) {
            const ns = calls.flatMap((call, n) => (call.k === key ? [n] : []));
            if (ns.length === 0) continue;
            const survivor = coalesce === "first" ? (ns[0] as number) : (ns[ns.length - 1] as number);
            const expected = (calls[survivor] as { fails: boolean }).fails ? `fail ${key}:${survivor}` : `${key}:${survivor}`;
            for (const n of ns) expect(results[n], `caller ${n} of key ${key}`).toEqual({ value: expected });
          }
        },
      ),
      params,
    );
  });

  it("I12 close: after close, settling what is handed over and polling at every wake-up leaves nothing held or in flight", () => {
    fc.assert(
      fc.property(
        optionSpec({ flushInterval: fc.oneof(fc.integer({ min: 0, max: 50 }), fc.constant(Infinity)) }),
        steps({ settle: 5, close: 1 }),
        (spec, program) => {
          const sim = new Sim(spec);
          sim.run(program);
          sim.closeAndDrain();
          expect(sim.stats).toMatchObject({ held: 0, eligible: 0, delayed: 0, inFlight: 0, inFlightBatches: 0 });
          expect(sim.held(), "items the Batcher no longer holds").toEqual([]);
          expect(sim.add({ g: 0, k: 0, s: 0, delay: 0, oversize: false }).outcome).toEqual({ error: "ClosedError" });
        },
      ),
      params,
    );
  });

  it("I13 idle: with nothing held, nextWake() is undefined (no wake-up scheduled)", () => {
    fc.assert(
      fc.property(optionSpec(), steps({ settle: 6, advance: 6, close: 1 }), (spec, program) => {
        const check = (s: Sim): void => {
          if (s.stats.held === 0) expect(s.nextWake(), `nextWake with nothing held, ${s.stats.inFlight} in flight`).toBeUndefined();
        };
        const sim = new Sim(spec, { afterStep: check, afterPoll: check });
        expect(sim.nextWake(), "a new Batcher").toBeUndefined();
        sim.run(program);
        sim.closeAndDrain();
        check(sim);
      }),
      params,
    );
  });

  it("I14 determinism: the same calls at the same times on a fresh Batcher give the same batches, outcomes and stats", () => {
    fc.assert(
      fc.property(optionSpec(), steps({ settle: 5, close: 1 }), (spec, program) => {
        const sim = new Sim(spec);
        sim.run(program);
        sim.closeAndDrain();
        const again = new Sim(spec);
        again.run(program);
        again.closeAndDrain();
        expect(again.rec.log).toEqual(sim.rec.log);
        expect(replay(sim.rec.options, sim.rec.log)).toEqual(sim.rec.log);
      }),
      params,
    );
  });
});

// Race tests for batched(): fc.scheduler() decides in which order callers arrive,
// handlers' awaits resolve and close() is called (fast-check examples/005-race).
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { fcRuns } from "../../../scripts/fc-runs.js";
import { ClosedError, TimeoutError, batched, type BatchRequest } from "../src/index.js";
import { SimulatedClock } from "../src/testing.js";

const numRuns = fcRuns(200);
const seed = process.env.FC_SEED === undefined ? undefined : Number(process.env.FC_SEED);
const params = { numRuns, ...(seed === undefined ? {} : { seed }) };

/**
 * What the handler does with an item:
 * - ack: its element of the returned array; error: an Error element;
 * - explicit: `request.ack()` before returning; retryOnce: `request.retry()` on its first try;
 * - throwOnce: the handler throws on the item's first try (the whole batch is retried).
 */
type Mode = "ack" | "error" | "explicit" | "retryOnce" | "throwOnce";

interface Job {
  n: number;
  mode: Mode;
  delay: number;
}

interface Outcome {
  afterClose: boolean;
  settles: number;
  value?: string;
  error?: unknown;
}

const jobArb = fc.record({
  mode: fc.constantFrom<Mode>("ack", "ack", "error", "explicit", "retryOnce", "throwOnce"),
  delay: fc.constantFrom(0, 0, 0, 15),
});

const configArb = fc.record({
  flushEvery: fc.integer({ min: 1, max: 4 }),
  flushInterval: fc.constantFrom(0, 10, 25),
  concurrency: fc.integer({ min: 1, max: 3 }),
  extraBuffer: fc.integer({ min: 0, max: 4 }),
  grouped: fc.boolean(),
  /** Extra scheduler hops inside a handler before it settles. */
  hops: fc.integer({ min: 1, max: 2 }),
  withClose: fc.boolean(),
});

const expected = (job: Job): { value: string } | { message: string } =>
  job.mode === "error" ? { message: `e${job.n}` } : { value: `r${job.n}` };

describe("batched() under arbitrary interleavings", () => {
  it("every call settles exactly once with its own outcome, within concurrency, and close() leaves nothing", async () => {
    await fc.assert(
      fc.asyncProperty(fc.scheduler(), configArb, fc.array(jobArb, { minLength: 1, maxLength: 16 }), async (s, config, modes) => {
        const jobs: Job[] = modes.map((m, n) => ({ n, ...m }));
        const clock = new SimulatedClock();
        const violations: string[] = [];
        const tries = new Map<number, number[]>(); // attempts each item was handed over with
        const inBatch = new Set<number>();
        let active = 0;
        let maxActive = 0;

        const fn = batched<Job, string>(
          async (requests: BatchRequest<Job, string>[], context) => {
            active++;
            maxActive = Math.max(maxActive, active);
            if (active > config.concurrency) violations.push(`${active} batches in flight`);
            if (fn.stats.inFlightBatches > config.concurrency) violations.push(`stats: ${fn.stats.inFlightBatches} in flight`);
            if (requests.length < 1 || requests.length > config.flushEvery) violations.push(`batch of ${requests.length}`);
            const groups = new Set(requests.map((r) => r.payload.n % 2));
            if (config.grouped && groups.size > 1) violations.push(`batch ${context.batchId} mixes groups`);
            for (const r of requests) {
              const n = r.payload.n;
              if (inBatch.has(n)) violations.push(`item ${n} in two batches at once`);
              inBatch.add(n);
              const seen = tries.get(n) ?? [];
              seen.push(r.attempt);
              tries.set(n, seen);
            }
            for (let hop = 0; hop < config.hops; hop++) await s.schedule(Promise.resolve(), `batch ${context.batchId} hop ${hop}`);

            // From here on no await: settle and bookkeep in one go, as the driver frees slots right after.
            const done = () => {
              active--;
              for (const r of requests) inBatch.delete(r.payload.n);
            };
            if (requests.some((r) => r.payload.mode === "throwOnce" && r.attempt === 1)) {
              done();
              throw new Error("throwOnce");
            }
            const results = requests.map((r) => {
              const { n, mode } = r.payload;
              if (mode === "error") return new Error(`e${n}`) as unknown as string;
              if (mode === "retryOnce" && r.attempt === 1) {
                r.retry();
                return "ignored: retried";
              }
              if (mode === "explicit") {
                r.ack(`r${n}`);
                return "ignored: acked";
              }
              return `r${n}`;
            });
            done();
            return results;
          },
          {
            clock,
            flushEvery: config.flushEvery,
            flushInterval: config.flushInterval,
            concurrency: config.concurrency,
            maxBuffered: config.flushEvery + config.extraBuffer,
            retry: { attempts: Infinity, backoff: { type: "fixed", delay: 5 } },
            ...(config.grouped ? { groupBy: (job: Job) => String(job.n % 2) } : {}),
          },
        );

        const outcomes = new Map<number, Outcome>();
        let closeCalled = false;
        let closeResolved = false;
        const statsAtClose: (typeof fn.stats)[] = [];
        const onClosed = () => {
          closeResolved = true;
          statsAtClose.push(fn.stats);
        };
        const invoke = (job: Job) => {
          const outcome: Outcome = { afterClose: closeCalled, settles: 0 };
          outcomes.set(job.n, outcome);
          fn(job, { id: `job-${job.n}`, delay: job.delay }).then(
            (value) => {
              outcome.settles++;
              outcome.value = value;
            },
            (error: unknown) => {
              outcome.settles++;
              outcome.error = error;
            },
          );
        };
        // Callers arrive in an order the scheduler picks, interleaved with handlers and close().
        const arrive = s.scheduleFunction(async (_n: number) => {});
        for (const job of jobs) void arrive(job.n).then(() => invoke(job));
        if (config.withClose) {
          void s.schedule(Promise.resolve(), "close()").then(() => {
            closeCalled = true;
            void fn.close().then(onClosed);
          });
        }

        const finished = () =>
          outcomes.size === jobs.length && [...outcomes.values()].every((o) => o.settles > 0) && (!config.withClose || closeResolved);
        for (let step = 0; step < 400 && !finished(); step++) {
          await s.waitIdle();
          if (!finished()) await clock.advance(5);
        }
        if (!config.withClose) {
          await Promise.all([fn.close().then(onClosed), clock.advance(0)]);
          for (let step = 0; step < 50 && !closeResolved; step++) {
            await s.waitIdle();
            await clock.advance(5);
          }
        }

        expect(violations).toEqual([]);
        expect(maxActive).toBeLessThanOrEqual(config.concurrency);
        expect(closeResolved).toBe(true);
        // Nothing lost: every call settled, exactly once, with its own outcome.
        for (const job of jobs) {
          const outcome = outcomes.get(job.n);
          expect(outcome, `job ${job.n}`).toBeDefined();
          expect(outcome!.settles, `job ${job.n} settles`).toBe(1);
          if (outcome!.afterClose) {
            expect(outcome!.error, `job ${job.n} after close`).toBeInstanceOf(ClosedError);
            expect(tries.has(job.n), `job ${job.n} after close reached the handler`).toBe(false);
            continue;
          }
          const want = expected(job);
          if ("value" in want) {
            expect(outcome!.error, `job ${job.n} (${job.mode})`).toBeUndefined();
            expect(outcome!.value, `job ${job.n} (${job.mode})`).toBe(want.value);
          } else {
            expect((outcome!.error as Error | undefined)?.message, `job ${job.n} (${job.mode})`).toBe(want.message);
          }
          // Each try handed over once, in order.
          const seen = tries.get(job.n) ?? [];
          expect(seen, `job ${job.n} tries`).toEqual(seen.map((_, i) => i + 1));
          expect(seen.length).toBeGreaterThan(0);
        }
        // close() resolved with nothing held, in flight or waiting, and no timer armed.
        expect(statsAtClose).toHaveLength(1);
        expect(statsAtClose[0]).toMatchObject({ held: 0, inFlight: 0, inFlightBatches: 0, waiting: 0 });
        const stats = fn.stats;
        expect(stats).toMatchObject({ held: 0, inFlight: 0, inFlightBatches: 0, waiting: 0 });
        const accepted = [...outcomes.values()].filter((o) => !o.afterClose).length;
        expect(stats.items.accepted).toBe(accepted);
        expect(stats.items.acked + stats.items.failed).toBe(accepted);
        expect(clock.pendingTimers).toBe(0);
      }),
      params,
    );
  });

  it("merged callers (dedupeKey) all settle with their survivor's outcome under any interleaving", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.scheduler(),
        fc.array(fc.record({ key: fc.constantFrom("a", "b", "c"), fail: fc.boolean() }), { minLength: 1, maxLength: 12 }),
        fc.constantFrom<"first" | "last">("first", "last"),
        fc.integer({ min: 1, max: 2 }),
        async (s, items, coalesce, concurrency) => {
          const clock = new SimulatedClock();
          // Which call's payload each handed item carried, to know what its merged callers must get.
          const fn = batched<{ key: string; fail: boolean; n: number }, string>(
            async (requests) => {
              await s.schedule(Promise.resolve(), "handler");
              return requests.map((r) => (r.payload.fail ? (new Error(`e${r.payload.n}`) as unknown as string) : `r${r.payload.n}`));
            },
            { clock, flushInterval: 5, concurrency, dedupeKey: (p) => p.key, coalesce },
          );
          const settled: { n: number; outcome: string }[] = [];
          const arrival: number[] = []; // call n was the arrival[n]-th to arrive
          const arrive = s.scheduleFunction(async (_n: number) => {});
          const calls = items.map((item, n) =>
            arrive(n).then(() => {
              arrival[n] = arrival.filter((a) => a !== undefined).length;
              return fn({ ...item, n }).then(
                (value) => settled.push({ n, outcome: value }),
                (error: Error) => settled.push({ n, outcome: error.message }),
              );
            }),
          );
          for (let step = 0; step < 200 && settled.length < items.length; step++) {
            await s.waitIdle();
            await clock.advance(5);
          }
          await Promise.all(calls);
          expect(settled).toHaveLength(items.length);
          // Every outcome names a call with the same key: a caller never gets another key's result.
          for (const { n, outcome } of settled) {
            const source = Number(outcome.slice(1));
            expect(items[source]!.key, `call ${n} got ${outcome}`).toBe(items[n]!.key);
            expect(outcome.startsWith("e"), `call ${n} got ${outcome}`).toBe(items[source]!.fail);
            // "first" keeps the oldest payload of a merge, "last" the newest.
            if (coalesce === "first") expect(arrival[source]).toBeLessThanOrEqual(arrival[n]!);
            else expect(arrival[source]).toBeGreaterThanOrEqual(arrival[n]!);
          }
          expect(fn.stats.items.accepted + fn.stats.items.coalesced).toBe(items.length);
          expect(fn.stats.held).toBe(0);
          expect(clock.pendingTimers).toBe(0);
        },
      ),
      params,
    );
  });

  it("with coalescing, handler timeouts, retries and close({ timeout }): every caller settles once, with its survivor's outcome", async () => {
    /** ack / error: settled so; retryOnce: `retry()` on its first try, then acked; hang: never settled, so its batch times out. */
    type Act = "ack" | "error" | "retryOnce" | "hang";
    interface Call {
      n: number;
      key: string;
      act: Act;
      /** Countdown of the call: a delayed item may still be buffered when close({ timeout }) gives up. */
      delay: number;
    }
    const attempts = 2;
    const handlerTimeout = 20;
    const closeArb = fc.constantFrom<"none" | "close" | "timeout">("none", "close", "timeout");
    const callArb = fc.record({ key: fc.constantFrom("a", "b", "c"), act: fc.constantFrom<Act>("ack", "ack", "error", "retryOnce", "hang"), delay: fc.constantFrom(0, 0, 40) });
    await fc.assert(
      fc.asyncProperty(
        fc.scheduler(),
        fc.array(callArb, { minLength: 1, maxLength: 12 }),
        fc.record({ concurrency: fc.integer({ min: 1, max: 2 }), flushEvery: fc.integer({ min: 1, max: 3 }), close: closeArb }),
        async (s, drawn, config) => {
          const calls: Call[] = drawn.map((c, n) => ({ n, ...c }));
          const clock = new SimulatedClock();
          /** What the handler last settled each payload with; how often each was handed over. */
          const final = new Map<number, string>();
          const handed = new Map<number, number>();
          const fn = batched<Call, string>(
            async (requests) => {
              for (const r of requests) handed.set(r.payload.n, (handed.get(r.payload.n) ?? 0) + 1);
              await s.schedule(Promise.resolve(), "handler");
              let hangs = false;
              for (const r of requests) {
                const { n, act } = r.payload;
                if (act === "hang") hangs = true;
                else if (act === "error") {
                  r.fail(new Error(`e${n}`));
                  final.set(n, `e${n}`);
                } else if (act === "retryOnce" && r.attempt === 1) r.retry();
                else {
                  r.ack(`r${n}`);
                  final.set(n, `r${n}`);
                }
              }
              if (hangs) await new Promise(() => {});
            },
            {
              clock,
              flushEvery: config.flushEvery,
              flushInterval: 5,
              concurrency: config.concurrency,
              handlerTimeout,
              dedupeKey: (c) => c.key,
              retry: { attempts, backoff: { type: "fixed", delay: 5 } },
            },
          );

          const outcomes = new Map<number, { settles: number; afterClose: boolean; value?: string; error?: unknown }>();
          let closeAt: number | undefined;
          let closed = false;
          const arrive = s.scheduleFunction(async (_n: number) => {});
          for (const call of calls) {
            void arrive(call.n).then(() => {
              const outcome = { settles: 0, afterClose: closeAt !== undefined };
              outcomes.set(call.n, outcome);
              fn(call, { delay: call.delay }).then(
                (value) => Object.assign(outcome, { settles: outcome.settles + 1, value }),
                (error: unknown) => Object.assign(outcome, { settles: outcome.settles + 1, error }),
              );
            });
          }
          const close = () => {
            closeAt = clock.now();
            void fn.close(config.close === "timeout" ? { timeout: 30 } : undefined).then(() => (closed = true));
          };
          if (config.close !== "none") void s.schedule(Promise.resolve(), "close()").then(close);
          const settled = () => outcomes.size === calls.length && [...outcomes.values()].every((o) => o.settles > 0);
          for (let step = 0; step < 400 && !(settled() && closed); step++) {
            await s.waitIdle();
            if (settled() && closeAt === undefined) close();
            else await clock.advance(5);
          }

          expect(closed).toBe(true);
          const cutAt = config.close === "timeout" && closeAt !== undefined ? closeAt + 30 : Infinity;
          for (const call of calls) {
            const outcome = outcomes.get(call.n)!;
            const label = `call ${call.n} (${call.key}, ${call.act})`;
            expect(outcome.settles, label).toBe(1);
            if (outcome.afterClose) {
              expect(outcome.error, label).toBeInstanceOf(ClosedError);
              expect(handed.has(call.n), label).toBe(false);
              continue;
            }
            const sameKey = calls.filter((c) => c.key === call.key);
            if (outcome.error instanceof ClosedError) {
              // Only close({ timeout }) fails a caller, when it gives up.
              expect(clock.now(), label).toBeGreaterThanOrEqual(cutAt);
              continue;
            }
            if (outcome.error instanceof TimeoutError) {
              // Its survivor hung on every try.
              expect(sameKey.some((c) => c.act === "hang" && handed.get(c.n) === attempts), label).toBe(true);
              continue;
            }
            // A value or an error the handler settled some call of the same key with, last.
            const got = outcome.error === undefined ? outcome.value : (outcome.error as Error).message;
            const source = Number(got?.slice(1));
            expect(sameKey.map((c) => c.n), `${label} got ${got}`).toContain(source);
            expect(final.get(source), `${label} got ${got}`).toBe(got);
            // A call whose own payload ended with an outcome in the handler gets exactly that one.
            if (final.has(call.n)) expect(got, label).toBe(final.get(call.n));
          }
          const stats = fn.stats;
          expect(stats).toMatchObject({ held: 0, inFlight: 0, inFlightBatches: 0, waiting: 0 });
          if (cutAt === Infinity) {
            // Every call before close either reached an outcome or was merged (a call, or a retry absorbed).
            const before = [...outcomes.values()].filter((o) => !o.afterClose).length;
            expect(stats.items.acked + stats.items.failed + stats.items.coalesced).toBe(before);
          }
          expect(clock.pendingTimers).toBe(0);
        },
      ),
      params,
    );
  });
});

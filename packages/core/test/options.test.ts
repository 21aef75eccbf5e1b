import { describe, expect, it, vi } from "vitest";
import { type Backoff, Batcher, type BatchOptions, batched } from "../src/index.js";
import { backoffDelay, resolveOptions } from "../src/internal.js";
import { SimulatedClock } from "../src/testing.js";

const noop = () => {};

/** Runs `fn` (sync throw or async rejection) and returns the TypeError it produced. */
async function typeErrorOf(fn: () => unknown): Promise<TypeError> {
  let caught: unknown;
  try {
    await fn();
  } catch (error) {
    caught = error;
  }
  expect(caught, "expected a TypeError").toBeInstanceOf(TypeError);
  return caught as TypeError;
}

/** The message starts with core's prefix, names the option in backticks and ends with the received value. */
function expectQuotes(error: TypeError, name: string, got: string): void {
  expect(error.message.startsWith(`[tranche/core] Expected \`${name}\` to be `), error.message).toBe(true);
  expect(error.message.endsWith(`, got ${got}`), `"${error.message}" should end with ", got ${got}"`).toBe(true);
}

// [option path, options, quoted value]
const invalidOptions: [string, BatchOptions<string>, string][] = [
  ["flushEvery", { flushEvery: 0 }, "0"],
  ["flushEvery", { flushEvery: -1 }, "-1"],
  ["flushEvery", { flushEvery: 1.5 }, "1.5"],
  ["flushEvery", { flushEvery: Number.NaN }, "NaN"],
  ["flushEvery", { flushEvery: Infinity }, "Infinity"],
  ["flushEvery", { flushEvery: "100" as never }, '"100"'],
  ["flushInterval", { flushInterval: -1 }, "-1"],
  ["flushInterval", { flushInterval: Number.NaN }, "NaN"],
  ["flushInterval", { flushInterval: "1000" as never }, '"1000"'],
  ["maxBatchBytes", { maxBatchBytes: 0, sizeOf: (p) => p.length }, "0"],
  ["maxBatchBytes", { maxBatchBytes: -10, sizeOf: (p) => p.length }, "-10"],
  ["maxBatchBytes", { maxBatchBytes: Number.NaN, sizeOf: (p) => p.length }, "NaN"],
  ["maxBatchBytes", { maxBatchBytes: "1kb" as never, sizeOf: (p) => p.length }, '"1kb"'],
  ["sizeOf", { maxBatchBytes: 100 }, "undefined"],
  ["sizeOf", { sizeOf: "length" as never }, '"length"'],
  ["concurrency", { concurrency: 0 }, "0"],
  ["concurrency", { concurrency: 2.5 }, "2.5"],
  ["concurrency", { concurrency: -Infinity }, "-Infinity"],
  ["concurrency", { concurrency: "2" as never }, '"2"'],
  ["maxBuffered", { maxBuffered: 0 }, "0"],
  ["maxBuffered", { maxBuffered: 10.5 }, "10.5"],
  ["maxBuffered", { flushEvery: 10, maxBuffered: 5 }, "5"],
  ["groupBy", { groupBy: "tenant" as never }, '"tenant"'],
  ["groupBy", { groupBy: 42 as never }, "42"],
  ["dedupeKey", { dedupeKey: { key: "id" } as never }, '{"key":"id"}'],
  ["coalesce", { coalesce: "middle" as never }, '"middle"'],
  ["retry", { retry: 3 as never }, "3"],
  ["retry.attempts", { retry: { attempts: 0 } }, "0"],
  ["retry.attempts", { retry: { attempts: 2.5 } }, "2.5"],
  ["retry.attempts", { retry: { attempts: "3" as never } }, '"3"'],
  ["retry.backoff", { retry: { backoff: "fast" as never } }, '"fast"'],
  ["retry.backoff.type", { retry: { backoff: { type: "linear" as never, delay: 10 } } }, '"linear"'],
  ["retry.backoff.delay", { retry: { backoff: { type: "fixed", delay: -1 } } }, "-1"],
  ["retry.backoff.delay", { retry: { backoff: { type: "fixed" } as Backoff } }, "undefined"],
  ["retry.backoff.delay", { retry: { backoff: { type: "fixed", delay: Infinity } } }, "Infinity"],
  ["retry.backoff.maxDelay", { retry: { backoff: { type: "exponential", delay: 10, maxDelay: -5 } } }, "-5"],
  ["retry.backoff.jitter", { retry: { backoff: { type: "fixed", delay: 10, jitter: 1.5 } } }, "1.5"],
  ["retry.backoff.jitter", { retry: { backoff: { type: "fixed", delay: 10, jitter: -0.1 } } }, "-0.1"],
  ["retry.backoff.jitter", { retry: { backoff: { type: "fixed", delay: 10, jitter: "0.5" as never } } }, '"0.5"'],
  ["handlerTimeout", { handlerTimeout: 0 }, "0"],
  ["handlerTimeout", { handlerTimeout: -100 }, "-100"],
  ["handlerTimeout", { handlerTimeout: Infinity }, "Infinity"],
  ["handlerTimeout", { handlerTimeout: "1s" as never }, '"1s"'],
  ["clock", { clock: 5 as never }, "5"],
  ["clock", { clock: { now: 5 } as never }, '{"now":5}'],
];

describe("option validation", () => {
  it.each(invalidOptions)("resolveOptions rejects %s = %s", async (name, options, got) => {
    expectQuotes(await typeErrorOf(() => resolveOptions(options)), name, got);
  });

  it.each(invalidOptions)("new Batcher rejects %s = %s", async (name, options, got) => {
    expectQuotes(await typeErrorOf(() => new Batcher(options)), name, got);
  });

  it.each(invalidOptions)("batched() rejects %s = %s at construction", async (name, options, got) => {
    expectQuotes(await typeErrorOf(() => batched(noop, options)), name, got);
  });

  it("uses the documented message shape", () => {
    expect(() => resolveOptions({ flushEvery: 0 })).toThrow(new TypeError("[tranche/core] Expected `flushEvery` to be an integer ≥ 1, got 0"));
    expect(() => resolveOptions({ flushInterval: -1 })).toThrow(new TypeError("[tranche/core] Expected `flushInterval` to be a number of ms ≥ 0 or Infinity, got -1"));
    expect(() => resolveOptions({ handlerTimeout: -1 })).toThrow(new TypeError("[tranche/core] Expected `handlerTimeout` to be a number of ms > 0, got -1"));
  });

  const fn = () => {};
  it.each([
    ["options", null, "[tranche/core] Expected `options` to be an object, got null"],
    ["sizeOf", { sizeOf: 5 }, "[tranche/core] Expected `sizeOf` to be a function, got 5"],
    ["maxBatchBytes", { maxBatchBytes: "10", sizeOf: fn }, '[tranche/core] Expected `maxBatchBytes` to be a number of bytes > 0, got "10"'],
    ["sizeOf", { maxBatchBytes: 10 }, "[tranche/core] Expected `sizeOf` to be a function when `maxBatchBytes` is set, got undefined"],
    ["maxBuffered", { flushEvery: 10, maxBuffered: 5 }, "[tranche/core] Expected `maxBuffered` to be an integer ≥ flushEvery (10), got 5"],
    ["coalesce", { coalesce: "middle" }, '[tranche/core] Expected `coalesce` to be "first" or "last", got "middle"'],
    ["retry", { retry: null }, "[tranche/core] Expected `retry` to be an object, got null"],
    ["retry.backoff", { retry: { backoff: null } }, "[tranche/core] Expected `retry.backoff` to be an object, got null"],
    ["retry.backoff", { retry: { backoff: "fast" } }, '[tranche/core] Expected `retry.backoff` to be an object, got "fast"'],
    ["retry.backoff.type", { retry: { backoff: { type: "linear", delay: 10 } } }, '[tranche/core] Expected `retry.backoff.type` to be "fixed" or "exponential", got "linear"'],
    ["retry.backoff.jitter", { retry: { backoff: { type: "fixed", delay: 10, jitter: 1.5 } } }, "[tranche/core] Expected `retry.backoff.jitter` to be a number from 0 to 1, got 1.5"],
    ["clock", { clock: null }, "[tranche/core] Expected `clock` to be a Clock with now, setTimer and clearTimer, got null"],
    ["clock", { clock: "system" }, '[tranche/core] Expected `clock` to be a Clock with now, setTimer and clearTimer, got "system"'],
    ["clock", { clock: { setTimer: fn, clearTimer: fn } }, "[tranche/core] Expected `clock` to be a Clock with now, setTimer and clearTimer, got {}"],
    ["clock", { clock: { now: fn, clearTimer: fn } }, "[tranche/core] Expected `clock` to be a Clock with now, setTimer and clearTimer, got {}"],
    ["clock", { clock: { now: fn, setTimer: fn } }, "[tranche/core] Expected `clock` to be a Clock with now, setTimer and clearTimer, got {}"],
    [
      "clock (an object, not a function that carries the methods)",
      { clock: Object.assign(function clock() {}, { now: fn, setTimer: fn, clearTimer: fn }) },
      "[tranche/core] Expected `clock` to be a Clock with now, setTimer and clearTimer, got function clock",
    ],
  ])("says what %s must be: %j", (_, options, message) => {
    expect(() => resolveOptions(options as never)).toThrow(new TypeError(message));
  });

  it("says what batched()'s handler and onFull and a call's id must be", async () => {
    expect(() => batched(noop, { onFull: "drop" as never })).toThrow(new TypeError('[tranche/core] Expected `onFull` to be "wait" or "reject", got "drop"'));
    expect(() => batched(42 as never)).toThrow(new TypeError("[tranche/core] Expected `handler` to be a function, got 42"));
    const fn = batched<string>(noop, { clock: new SimulatedClock() });
    await expect(fn("x", { id: 7 as never })).rejects.toThrow(new TypeError("[tranche/core] Expected `id` to be a string, got 7"));
  });

  it("rejects options that are not an object", async () => {
    expectQuotes(await typeErrorOf(() => resolveOptions(5 as never)), "options", "5");
    expectQuotes(await typeErrorOf(() => batched(noop, "fast" as never)), "options", '"fast"');
  });

  it("batched() rejects a handler that is not a function", async () => {
    expectQuotes(await typeErrorOf(() => batched(42 as never)), "handler", "42");
  });

  it("batched() rejects an unknown onFull", async () => {
    expectQuotes(await typeErrorOf(() => batched(noop, { onFull: "drop" as never })), "onFull", '"drop"');
    expect(() => batched(noop, { onFull: "reject" })).not.toThrow();
    expect(() => batched(noop, { onFull: "wait" })).not.toThrow();
  });

  it("a call rejects a bad per-call delay", async () => {
    const clock = new SimulatedClock();
    const fn = batched<string>(noop, { clock });
    for (const [delay, got] of [
      [-1, "-1"],
      [Number.NaN, "NaN"],
      [Infinity, "Infinity"],
      ["10", '"10"'],
    ] as const) {
      const call = fn("x", { delay: delay as number });
      expectQuotes(await typeErrorOf(() => call), "delay", got);
    }
    expect(fn.stats.items.accepted).toBe(0);
    expect(clock.pendingTimers).toBe(0);
  });

  it("a call rejects a per-call id that is not a string", async () => {
    const clock = new SimulatedClock();
    const fn = batched<string>(noop, { clock });
    const call = fn("x", { id: 7 as never });
    expectQuotes(await typeErrorOf(() => call), "id", "7");
    expect(fn.stats.items.accepted).toBe(0);
  });

  it("close() rejects a bad timeout", async () => {
    const clock = new SimulatedClock();
    const fn = batched<string>(noop, { clock });
    expectQuotes(await typeErrorOf(() => fn.close({ timeout: -1 })), "timeout", "-1");
    expectQuotes(await typeErrorOf(() => fn.close({ timeout: Number.NaN })), "timeout", "NaN");
    expectQuotes(await typeErrorOf(() => fn.close({ timeout: "5s" as never })), "timeout", '"5s"');
    // A rejected close() did not close.
    const ok = fn("still open");
    await clock.advance(1000);
    await expect(ok).resolves.toBeUndefined();
  });

  it("accepts the documented edge values", () => {
    expect(() =>
      resolveOptions<string>({
        flushEvery: 1,
        flushInterval: 0,
        concurrency: Infinity,
        maxBuffered: 1,
        maxBatchBytes: Infinity,
        retry: { attempts: Infinity, backoff: { type: "exponential", delay: 0, maxDelay: 0, jitter: 1 } },
        handlerTimeout: 1,
        clock: new SimulatedClock(),
      }),
    ).not.toThrow();
    expect(resolveOptions({ flushInterval: Infinity }).flushInterval).toBe(Infinity);
    expect(resolveOptions({ retry: { backoff: { type: "fixed", delay: 5, jitter: 0 } } }).backoff.jitter).toBe(0);
  });
});

describe("defaults", () => {
  it.each([undefined, {}])("resolveOptions(%s) applies the documented defaults", (options) => {
    const resolved = resolveOptions(options);
    expect(resolved).toMatchObject({
      flushEvery: 100,
      flushInterval: 1000,
      concurrency: 1,
      maxBuffered: 1000,
      coalesce: "first",
      attempts: 1,
      maxBatchBytes: Infinity,
      handlerTimeout: undefined,
      groupBy: undefined,
      dedupeKey: undefined,
      sizeOf: undefined,
    });
    expect(resolved.backoff).toEqual({ type: "fixed", delay: 0, maxDelay: Infinity, jitter: 0 });
  });

  it("maxBuffered defaults to 10 × flushEvery", () => {
    expect(resolveOptions({ flushEvery: 7 }).maxBuffered).toBe(70);
    expect(resolveOptions({ flushEvery: 1 }).maxBuffered).toBe(10);
    expect(resolveOptions({ flushEvery: 7, maxBuffered: 9 }).maxBuffered).toBe(9);
  });

  it("backoff fills maxDelay and jitter", () => {
    expect(resolveOptions({ retry: { attempts: 3, backoff: { type: "exponential", delay: 50 } } })).toMatchObject({
      attempts: 3,
      backoff: { type: "exponential", delay: 50, maxDelay: Infinity, jitter: 0 },
    });
  });

  it("given values pass through", () => {
    const groupBy = (p: string) => p;
    expect(resolveOptions<string>({ flushEvery: 3, flushInterval: 20, concurrency: 4, coalesce: "last", groupBy, handlerTimeout: 9 })).toMatchObject({
      flushEvery: 3,
      flushInterval: 20,
      concurrency: 4,
      coalesce: "last",
      groupBy,
      handlerTimeout: 9,
    });
  });
});

describe("backoffDelay", () => {
  const full = (backoff: Backoff): Required<Backoff> => ({ maxDelay: Infinity, jitter: 0, ...backoff });

  it("fixed: the same delay after every attempt", () => {
    const fixed = full({ type: "fixed", delay: 250 });
    expect([1, 2, 3, 10].map((attempt) => backoffDelay(fixed, attempt))).toEqual([250, 250, 250, 250]);
  });

  it("exponential: delay × 2^(attempt − 1)", () => {
    const exp = full({ type: "exponential", delay: 100 });
    expect([1, 2, 3, 4, 5].map((attempt) => backoffDelay(exp, attempt))).toEqual([100, 200, 400, 800, 1600]);
  });

  it("maxDelay caps an exponential delay", () => {
    const exp = full({ type: "exponential", delay: 100, maxDelay: 300 });
    expect([1, 2, 3, 4, 20].map((attempt) => backoffDelay(exp, attempt))).toEqual([100, 200, 300, 300, 300]);
  });

  it("maxDelay caps a fixed delay", () => {
    expect(backoffDelay(full({ type: "fixed", delay: 500, maxDelay: 200 }), 1)).toBe(200);
  });

  it("jitter takes up to its fraction of the delay away, using the injected random", () => {
    const b = full({ type: "fixed", delay: 1000, jitter: 0.5 });
    expect(backoffDelay(b, 1, () => 0)).toBe(1000);
    expect(backoffDelay(b, 1, () => 0.5)).toBe(750);
    expect(backoffDelay(b, 1, () => 0.999)).toBeCloseTo(500.5, 5);
    const fullJitter = full({ type: "exponential", delay: 100, jitter: 1 });
    expect(backoffDelay(fullJitter, 3, () => 0.25)).toBe(300);
  });

  it("jitter applies after the maxDelay cap", () => {
    const b = full({ type: "exponential", delay: 100, maxDelay: 300, jitter: 0.5 });
    expect(backoffDelay(b, 10, () => 0.5)).toBe(225);
  });

  it("without jitter it does not draw a random number", () => {
    const random = vi.fn(() => 0.5);
    backoffDelay(full({ type: "exponential", delay: 100 }), 2, random);
    expect(random).not.toHaveBeenCalled();
  });

  it("defaults to Math.random, staying within [delay × (1 − jitter), delay]", () => {
    const b = full({ type: "fixed", delay: 1000, jitter: 0.3 });
    for (let i = 0; i < 50; i++) {
      const d = backoffDelay(b, 1);
      expect(d).toBeGreaterThan(700 - 1e-9);
      expect(d).toBeLessThanOrEqual(1000);
    }
  });
});

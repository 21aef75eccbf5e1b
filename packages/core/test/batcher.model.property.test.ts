/**
 * Model-based test of `Batcher` (fast-check `fc.commands`): random option sets and
 * random command lists run against the Batcher and against the reference model in
 * `support/batcher-model.ts`. After every command the two must agree on every
 * output and on `stats` and `nextWake()`, and every invariant of SPEC §5 that
 * applies at that point is checked on what the Batcher handed over.
 *
 * Runs: FC_RUNS (default 500); FC_SEED replays a failure.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { fcRuns } from "../../../scripts/fc-runs.js";
import { BatcherModel, type ModelBatch } from "./support/batcher-model.js";
import {
  type AddSpec,
  addSpecWithOversize,
  batcherOptions,
  crossGroupOptionSpec,
  manyKeysOptionSpec,
  modelOptions,
  type OptionSpec,
  optionSpec,
  type Payload,
  payloadOf,
  thresholdSpec,
} from "./support/model-options.js";
import type { Thresholds } from "../src/batcher.js";
import { type BatchView, type Call, type Outcome, RecordingBatcher, replay } from "./support/model-recorder.js";

const numRuns = fcRuns(500);
const seed = process.env.FC_SEED === undefined ? undefined : Number(process.env.FC_SEED);

interface World {
  readonly spec: OptionSpec;
  readonly model: BatcherModel<Payload>;
  now: number;
  ids: number;
}

/**
 * What the Batcher's outputs alone say about each item: used for I1 (each item is
 * handed over only while held, and ends with exactly one outcome) and I6 (never
 * handed over before the `notBefore` it was given).
 */
class Observer {
  private readonly items = new Map<string, { state: "held" | "inFlight" | "done"; outcomes: number; notBefore: number; mergedInto?: string }>();

  accepted(id: string, notBefore: number): void {
    expect(this.items.has(id), `id ${id} is new`).toBe(false);
    this.items.set(id, { state: "held", outcomes: 0, notBefore });
  }

  merged(id: string, survivor: string): void {
    const seen = this.items.get(id);
    if (seen === undefined) this.items.set(id, { state: "done", outcomes: 0, notBefore: Infinity, mergedInto: survivor });
    else Object.assign(seen, { state: "done", mergedInto: survivor });
  }

  handedOver(batch: BatchView, now: number): void {
    for (const item of batch.items) {
      const seen = this.items.get(item.id);
      // I1: only a held item can be handed over: never one in flight (in two batches) or done (duplicated).
      expect(seen?.state, `item ${item.id} handed over in batch ${batch.id}`).toBe("held");
      // I6 (and the add's delay): not before its notBefore.
      expect(now, `item ${item.id} handed over before its notBefore`).toBeGreaterThanOrEqual((seen as { notBefore: number }).notBefore);
      (seen as { state: string }).state = "inFlight";
    }
  }

  settled(id: string, outcome: "acked" | "failed" | "evicted" | "removed"): void {
    const seen = this.items.get(id);
    expect(seen?.state, `item ${id} settled`).toBe(outcome === "evicted" ? "held" : "inFlight");
    Object.assign(seen as object, { state: "done", outcomes: (seen as { outcomes: number }).outcomes + 1 });
  }

  retried(id: string, notBefore: number): void {
    const seen = this.items.get(id);
    expect(seen?.state, `item ${id} retried`).toBe("inFlight");
    Object.assign(seen as object, { state: "held", notBefore });
  }

  /** A retry absorbed by a buffered item with the same key: no outcome of its own, it takes the survivor's. */
  retriedInto(id: string, survivor: string): void {
    const seen = this.items.get(id);
    expect(seen?.state, `item ${id} retried`).toBe("inFlight");
    Object.assign(seen as object, { state: "done", mergedInto: survivor });
  }

  /** I1: every item reached exactly one terminal outcome (merged ones through their survivor). */
  expectAllSettledOnce(): void {
    for (const [id, seen] of this.items) {
      let root = seen;
      const path = [id];
      while (root.mergedInto !== undefined) {
        path.push(root.mergedInto);
        root = this.items.get(root.mergedInto) as typeof root;
      }
      expect(root.state, `outcome of ${path.join(" -> ")}`).toBe("done");
      expect(root.outcomes, `outcomes of ${path.join(" -> ")}`).toBe(1);
    }
  }
}

interface Real {
  readonly rec: RecordingBatcher;
  readonly seen: Observer;
}

/** What a model call gave, in the shape `perform` gives the Batcher's. */
function outcomeOf<V>(fn: () => V): Outcome {
  try {
    return { value: fn() };
  } catch (error) {
    return { error: (error as Error).name };
  }
}

function expectedBatch(model: BatcherModel<Payload>, batch: ModelBatch): BatchView {
  return {
    id: batch.id,
    reason: batch.reason,
    group: batch.group,
    items: batch.itemIds.map((id) => {
      const item = model.items.get(id);
      if (item === undefined) throw new Error(`model lost ${id}`);
      return { id, payload: { ...item.payload }, attempt: item.attempt, enqueuedAt: item.enqueuedAt, notBefore: item.notBefore };
    }),
  };
}

/** Checks that hold after any command. */
function checkState(w: World, r: Real): void {
  const { model } = w;
  const options = model.options;
  const stats = r.rec.batcher.stats;
  expect(stats).toEqual(model.stats());
  const wake = r.rec.run({ op: "nextWake" });
  expect(wake).toEqual({ value: model.nextWake() });
  // I7 concurrency
  expect(stats.inFlightBatches).toBeLessThanOrEqual(options.concurrency);
  // I8 capacity (held = eligible + delayed)
  expect(stats.held).toBeLessThanOrEqual(options.maxBuffered);
  // I13 idle: nothing held, no wake-up
  if (stats.held === 0) expect(wake).toEqual({ value: undefined });
}

/** Polls both at `now` and checks the batches (I1, I2, I5, I6, I9, I10, I11) and what is left (I3, I4). */
function pollBoth(w: World, r: Real, now: number): BatchView[] {
  const { model } = w;
  const options = model.options;
  const actual = r.rec.run({ op: "poll", now });
  const expected = model.poll(now).map((batch) => expectedBatch(model, batch));
  expect(actual).toEqual({ value: expected });
  const batches = expected;
  const keys = new Set<string>();
  const handedByGroup = new Map<string | undefined, string[]>();
  for (const batch of batches) {
    r.seen.handedOver(batch, now);
    // I2 size
    expect(batch.items.length).toBeGreaterThanOrEqual(1);
    expect(batch.items.length).toBeLessThanOrEqual(options.flushEvery);
    if (options.sizeOf !== undefined) {
      expect(batch.items.reduce((sum, item) => sum + item.payload.s, 0)).toBeLessThanOrEqual(options.maxBatchBytes);
    }
    // I5 no early flush
    const oldest = batch.items[0] as BatchView["items"][number];
    if (batch.reason === "interval") expect(now - oldest.notBefore).toBeGreaterThanOrEqual(options.flushInterval);
    if (batch.reason === "count") expect(batch.items.length).toBe(options.flushEvery);
    for (const item of batch.items) {
      // I10 groups
      expect(options.groupBy?.(item.payload)).toBe(batch.group);
      // I11 coalescing: items buffered together have distinct keys
      if (options.dedupeKey !== undefined) {
        const key = options.dedupeKey(item.payload);
        expect(keys.has(key), `two buffered items with key ${key}`).toBe(false);
        keys.add(key);
      }
      expect(item.notBefore).toBeLessThanOrEqual(now);
    }
    let handed = handedByGroup.get(batch.group);
    if (handed === undefined) handedByGroup.set(batch.group, (handed = []));
    handed.push(...batch.items.map((item) => item.id));
  }
  // I9 order: per group, what was handed over, then what is still eligible, is in eligibility order.
  const left = new Map(model.groups().map((group) => [group.key, group.items.map((item) => item.id)]));
  for (const [group, handed] of handedByGroup) {
    const sequence = [...handed, ...(left.get(group) ?? [])].map((id) => model.items.get(id) as { notBefore: number; seq: number });
    for (let i = 1; i < sequence.length; i++) {
      const a = sequence[i - 1] as { notBefore: number; seq: number };
      const b = sequence[i] as { notBefore: number; seq: number };
      expect(a.notBefore < b.notBefore || (a.notBefore === b.notBefore && a.seq < b.seq), `eligibility order in group ${group}`).toBe(true);
    }
  }
  if (model.flights.length < options.concurrency) {
    // A slot is still free, so no trigger may be left pending.
    for (const group of model.groups()) {
      const first = group.items[0] as { notBefore: number };
      expect(group.items.length, "I3 promptness: a full group is left with a free slot").toBeLessThan(options.flushEvery);
      expect(first.notBefore + options.flushInterval, "I4 latency: an item is past its deadline with a free slot").toBeGreaterThan(now);
      expect(model.bytes(group.items)).toBeLessThan(options.maxBatchBytes);
      expect(group.items.some((item) => item.forced), "a flush() is left unfinished with a free slot").toBe(false);
      expect(model.closed, "an eligible item is left after close() with a free slot").toBe(false);
    }
    // A driver that polls at nextWake() must not spin.
    const wake = r.rec.batcher.nextWake();
    if (wake !== undefined) expect(wake).toBeGreaterThan(now);
  }
  checkState(w, r);
  return batches;
}

/** Moves time to `target` the way a driver does: a poll at every wake-up on the way, then one at `target`. */
function advanceTo(w: World, r: Real, target: number): void {
  for (;;) {
    const wake = r.rec.batcher.nextWake();
    expect(wake).toBe(w.model.nextWake());
    if (wake === undefined || wake > target) break;
    w.now = Math.max(w.now, wake);
    pollBoth(w, r, w.now);
  }
  w.now = target;
  pollBoth(w, r, w.now);
}

type Settle = "ack" | "fail" | "retry" | "remove";

function settleBoth(w: World, r: Real, batchId: string, itemId: string, how: Settle, delay: number): void {
  const { model } = w;
  const now = w.now;
  if (how === "retry") {
    const notBefore = now + delay;
    const expected = outcomeOf(() => {
      const result = model.retry(batchId, itemId, notBefore, now);
      if (result === "retried") return result;
      const merge = model.coalescedLast as { survivor: string; dropped: Payload };
      return { result, survivor: merge.survivor, dropped: merge.dropped.n };
    });
    const actual = r.rec.run({ op: "retry", batchId, itemId, notBefore, now });
    expect(actual).toEqual(expected);
    if (!("value" in actual)) return;
    if (actual.value === "retried") r.seen.retried(itemId, Math.max(notBefore, now));
    else r.seen.retriedInto(itemId, (actual.value as { survivor: string }).survivor);
  } else {
    const expected = outcomeOf(() => model[how](batchId, itemId, now));
    const actual = r.rec.run({ op: how, batchId, itemId, now });
    expect(actual).toEqual(expected);
    if ("value" in actual) r.seen.settled(itemId, how === "ack" ? "acked" : how === "fail" ? "failed" : "removed");
  }
}

// ---- commands ----

type Cmd = fc.Command<World, Real>;

/** An add; after `close()` (the `afterClose` variant) it must throw `ClosedError` and change nothing. */
class AddCommand implements Cmd {
  constructor(
    readonly add: AddSpec,
    readonly afterClose = false,
  ) {}
  check(w: Readonly<World>): boolean {
    return w.model.closed === this.afterClose;
  }
  run(w: World, r: Real): void {
    const n = ++w.ids;
    const id = `i${n}`;
    const payload = payloadOf(w.spec, this.add, n);
    const now = w.now;
    const notBefore = this.add.delay === 0 ? undefined : now + this.add.delay;
    const expected = outcomeOf(() => {
      const result = w.model.add(id, payload, notBefore, 1, now);
      if (result !== "coalesced") return result;
      const merge = w.model.coalescedLast as { survivor: string; dropped: Payload };
      return { result, survivor: merge.survivor, dropped: merge.dropped.n };
    });
    const actual = r.rec.run({ op: "add", id, payload, notBefore, attempt: undefined, now });
    expect(actual).toEqual(expected);
    if ("value" in actual) {
      if (actual.value === "accepted") r.seen.accepted(id, Math.max(notBefore ?? now, now));
      else if (actual.value !== "full") r.seen.merged(id, (actual.value as { survivor: string }).survivor);
    }
    checkState(w, r);
  }
  toString(): string {
    return `${this.afterClose ? "addAfterClose" : "add"}(${JSON.stringify(this.add)})`;
  }
}

class AdvanceCommand implements Cmd {
  constructor(readonly ms: number) {}
  check(): boolean {
    return true;
  }
  run(w: World, r: Real): void {
    advanceTo(w, r, w.now + this.ms);
  }
  toString(): string {
    return `advance(${this.ms})`;
  }
}

class PollCommand implements Cmd {
  check(): boolean {
    return true;
  }
  run(w: World, r: Real): void {
    pollBoth(w, r, w.now);
  }
  toString(): string {
    return "poll";
  }
}

class SettleCommand implements Cmd {
  constructor(
    readonly batch: number,
    readonly item: number,
    readonly how: Settle,
    readonly delay: number,
  ) {}
  check(w: Readonly<World>): boolean {
    return w.model.flights.length > 0;
  }
  run(w: World, r: Real): void {
    const flight = w.model.flights[this.batch % w.model.flights.length] as ModelBatch;
    const unsettled = flight.itemIds.filter((id) => flight.unsettled.has(id));
    settleBoth(w, r, flight.id, unsettled[this.item % unsettled.length] as string, this.how, this.delay);
    checkState(w, r);
  }
  toString(): string {
    return `settle(batch#${this.batch}, item#${this.item}, ${this.how}${this.how === "retry" ? ` +${this.delay}` : ""})`;
  }
}

class SettleBatchCommand implements Cmd {
  constructor(
    readonly batch: number,
    readonly hows: Settle[],
    readonly delay: number,
  ) {}
  check(w: Readonly<World>): boolean {
    return w.model.flights.length > 0;
  }
  run(w: World, r: Real): void {
    const flight = w.model.flights[this.batch % w.model.flights.length] as ModelBatch;
    const unsettled = flight.itemIds.filter((id) => flight.unsettled.has(id));
    unsettled.forEach((id, i) => settleBoth(w, r, flight.id, id, this.hows[i % this.hows.length] as Settle, this.delay));
    checkState(w, r);
  }
  toString(): string {
    return `settleBatch(batch#${this.batch}, ${this.hows.join("/")} +${this.delay})`;
  }
}

/** Settling an item twice, or in a batch that is not in flight, throws `SettledError` and changes nothing. */
class SettleAgainCommand implements Cmd {
  constructor(
    readonly batch: number,
    readonly how: Settle,
  ) {}
  check(): boolean {
    return true;
  }
  run(w: World, r: Real): void {
    const flights = w.model.flights.filter((f) => f.unsettled.size < f.itemIds.length);
    const flight = flights[this.batch % Math.max(1, flights.length)];
    const batchId = flight?.id ?? `${1_000_000 + this.batch}`;
    const itemId = flight?.itemIds.find((id) => !flight.unsettled.has(id)) ?? "i1";
    const before = r.rec.batcher.stats;
    const call: Call =
      this.how === "retry" ? { op: "retry", batchId, itemId, notBefore: w.now, now: w.now } : { op: this.how, batchId, itemId, now: w.now };
    expect(r.rec.run(call)).toEqual({ error: "SettledError" });
    expect(r.rec.batcher.stats, "a refused settle changes no counter").toEqual(before);
    checkState(w, r);
  }
  toString(): string {
    return `settleAgain(batch#${this.batch}, ${this.how})`;
  }
}

/** `flush()` or `close()`, optionally followed by a poll. */
class FlushOrCloseCommand implements Cmd {
  constructor(
    readonly op: "flush" | "close",
    readonly thenPoll: boolean,
  ) {}
  check(): boolean {
    return true;
  }
  run(w: World, r: Real): void {
    expect(r.rec.run({ op: this.op, now: w.now })).toEqual(outcomeOf(() => w.model[this.op](w.now)));
    checkState(w, r);
    if (this.thenPoll) pollBoth(w, r, w.now);
  }
  toString(): string {
    return this.thenPoll ? `${this.op}+poll` : this.op;
  }
}

class EvictCommand implements Cmd {
  check(): boolean {
    return true;
  }
  run(w: World, r: Real): void {
    const expected = w.model.evict(w.now).map((item) => item.id);
    const actual = r.rec.run({ op: "evict", now: w.now });
    expect(actual).toEqual({ value: expected });
    for (const id of expected) r.seen.settled(id, "evicted"); // a driver fails them with ClosedError
    checkState(w, r);
  }
  toString(): string {
    return "evict";
  }
}

const settleHow = fc.constantFrom<Settle>("ack", "ack", "fail", "retry", "retry", "remove");
const retryDelay = fc.oneof({ weight: 1, arbitrary: fc.constant(0) }, { weight: 4, arbitrary: fc.integer({ min: -5, max: 60 }) });

const command: fc.Arbitrary<Cmd> = fc.oneof(
  { weight: 24, arbitrary: addSpecWithOversize.map((a) => new AddCommand(a)) },
  { weight: 1, arbitrary: addSpecWithOversize.map((a) => new AddCommand(a, true)) },
  { weight: 8, arbitrary: fc.integer({ min: 1, max: 60 }).map((ms) => new AdvanceCommand(ms)) },
  { weight: 4, arbitrary: fc.constant(new PollCommand()) },
  { weight: 8, arbitrary: fc.tuple(fc.nat(7), fc.nat(7), settleHow, retryDelay).map(([b, i, how, d]) => new SettleCommand(b, i, how, d)) },
  { weight: 6, arbitrary: fc.tuple(fc.nat(7), fc.array(settleHow, { minLength: 1, maxLength: 4 }), retryDelay).map(([b, hows, d]) => new SettleBatchCommand(b, hows, d)) },
  { weight: 1, arbitrary: fc.tuple(fc.nat(7), settleHow).map(([b, how]) => new SettleAgainCommand(b, how)) },
  { weight: 3, arbitrary: fc.boolean().map((p) => new FlushOrCloseCommand("flush", p)) },
  { weight: 1, arbitrary: fc.boolean().map((p) => new FlushOrCloseCommand("close", p)) },
  { weight: 1, arbitrary: fc.constant(new EvictCommand()) },
);

/** I12: after close, settling what is handed over and polling at every wake-up empties the Batcher. */
function closeAndDrain(w: World, r: Real): void {
  if (!w.model.closed) {
    expect(r.rec.run({ op: "close", now: w.now })).toEqual(outcomeOf(() => w.model.close(w.now)));
    checkState(w, r);
  }
  for (let round = 0; ; round++) {
    expect(round, "close() drains in a bounded number of rounds").toBeLessThan(10_000);
    pollBoth(w, r, w.now);
    for (const flight of [...w.model.flights]) {
      for (const id of flight.itemIds.filter((i) => flight.unsettled.has(i))) settleBoth(w, r, flight.id, id, "ack", 0);
    }
    checkState(w, r);
    const stats = r.rec.batcher.stats;
    if (stats.held === 0 && stats.inFlightBatches === 0) break;
    const wake = r.rec.batcher.nextWake();
    expect(wake, "something is left after close() but no wake-up is scheduled").not.toBeUndefined();
    w.now = Math.max(w.now, wake as number);
  }
  expect(r.rec.batcher.stats).toMatchObject({ held: 0, eligible: 0, delayed: 0, inFlight: 0, inFlightBatches: 0 });
  expect(r.rec.batcher.nextWake()).toBeUndefined();
  // I1 conservation, over the whole run.
  r.seen.expectAllSettledOnce();
}

describe("Batcher against its reference model", () => {
  const cases = [
    { name: "with its default thresholds", specs: fc.oneof(optionSpec(), crossGroupOptionSpec()), thresholds: fc.constant({}) },
    // More groups and keys than the thresholds: every sweep and queue compaction runs, delayed items held meanwhile.
    { name: "with sweep and compaction thresholds at 2–4", specs: fc.oneof(manyKeysOptionSpec(), crossGroupOptionSpec()), thresholds: thresholdSpec },
  ];
  for (const { name, specs, thresholds: thresholdsArb } of cases) {
    it(`agrees with the model on every output and keeps I1–I14 after every command, ${name} (${numRuns} runs)`, () => {
      fc.assert(
        fc.property(specs, thresholdsArb, fc.commands([command], { maxCommands: 120, size: "max" }), (spec, thresholds: Partial<Thresholds>, commands) => {
          const options = batcherOptions(spec);
          const w: World = { spec, model: new BatcherModel<Payload>(modelOptions(spec)), now: 0, ids: 0 };
          const r: Real = { rec: new RecordingBatcher(options, thresholds), seen: new Observer() };
          fc.modelRun(() => ({ model: w, real: r }), commands);
          // I12 and I1 over the whole run: close, settle everything, nothing is left.
          closeAndDrain(w, r);
          // I14 determinism: the same calls at the same times on a fresh Batcher give the same results.
          expect(replay(options, r.rec.log, thresholds)).toEqual(r.rec.log);
        }),
        { numRuns, ...(seed === undefined ? {} : { seed }) },
      );
    });
  }
});

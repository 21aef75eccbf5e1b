/**
 * Runs a random program against a `Batcher` the way a driver does (poll after each
 * step and at every `nextWake()`), and tracks every item from the Batcher's outputs
 * alone: no reference model, so each invariant test checks its own rule on top.
 */
import fc from "fast-check";
import type { BatcherStats } from "../../src/batcher-api.js";
import type { ModelOptions } from "./batcher-model.js";
import { type AddSpec, addSpec, batcherOptions, modelOptions, type OptionSpec, type Payload, payloadOf } from "./model-options.js";
import { type BatchView, type Outcome, RecordingBatcher } from "./model-recorder.js";

export type Settle = "ack" | "fail" | "retry";

export type Step =
  | { readonly kind: "add"; readonly add: AddSpec; /** poll right after, as a driver's next tick would */ readonly poll: boolean }
  | { readonly kind: "advance"; readonly ms: number }
  | { readonly kind: "settle"; readonly batch: number; readonly item: number; readonly how: Settle; readonly delay: number }
  | { readonly kind: "settleBatch"; readonly batch: number; readonly hows: readonly Settle[]; readonly delay: number }
  | { readonly kind: "settleAgain"; readonly batch: number; readonly item: number; readonly how: Settle }
  | { readonly kind: "flush" }
  | { readonly kind: "close" };

export interface StepWeights {
  add?: number;
  advance?: number;
  settle?: number;
  /** Settling an item a second time through the batch it was already settled in. */
  settleAgain?: number;
  flush?: number;
  close?: number;
  /** Settle mostly by retry. */
  retries?: boolean;
}

export function steps(weights: StepWeights = {}, maxLength = 80, add: fc.Arbitrary<AddSpec> = addSpec): fc.Arbitrary<Step[]> {
  const how = weights.retries === true ? fc.constantFrom<Settle>("ack", "fail", "retry", "retry", "retry", "retry") : fc.constantFrom<Settle>("ack", "fail", "retry", "retry");
  const delay = fc.integer({ min: -5, max: 60 });
  const step = fc.oneof(
    { weight: weights.add ?? 10, arbitrary: fc.record({ kind: fc.constant("add" as const), add, poll: fc.boolean() }) },
    { weight: weights.advance ?? 4, arbitrary: fc.record({ kind: fc.constant("advance" as const), ms: fc.integer({ min: 1, max: 60 }) }) },
    { weight: weights.settle ?? 4, arbitrary: fc.record({ kind: fc.constant("settle" as const), batch: fc.nat(7), item: fc.nat(7), how, delay }) },
    {
      weight: weights.settle ?? 4,
      arbitrary: fc.record({ kind: fc.constant("settleBatch" as const), batch: fc.nat(7), hows: fc.array(how, { minLength: 1, maxLength: 3 }), delay }),
    },
    { weight: weights.settleAgain ?? 0, arbitrary: fc.record({ kind: fc.constant("settleAgain" as const), batch: fc.nat(7), item: fc.nat(7), how }) },
    { weight: weights.flush ?? 1, arbitrary: fc.constant({ kind: "flush" as const }) },
    { weight: weights.close ?? 0, arbitrary: fc.constant({ kind: "close" as const }) },
  );
  return fc.array(step, { maxLength, size: "max" });
}

export interface Tracked {
  readonly id: string;
  payload: Payload;
  state: "held" | "inFlight" | "done" | "merged";
  /** When it became (or becomes) eligible, as the Batcher was asked: max(notBefore, now). */
  eligibleAt: number;
  /** Order of entering the buffer (add or retry): the tie-break of equal `eligibleAt`. */
  seq: number;
  /** The `notBefore` of its last retry, and when that retry was made. */
  retry: { at: number; notBefore: number } | undefined;
  mergedInto: string | undefined;
  outcomes: number;
  /** Batches it was handed over in, with the time. */
  handed: { batch: string; at: number }[];
}

export interface Hooks {
  /** After an add, with its outcome. */
  add?(sim: Sim, id: string, payload: Payload, outcome: Outcome, statsBefore: BatcherStats): void;
  /** For each batch handed over, before the tracker marks its items in flight. */
  batch?(sim: Sim, batch: BatchView, at: number): void;
  /** After a second settle of an item, with its outcome and the stats before it. */
  settleAgain?(sim: Sim, outcome: Outcome, statsBefore: BatcherStats): void;
  /** After each poll and the tracker's update. */
  afterPoll?(sim: Sim, at: number, batches: readonly BatchView[]): void;
  /** After each step, and after each round of the final drain. */
  afterStep?(sim: Sim): void;
}

export class Sim {
  readonly rec: RecordingBatcher;
  readonly options: ModelOptions<Payload>;
  readonly items = new Map<string, Tracked>();
  /** In-flight batches, oldest first, with their unsettled item ids. */
  readonly flights: { batch: BatchView; unsettled: Set<string> }[] = [];
  now = 0;
  closed = false;
  /** Polls at a `nextWake()` ≤ now that handed nothing over (a driver would spin). */
  spins = 0;
  private ids = 0;
  private seq = 0;

  constructor(
    readonly spec: OptionSpec,
    readonly hooks: Hooks = {},
  ) {
    this.rec = new RecordingBatcher(batcherOptions(spec));
    this.options = modelOptions(spec);
  }

  get stats(): BatcherStats {
    return this.rec.batcher.stats;
  }

  nextWake(): number | undefined {
    return this.rec.batcher.nextWake();
  }

  groupOf(payload: Payload): string | undefined {
    return this.options.groupBy?.(payload);
  }

  /** Held items the tracker believes eligible now, by group, in eligibility order. */
  eligibleByGroup(): Map<string | undefined, Tracked[]> {
    const out = new Map<string | undefined, Tracked[]>();
    const held = [...this.items.values()].filter((item) => item.state === "held" && item.eligibleAt <= this.now);
    held.sort((a, b) => a.eligibleAt - b.eligibleAt || a.seq - b.seq);
    for (const item of held) {
      const key = this.groupOf(item.payload);
      out.set(key, [...(out.get(key) ?? []), item]);
    }
    return out;
  }

  held(): Tracked[] {
    return [...this.items.values()].filter((item) => item.state === "held");
  }

  freeSlot(): boolean {
    return this.stats.inFlightBatches < this.options.concurrency;
  }

  run(program: readonly Step[]): void {
    for (const step of program) {
      this.step(step);
      this.hooks.afterStep?.(this);
    }
  }

  step(step: Step): void {
    switch (step.kind) {
      case "add":
        this.add(step.add);
        if (step.poll) this.poll();
        return;
      case "advance":
        this.advanceTo(this.now + step.ms);
        return;
      case "settle": {
        const flight = this.flights[step.batch % Math.max(1, this.flights.length)];
        if (flight === undefined) return;
        const ids = [...flight.unsettled];
        this.settle(flight.batch.id, ids[step.item % ids.length] as string, step.how, step.delay);
        this.poll();
        return;
      }
      case "settleBatch": {
        const flight = this.flights[step.batch % Math.max(1, this.flights.length)];
        if (flight === undefined) return;
        [...flight.unsettled].forEach((id, i) => this.settle(flight.batch.id, id, step.hows[i % step.hows.length] as Settle, step.delay));
        this.poll();
        return;
      }
      case "settleAgain": {
        const flights = this.flights.filter((f) => f.unsettled.size < f.batch.items.length);
        const flight = flights[step.batch % Math.max(1, flights.length)];
        if (flight === undefined) return;
        const settled = flight.batch.items.filter((item) => !flight.unsettled.has(item.id));
        const itemId = (settled[step.item % settled.length] as { id: string }).id;
        const before = this.stats;
        const batchId = flight.batch.id;
        const outcome =
          step.how === "retry"
            ? this.rec.run({ op: "retry", batchId, itemId, notBefore: this.now, now: this.now })
            : this.rec.run({ op: step.how, batchId, itemId, now: this.now });
        this.hooks.settleAgain?.(this, outcome, before);
        return;
      }
      case "flush":
        this.rec.run({ op: "flush", now: this.now });
        this.poll();
        return;
      case "close":
        this.rec.run({ op: "close", now: this.now });
        this.closed = true;
        this.poll();
        return;
    }
  }

  add(spec: AddSpec, attempt?: number): { id: string; outcome: Outcome } {
    const n = ++this.ids;
    const id = `i${n}`;
    const payload = payloadOf(this.spec, spec, n);
    const notBefore = spec.delay === 0 ? undefined : this.now + spec.delay;
    const before = this.stats;
    const outcome = this.rec.run({ op: "add", id, payload, notBefore, attempt, now: this.now });
    if ("value" in outcome) {
      if (outcome.value === "accepted") {
        this.items.set(id, {
          id,
          payload,
          state: "held",
          eligibleAt: Math.max(notBefore ?? this.now, this.now),
          seq: ++this.seq,
          retry: undefined,
          mergedInto: undefined,
          outcomes: 0,
          handed: [],
        });
      } else if (outcome.value !== "full") {
        const survivor = (outcome.value as { survivor: string }).survivor;
        this.items.set(id, { id, payload, state: "merged", eligibleAt: Infinity, seq: 0, retry: undefined, mergedInto: survivor, outcomes: 0, handed: [] });
        const kept = this.items.get(survivor);
        if (kept !== undefined && this.options.coalesce === "last") kept.payload = payload;
      }
    }
    this.hooks.add?.(this, id, payload, outcome, before);
    return { id, outcome };
  }

  poll(): BatchView[] {
    const at = this.now;
    const outcome = this.rec.run({ op: "poll", now: at });
    if (!("value" in outcome)) throw new Error(`poll threw ${outcome.error}`);
    const batches = outcome.value as BatchView[];
    for (const batch of batches) {
      this.hooks.batch?.(this, batch, at);
      for (const view of batch.items) {
        const item = this.items.get(view.id);
        if (item === undefined) continue;
        item.state = "inFlight";
        item.handed.push({ batch: batch.id, at });
      }
      this.flights.push({ batch, unsettled: new Set(batch.items.map((item) => item.id)) });
    }
    this.hooks.afterPoll?.(this, at, batches);
    return batches;
  }

  /** A poll at every wake-up up to `target`, then one at `target`. */
  advanceTo(target: number): void {
    for (let i = 0; i < 10_000; i++) {
      const wake = this.nextWake();
      if (wake === undefined || wake > target) break;
      this.now = Math.max(this.now, wake);
      if (this.poll().length === 0 && (this.nextWake() ?? Infinity) <= this.now) {
        this.spins++;
        break;
      }
    }
    this.now = Math.max(this.now, target);
    this.poll();
  }

  settle(batchId: string, itemId: string, how: Settle, delay: number): Outcome {
    const item = this.items.get(itemId);
    const notBefore = this.now + delay;
    const outcome =
      how === "retry"
        ? this.rec.run({ op: "retry", batchId, itemId, notBefore, now: this.now })
        : this.rec.run({ op: how, batchId, itemId, now: this.now });
    if (!("value" in outcome)) return outcome;
    const index = this.flights.findIndex((f) => f.batch.id === batchId);
    const flight = this.flights[index];
    if (flight !== undefined) {
      flight.unsettled.delete(itemId);
      if (flight.unsettled.size === 0) this.flights.splice(index, 1);
    }
    if (item === undefined) return outcome;
    if (how !== "retry") {
      item.state = "done";
      item.outcomes++;
    } else if (outcome.value === "retried") {
      Object.assign(item, { state: "held", eligibleAt: Math.max(notBefore, this.now), seq: ++this.seq, retry: { at: this.now, notBefore } });
    } else {
      Object.assign(item, { state: "merged", mergedInto: (outcome.value as { survivor: string }).survivor });
    }
    return outcome;
  }

  /** Closes, then acks whatever is handed over and polls at every wake-up until nothing is left (bounded). */
  closeAndDrain(): void {
    if (!this.closed) {
      this.rec.run({ op: "close", now: this.now });
      this.closed = true;
    }
    for (let round = 0; round < 1_000; round++) {
      this.poll();
      for (const flight of [...this.flights]) for (const id of [...flight.unsettled]) this.settle(flight.batch.id, id, "ack", 0);
      this.hooks.afterStep?.(this);
      const stats = this.stats;
      if (stats.held === 0 && stats.inFlightBatches === 0) return;
      const wake = this.nextWake();
      if (wake === undefined) return;
      this.now = Math.max(this.now, wake);
    }
  }

  /** The item an id's outcome comes from, following merges. */
  root(id: string): Tracked | undefined {
    let item = this.items.get(id);
    for (let i = 0; item?.mergedInto !== undefined && i < 10_000; i++) item = this.items.get(item.mergedInto);
    return item;
  }
}

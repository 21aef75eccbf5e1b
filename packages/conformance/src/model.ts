import fc from "fast-check";
import type { Transport } from "@tranche/core";
import { expect } from "vitest";
import { LEASE_TOLERANCE, openContext } from "./context.js";
import type { CaseContext, Received } from "./context.js";
import { type ConformanceOptions, envRuns, envSeed } from "./options.js";

/** A delivery the model still holds: it has not been acked, retried or released, nor redelivered. */
interface Handle {
  readonly received: Received;
  readonly consumer: number;
}

interface ModelItem {
  readonly id: string;
  /** Epoch ms before which the item must not be delivered; 0 when nothing is known. */
  notBefore: number;
  /** Acked while its lease surely held: never to be delivered again. */
  acked: boolean;
  /** Must be delivered again before the run ends (false once acked, even maybe-acked). */
  owed: boolean;
  holder: Handle | undefined;
}

/**
 * The reference model: what the transport owes and forbids. Time is uncertain on a real
 * transport, so an ack, retry or release counts as certain only when it finished before the
 * earliest moment its lease could have expired; otherwise the model accepts either outcome.
 */
class Model {
  readonly items = new Map<string, ModelItem>();
  handles: Handle[] = [];
  sent = 0;

  constructor(readonly context: CaseContext) {}

  /** Checks a delivery against the model and makes it the item's holder. */
  observe(received: Received, consumer: number): void {
    const { delivery, at } = received;
    const item = this.items.get(delivery.id);
    expect(item, `delivery of an id never sent: ${delivery.id}`).toBeDefined();
    const model = item as ModelItem;
    expect(model.acked, `${delivery.id} delivered after its ack`).toBe(false);
    if (at < model.notBefore) {
      const heldByWorker = !this.context.capabilities.nativeDelay && (delivery.notBefore ?? 0) >= model.notBefore;
      expect(heldByWorker, `${delivery.id} delivered at ${at}, before its notBefore ${model.notBefore}`).toBe(true);
    }
    const holder = model.holder;
    if (holder !== undefined) {
      const expiresNoEarlierThan = holder.received.start + this.context.lease * LEASE_TOLERANCE;
      expect(at, `${delivery.id} leased twice: held since ${holder.received.start}, delivered again at ${at}`).toBeGreaterThanOrEqual(expiresNoEarlierThan);
      this.drop(holder);
    }
    const handle: Handle = { received, consumer };
    model.holder = handle;
    model.notBefore = 0;
    model.owed = true;
    this.handles.push(handle);
  }

  /** Whether a settle call that finished now surely reached the lease in time. */
  surely(handle: Handle): boolean {
    return this.context.now() < handle.received.start + this.context.lease * LEASE_TOLERANCE;
  }

  drop(handle: Handle): void {
    this.handles = this.handles.filter((h) => h !== handle);
    const item = this.items.get(handle.received.delivery.id);
    if (item?.holder === handle) item.holder = undefined;
  }

  item(handle: Handle): ModelItem {
    return this.items.get(handle.received.delivery.id) as ModelItem;
  }
}

interface Real {
  readonly context: CaseContext;
  readonly consumers: Transport<unknown>[];
}

type Command = fc.AsyncCommand<Model, Real>;

class Send implements Command {
  constructor(readonly delay: number) {}
  check(): boolean {
    return true;
  }
  async run(model: Model, real: Real): Promise<void> {
    const delay = real.context.ms(this.delay);
    const start = real.context.now();
    const options = delay > 0 ? { delay } : {};
    const id = await (real.consumers[0] as Transport<unknown>).send({ n: model.sent++ }, options);
    expect(model.items.has(id), `send returned an id already in use: ${id}`).toBe(false);
    model.items.set(id, { id, notBefore: delay > 0 ? start + delay : 0, acked: false, owed: true, holder: undefined });
  }
  toString(): string {
    return `send(delay ${this.delay})`;
  }
}

class Receive implements Command {
  constructor(readonly consumer: number, readonly max: number) {}
  check(): boolean {
    return true;
  }
  async run(model: Model, real: Real): Promise<void> {
    const max = real.context.max(this.max);
    const received = await real.context.receive(real.consumers[this.consumer] as Transport<unknown>, max);
    for (const r of received) model.observe(r, this.consumer);
  }
  toString(): string {
    return `receive(consumer ${this.consumer}, max ${this.max})`;
  }
}

abstract class Settle implements Command {
  constructor(readonly pick: number) {}
  check(model: Model): boolean {
    return model.handles.length > 0;
  }
  async run(model: Model, real: Real): Promise<void> {
    const handle = model.handles[this.pick % model.handles.length] as Handle;
    await this.settle(handle, model, real);
  }
  abstract settle(handle: Handle, model: Model, real: Real): Promise<void>;
  abstract toString(): string;
}

class Ack extends Settle {
  async settle(handle: Handle, model: Model, real: Real): Promise<void> {
    await (real.consumers[handle.consumer] as Transport<unknown>).ack([handle.received.delivery]);
    const item = model.item(handle);
    if (model.surely(handle)) item.acked = true;
    item.owed = false;
    model.drop(handle);
  }
  toString(): string {
    return `ack(#${this.pick})`;
  }
}

class Retry extends Settle {
  constructor(pick: number, readonly delay: number) {
    super(pick);
  }
  async settle(handle: Handle, model: Model, real: Real): Promise<void> {
    const notBefore = real.context.now() + real.context.ms(this.delay);
    await (real.consumers[handle.consumer] as Transport<unknown>).retry(handle.received.delivery, notBefore);
    const item = model.item(handle);
    // Too late and the lease may have expired first, handing the item out without the delay.
    item.notBefore = model.surely(handle) ? notBefore : 0;
    model.drop(handle);
  }
  toString(): string {
    return `retry(#${this.pick}, delay ${this.delay})`;
  }
}

class Release extends Settle {
  async settle(handle: Handle, model: Model, real: Real): Promise<void> {
    await (real.consumers[handle.consumer] as Transport<unknown>).release([handle.received.delivery]);
    model.drop(handle);
  }
  toString(): string {
    return `release(#${this.pick})`;
  }
}

class Advance implements Command {
  constructor(readonly ms: number) {}
  check(): boolean {
    return true;
  }
  async run(_model: Model, real: Real): Promise<void> {
    await real.context.sleep(real.context.ms(this.ms));
  }
  toString(): string {
    return `advance(${this.ms})`;
  }
}

/** Receives and acks until every owed item came back; fails on whatever the model forbids. */
async function drain(model: Model, real: Real): Promise<void> {
  const { context } = real;
  const consumer = real.consumers[0] as Transport<unknown>;
  const latest = Math.max(context.now(), ...[...model.items.values()].map((item) => item.notBefore));
  const owed = (): ModelItem[] => [...model.items.values()].filter((item) => item.owed);
  // Without leases a held delivery stays with its consumer until settled: give them back first.
  if (!context.capabilities.lease) {
    for (const handle of [...model.handles]) {
      await (real.consumers[handle.consumer] as Transport<unknown>).release([handle.received.delivery]);
      model.drop(handle);
    }
  }
  await context.collect(consumer, {
    done: () => owed().length === 0,
    budget: latest - context.now() + context.lease + context.patience,
    each: async (received) => {
      model.observe(received, 0);
      const handle = model.handles[model.handles.length - 1] as Handle;
      await consumer.ack([received.delivery]);
      const item = model.item(handle);
      if (model.surely(handle)) item.acked = true;
      item.owed = false;
      model.drop(handle);
    },
  });
  expect(owed().map((item) => item.id), "sent, never acked nor delivered again: at-least-once broken").toEqual([]);
}

export interface ModelCheckOptions {
  /** Runs; @default `FC_RUNS`, else options.modelRuns, else 100 on a simulated clock and 5 in real time. */
  runs?: number;
  /** fast-check seed, to replay a failure; @default `FC_SEED` */
  seed?: number;
}

/**
 * The model-based property test: random sequences of send / receive / ack / retry / release /
 * advance on two consumers of one queue, checked against the reference model: nothing delivered
 * after its ack, no delivery before its `notBefore`, no two outstanding leases on one item, and
 * at the end every item neither acked nor dead-lettered is delivered (at-least-once).
 * Resolves when every run passes; rejects with fast-check's report (seed and shrunk commands).
 */
export async function checkTransportModel(options: ConformanceOptions, check: ModelCheckOptions = {}): Promise<void> {
  const simulated = await isSimulated(options);
  const runs = check.runs ?? envRuns() ?? options.modelRuns ?? (simulated ? 100 : 5);
  const seed = check.seed ?? envSeed();
  const delays = fc.constantFrom(0, 0, 300, 1500);
  const send = delays.map((delay) => new Send(delay));
  const receive = fc.tuple(fc.constantFrom(0, 1), fc.integer({ min: 1, max: 5 })).map(([consumer, max]) => new Receive(consumer, max));
  const retry = fc.tuple(fc.nat(), delays).map(([pick, delay]) => new Retry(pick, delay));
  // Listed twice: sends and receives feed the settle commands, which need a held delivery.
  const commands = fc.commands(
    [
      send,
      send,
      receive,
      receive,
      fc.nat().map((pick) => new Ack(pick)),
      retry,
      retry,
      fc.nat().map((pick) => new Release(pick)),
      fc.constantFrom(50, 400, 1200).map((ms) => new Advance(ms)),
    ],
    { maxCommands: simulated ? 50 : 8, size: "max" },
  );
  await fc.assert(
    fc.asyncProperty(commands, async (sequence) => {
      const { context, queue } = await openContext(options);
      try {
        const real: Real = { context, consumers: [context.transport, await queue.connect()] };
        const model = new Model(context);
        await fc.asyncModelRun(() => ({ model, real }), sequence);
        await drain(model, real);
      } finally {
        await queue.close();
      }
    }),
    // In real time a shrink replays minutes of sleeps: report the first failure as it is.
    { numRuns: runs, endOnFailure: !simulated, includeErrorInReport: true, ...(seed === undefined ? {} : { seed }) },
  );
}

async function isSimulated(options: ConformanceOptions): Promise<boolean> {
  const { queue } = await openContext(options);
  try {
    return queue.advance !== undefined;
  } finally {
    await queue.close();
  }
}

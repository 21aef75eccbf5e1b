import fc from "fast-check";
import type { BatchHandler } from "@tranche/core";
import { openContext } from "./context.js";
import { deadLettersOf } from "./expectations.js";
import type { CaseContext } from "./context.js";
import { type FaultCall, type FaultKind, type FaultyTransport, faultKinds, injectFaults } from "./faulty-transport.js";
import { type ConformanceOptions, envRuns, envSeed } from "./options.js";
import { type WorkerConstructor, type WorkerLike, loadWorker } from "./worker-like.js";

/** The transport calls a `Worker` makes, each of which the model faults. */
type WorkerOp = "receive" | "ack" | "retry" | "deadLetter" | "extend" | "release";

/**
 * What the handler does with an item: ack it, retry it once (then ack), or fail it (a dead
 * letter). A "poison" item fails too, and every `deadLetter` of it fails, not retryably, for
 * good (a message the dead-letter target refuses): it must not hold up the other items.
 */
type Behaviour = "ok" | "retry" | "fail" | "poison";

/** One step of a schedule; the run ends with every fault removed and the queue drained. */
export type Step =
  | { readonly s: "send"; readonly items: readonly Behaviour[] }
  /** The next `count` calls of `op` get the fault. */
  | { readonly s: "fault"; readonly op: WorkerOp; readonly kind: FaultKind; readonly count: number }
  /** Every call of `ops` gets the fault until the next `calm` (an outage). */
  | { readonly s: "outage"; readonly ops: readonly WorkerOp[]; readonly kind: FaultKind }
  | { readonly s: "calm" }
  /** Suite ms pass. */
  | { readonly s: "wait"; readonly ms: number }
  /** The worker closes (draining or not) and a new one starts on the same transport. */
  | { readonly s: "restart"; readonly drain: boolean };

/** The worker's options in a run (suite ms). */
export interface WorkerPlan {
  readonly flushEvery: number;
  readonly flushInterval: number;
  readonly concurrency: number;
  readonly maxBuffered: number | undefined;
  /** `ioMaxRetryTime`, or undefined for the worker's default. */
  readonly ioMaxRetryTime: number | undefined;
  /** `ioConcurrency`, or undefined for the worker's default. */
  readonly ioConcurrency: number | undefined;
  /**
   * `retry.attempts`: 3, or the worker's default, which must survive redeliveries (SPEC §10);
   * with the default, "retry" items are acked instead (a handler retry may exhaust it).
   */
  readonly attempts: 3 | "default";
  /** Delay of the handler's retry of a "retry" item. */
  readonly retryDelay: number;
}

export interface WorkerModelOptions {
  /** Runs; @default `FC_RUNS`, else `options.workerRuns`, else 1000 on a simulated clock and 3 in real time. */
  runs?: number;
  /** fast-check seed, to replay a failure; @default `FC_SEED` */
  seed?: number;
}

/** The queue's lease and receive wait in the worker model (suite ms): a lease that outlasts a hung call or two. */
const MODEL_SETTINGS = { lease: 5000, wait: 200 };
/** The worker's `ioTimeout` (suite ms), above the receive wait. */
const IO_TIMEOUT = 1500;
/** `close({ timeout })` of a restart (suite ms). */
const RESTART_TIMEOUT = 3000;

interface Run {
  readonly id: string;
  readonly seq: number;
  readonly at: number;
}

/** What one run of a schedule saw. */
interface Trace {
  readonly behaviour: Map<string, Behaviour>;
  readonly runs: Run[];
  readonly deadLetterReasons: Map<string, string[]>;
  /** Transport time when the schedule started; the report gives times from it. */
  readonly startedAt: number;
  readonly violations: string[];
}

/**
 * Drives a real `Worker` over the queue's transport wrapped in a `FaultyTransport`, through a
 * random schedule of sends, call faults of every kind on every operation the worker uses, time
 * passing and restarts; then removes every fault and checks SPEC §10:
 *
 * - nothing lost: each item ran and its outcome reached the broker (acked, or dead-lettered once
 *   for the items the handler failed; no other item dead-lettered);
 * - an item runs again only when its outcome was in doubt: no confirmed ack or dead letter of the
 *   previous run before the re-run started (a confirmed retry is the planned re-run);
 * - the retry lower bound: no run before the `notBefore` of a retry the worker asked earlier;
 * - no wedge: once the faults stop, every item reaches its outcome within a bound, and a close
 *   resolves;
 * - the queue is empty at the end.
 */
export async function checkWorkerModel(options: ConformanceOptions, check: WorkerModelOptions = {}): Promise<void> {
  const Worker = await loadWorker(options.Worker);
  const simulated = await isSimulated(options);
  const runs = check.runs ?? envRuns() ?? options.workerRuns ?? (simulated ? 1000 : 3);
  const seed = check.seed ?? envSeed();
  const plan = fc.record<WorkerPlan>({
    flushEvery: fc.integer({ min: 1, max: 4 }),
    flushInterval: fc.constantFrom(0, 50, 200),
    concurrency: fc.integer({ min: 1, max: 2 }),
    maxBuffered: fc.constantFrom(undefined, 8),
    ioMaxRetryTime: fc.constantFrom(undefined, 4000),
    ioConcurrency: fc.constantFrom(undefined, 2),
    attempts: fc.constantFrom<3 | "default">("default", 3),
    retryDelay: fc.constantFrom(300, 1500),
  });
  const behaviour = fc.constantFrom<Behaviour>("ok", "ok", "retry", "retry", "fail", "poison");
  const send = fc.array(behaviour, { minLength: 1, maxLength: 4 }).map((items): Step => ({ s: "send", items }));
  // The outcome calls, retry above all, weigh more: their faults are where re-runs and early runs come from.
  const op = fc.constantFrom<WorkerOp>("receive", "receive", "ack", "ack", "retry", "retry", "retry", "deadLetter", "deadLetter", "extend", "release");
  const kind = fc.constantFrom(...faultKinds);
  const step = fc.oneof(
    { weight: 3, arbitrary: send },
    { weight: 4, arbitrary: fc.record({ op, kind, count: fc.integer({ min: 1, max: 3 }) }).map((f): Step => ({ s: "fault", ...f })) },
    { weight: 1, arbitrary: fc.record({ ops: fc.uniqueArray(op, { minLength: 1, maxLength: 2 }), kind }).map((o): Step => ({ s: "outage", ...o })) },
    { weight: 1, arbitrary: fc.constant<Step>({ s: "calm" }) },
    { weight: 3, arbitrary: fc.constantFrom(0, 100, 500, 2000).map((ms): Step => ({ s: "wait", ms })) },
    { weight: 2, arbitrary: fc.boolean().map((drain): Step => ({ s: "restart", drain })) },
  );
  const schedule = fc.tuple(send, fc.array(step, { maxLength: simulated ? 12 : 6 })).map(([first, rest]) => [first, ...rest]);
  await fc.assert(
    fc.asyncProperty(plan, schedule, async (p, steps) => {
      const violations = await runSchedule(options, Worker, p, steps);
      if (violations.length > 0) throw new Error(`SPEC §10 broken:\n- ${violations.join("\n- ")}`);
    }),
    // In real time a shrink replays the whole schedule again and again: report the first failure as it is.
    { numRuns: runs, endOnFailure: !simulated, includeErrorInReport: true, ...(seed === undefined ? {} : { seed }) },
  );
}

/** Runs one schedule and returns the violations found. */
export async function runSchedule(options: ConformanceOptions, Worker: WorkerConstructor, plan: WorkerPlan, steps: readonly Step[]): Promise<string[]> {
  const { context, queue } = await openContext(options, MODEL_SETTINGS);
  const trace: Trace = { behaviour: new Map(), runs: [], deadLetterReasons: new Map(), startedAt: context.now(), violations: [] };
  let seq = 0;
  const sequence = (): number => ++seq;
  try {
    if (context.simulated && queue.clock === undefined) {
      throw new Error("the worker model needs the queue's `clock` with `advance`: a Worker on the system clock would not see simulated time pass");
    }
    let consumer = context.simulated ? context.transport : await queue.connect();
    let faulty = injectFaults(consumer, { sequence, now: () => context.now() });
    const runsOf = new Map<string, number>();
    const handler: BatchHandler<unknown, unknown> = (requests) => {
      for (const request of requests) {
        const n = (runsOf.get(request.id) ?? 0) + 1;
        runsOf.set(request.id, n);
        trace.runs.push({ id: request.id, seq: sequence(), at: context.now() });
        // From the payload: a transport may hand an item over before `sendMany` has returned its id.
        const how = (request.payload as { how: Behaviour }).how;
        if (how === "fail" || how === "poison") request.fail(new Error(`model: ${request.id} fails`));
        else if (how === "retry" && n === 1) request.retry({ delay: context.ms(plan.retryDelay) });
        else request.ack(undefined);
      }
    };
    const workerOptions = {
      flushEvery: plan.flushEvery,
      flushInterval: context.ms(plan.flushInterval),
      concurrency: plan.concurrency,
      ...(plan.maxBuffered === undefined ? {} : { maxBuffered: Math.max(plan.maxBuffered, plan.flushEvery) }),
      ...(plan.ioMaxRetryTime === undefined ? {} : { ioMaxRetryTime: context.ms(plan.ioMaxRetryTime) }),
      ...(plan.ioConcurrency === undefined ? {} : { ioConcurrency: plan.ioConcurrency }),
      ...(plan.attempts === "default" ? {} : { retry: { attempts: plan.attempts } }),
      lease: context.lease,
      ioTimeout: context.ms(IO_TIMEOUT),
      ioBackoff: { delay: context.ms(50), maxDelay: context.ms(1000) },
      ...(queue.clock === undefined ? {} : { clock: queue.clock }),
    };
    const start = async (): Promise<WorkerLike> => {
      const worker = new Worker(faulty, handler, workerOptions);
      worker.on("error", () => {});
      worker.on("deadLetter", (event) => {
        const reasons = trace.deadLetterReasons.get(event.id) ?? [];
        reasons.push(`${event.reason.name}: ${event.reason.message}`);
        trace.deadLetterReasons.set(event.id, reasons);
      });
      await worker.start();
      return worker;
    };
    const poisoned: string[] = [];
    const poison = (id: string): void => {
      if (!poisoned.includes(id)) poisoned.push(id);
      faulty.inject("deadLetter", "fatal", { when: (call) => call.ids.includes(id) });
    };
    let worker = await start();
    // A worker that did not close when it had to is stopped without waiting, so it cannot outlive the run.
    const abandon = (): void => void worker.close({ drain: false, timeout: 0 }).catch(() => {});
    const outages: { remove(): void }[] = [];
    for (const step of steps) {
      switch (step.s) {
        case "send": {
          const items = step.items.map((how) => (how === "retry" && plan.attempts === "default" ? "ok" : how));
          const ids = await context.transport.sendMany(items.map((how, i) => ({ how, i })));
          ids.forEach((id, i) => {
            trace.behaviour.set(id, items[i] as Behaviour);
            if (items[i] === "poison") poison(id);
          });
          break;
        }
        case "fault":
          faulty.inject(step.op, step.kind, { count: step.count });
          break;
        case "outage":
          outages.push(faulty.inject(step.ops, step.kind));
          break;
        case "calm":
          for (const outage of outages.splice(0)) outage.remove();
          break;
        case "wait":
          await context.sleep(context.ms(step.ms));
          break;
        case "restart": {
          // Faults may still be on: close gives up after its timeout, then tries each call once.
          const timeout = context.ms(RESTART_TIMEOUT);
          const bound = timeout + context.ms(IO_TIMEOUT) * 3 + context.ms(1000);
          if (!(await closeWithin(context, worker, { drain: step.drain, timeout }, bound))) {
            trace.violations.push(`wedged: worker.close({ drain: ${step.drain}, timeout: ${timeout} }) did not resolve within ${bound} ms`);
            abandon();
            return trace.violations;
          }
          worker = await start();
          break;
        }
      }
    }
    // The faults stop; a poison item's dead letter is refused for good.
    faulty.heal();
    for (const id of poisoned) poison(id);
    const bound = wedgeBound(context, plan);
    const pending = (): string[] => [...notSettled(trace, faulty), ...poisoned.filter((id) => !runsOf.has(id)).map((id) => `${id} (poison, never ran)`)];
    let settled = await until(context, () => pending().length === 0, bound);
    if (!settled && !context.capabilities.lease && !context.simulated) {
      // A settle the worker gave up on leaves the delivery to the broker (SPEC §10, fallbacks),
      // and a transport without leases hands it out again only once the connection holding it
      // closes (RabbitMQ also at `consumer_timeout`): the worker and its connection go, and a
      // new pair must then bring every item to its outcome. The call history carries over.
      if (!(await closeWithin(context, worker, { drain: true }, bound))) {
        trace.violations.push(`wedged: worker.close() did not resolve within ${bound} ms after the faults stopped`);
        abandon();
        return trace.violations;
      }
      await consumer.close();
      consumer = await queue.connect();
      const calls = faulty.calls;
      faulty = injectFaults(consumer, { sequence, now: () => context.now() });
      faulty.calls.push(...calls);
      for (const id of poisoned) poison(id);
      worker = await start();
      settled = await until(context, () => pending().length === 0, bound);
    }
    const back = staleItemsBack(context, faulty);
    if (settled && back > context.now()) {
      await until(context, () => context.now() >= back, back - context.now() + context.ms(1000));
      settled = await until(context, () => pending().length === 0, bound);
    }
    if (!settled) trace.violations.push(`wedged: ${pending().join(", ")} had no outcome at the broker ${bound} ms after the faults stopped`);
    if (!(await closeWithin(context, worker, { drain: true }, bound))) {
      trace.violations.push(`wedged: worker.close() did not resolve within ${bound} ms after the faults stopped`);
      abandon();
      return trace.violations;
    }
    if (settled) await checkDrained(context, trace);
    checkRuns(trace, faulty);
    return trace.violations;
  } finally {
    await queue.close();
  }
}

/**
 * When every item an ack may have missed is back on the queue. An ack of a delivery the broker no
 * longer counts (a newer one was handed out, or a retry was applied) may be a no-op, and the item
 * comes back: deliveries a lost receive reply leased to nobody when that lease ends, an applied
 * retry at its notBefore (plus an ioTimeout: the worker's receive may be waiting one out).
 */
function staleItemsBack(context: CaseContext, faulty: FaultyTransport<unknown>): number {
  let back = -Infinity;
  for (const c of faulty.calls) {
    if (c.broker !== "resolved") continue;
    if (c.op === "receive" && c.caller !== "resolved" && c.result.length > 0) back = Math.max(back, c.at + context.lease + context.wait * 2);
    if (c.op === "retry") back = Math.max(back, (c.notBefore as number) + context.ms(IO_TIMEOUT) + context.wait * 2);
  }
  return back;
}

/** Transport ms within which, once faults stop, every item must reach its outcome. */
function wedgeBound(context: CaseContext, plan: WorkerPlan): number {
  return context.ms(plan.retryDelay) + context.lease * 3 + context.ms(IO_TIMEOUT) * 4 + context.ms(10_000);
}

/** Lets time pass in small steps until `done()` holds; false after `bound` transport ms. */
async function until(context: CaseContext, done: () => boolean, bound: number): Promise<boolean> {
  const deadline = context.now() + bound;
  const step = context.simulated ? 100 : context.ms(50);
  while (!done()) {
    if (context.now() >= deadline) return false;
    await context.sleep(step);
  }
  return true;
}

/** Closes `worker`, moving a simulated clock while it closes; false if it did not within `bound`. */
async function closeWithin(context: CaseContext, worker: WorkerLike, how: { drain: boolean; timeout?: number }, bound: number): Promise<boolean> {
  let closed = false;
  const closing = worker.close(how).then(
    () => void (closed = true),
    () => void (closed = true),
  );
  const done = await until(context, () => closed, bound);
  if (done) await closing;
  return done;
}

/** Items whose final outcome has not reached the broker (whether or not the worker saw its reply). */
function notSettled(trace: Trace, faulty: FaultyTransport<unknown>): string[] {
  const acked = new Set(faulty.applied("ack"));
  const dead = new Set(faulty.applied("deadLetter"));
  return [...trace.behaviour]
    .filter(([id, how]) => how !== "poison" && !(how === "fail" ? dead.has(id) : acked.has(id)))
    .map(([id, how]) => `${id} (${how})`);
}

/** The queue is empty and its dead letters are exactly the failed items, once each. */
async function checkDrained(context: CaseContext, trace: Trace): Promise<void> {
  const checker = context.simulated ? context.transport : await context.queue.connect();
  const left = await context.collect(checker, { done: () => false, budget: context.lease + context.wait * 2 });
  // A poison item stays on the broker: its dead letter is refused.
  const ours = left.filter((r) => trace.behaviour.has(r.delivery.id) && trace.behaviour.get(r.delivery.id) !== "poison");
  if (ours.length > 0) {
    trace.violations.push(`not drained: ${ours.map((r) => `${r.delivery.id} (${trace.behaviour.get(r.delivery.id)}, attempt ${r.delivery.attempt})`).join(", ")} still on the broker after the worker closed`);
    await checker.ack(ours.map((r) => r.delivery));
  }
  const all = await deadLettersOf(context, checker);
  if (all === undefined) return;
  const letters = all.filter((l) => trace.behaviour.has(l.id));
  for (const [id, how] of trace.behaviour) {
    const mine = letters.filter((l) => l.id === id);
    if (how === "fail" && mine.length !== 1) trace.violations.push(`${id} (fail) has ${mine.length} dead letters, not 1`);
    if ((how === "ok" || how === "retry") && mine.length > 0) trace.violations.push(`${id} (${how}) was dead-lettered: ${mine.map((l) => l.reason).join("; ")}`);
  }
}

/** Re-runs only of outcomes in doubt, the retry lower bound, no dead letter of an item that did not fail. */
function checkRuns(trace: Trace, faulty: FaultyTransport<unknown>): void {
  const byId = new Map<string, Run[]>();
  for (const run of trace.runs) {
    const list = byId.get(run.id) ?? [];
    list.push(run);
    byId.set(run.id, list);
  }
  const calls = new Map<string, FaultCall[]>();
  for (const call of faulty.calls) {
    if (call.op !== "ack" && call.op !== "retry" && call.op !== "deadLetter") continue;
    for (const id of call.ids) {
      const list = calls.get(id) ?? [];
      list.push(call);
      calls.set(id, list);
    }
  }
  for (const [id, how] of trace.behaviour) {
    const runs = byId.get(id) ?? [];
    const mine = calls.get(id) ?? [];
    if (runs.length === 0) trace.violations.push(`lost: ${id} (${how}) never ran`);
    for (const [k, run] of runs.entries()) {
      const early = mine.find((c) => c.op === "retry" && c.seq < run.seq && c.notBefore !== undefined && run.at < c.notBefore);
      if (early !== undefined) {
        trace.violations.push(`retry lower bound: ${id} ran at +${run.at - trace.startedAt} ms, ${(early.notBefore as number) - run.at} ms before the notBefore of a retry asked earlier`);
      }
      const previous = runs[k - 1];
      if (previous === undefined) continue;
      const confirmed = mine.filter((c) => c.caller === "resolved" && c.seq > previous.seq && (c.settledSeq as number) < run.seq);
      if (confirmed.some((c) => c.op === "retry")) continue;
      const settled = confirmed.find((c) => c.op === "ack" || c.op === "deadLetter");
      if (settled !== undefined) trace.violations.push(`duplicate not in doubt: ${id} (${how}) ran again (run ${k + 1}) after its ${settled.op} was confirmed`);
    }
    const reasons = trace.deadLetterReasons.get(id) ?? [];
    if ((how === "ok" || how === "retry") && reasons.length > 0) trace.violations.push(`${id} (${how}) was dead-lettered by the worker: ${[...new Set(reasons)].join("; ")}`);
  }
}

async function isSimulated(options: ConformanceOptions): Promise<boolean> {
  const { queue } = await openContext(options, MODEL_SETTINGS);
  try {
    return queue.advance !== undefined;
  } finally {
    await queue.close();
  }
}

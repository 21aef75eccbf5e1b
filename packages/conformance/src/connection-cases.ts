import { type BatchHandler, type Transport, TransportError } from "@tranche/core";
import { expect } from "vitest";
import type { ConformanceCase } from "./cases.js";
import type { CaseContext } from "./context.js";
import { bounded, expectNoDelivery, rejection, sleepMs, waitUntil } from "./expectations.js";
import type { TcpProxy } from "./tcp-proxy.js";
import { type WorkerLike, loadWorker } from "./worker-like.js";

/** SPEC §10: with the broker unreachable, a call fails within 5 s. */
export const FAIL_FAST = 5000;
/** Real ms allowed beyond a bound for a loaded machine. */
const SLACK = 1000;
/** Real ms `close()` may take while the broker is unreachable or the connection silent. */
export const CLOSE_BOUND = 10_000;
/** Items per batch of sends in the worker cases. */
const ITEMS = 20;

/** Suite ms after a heal within which a transport must work again: it notices a dead connection and reconnects. */
function recovery(context: CaseContext): number {
  return context.ms(30_000);
}

/** The worker's `ioTimeout` in the connection cases: above the transport's receive wait. */
function ioTimeout(context: CaseContext): number {
  return Math.max(context.ms(2000), context.wait * 3);
}

function proxyOf(context: CaseContext): TcpProxy {
  const { proxy } = context;
  if (proxy === undefined) throw new Error("a connection case ran without a proxy");
  return proxy;
}

/** Checks that `call` rejects with a retryable `TransportError` within the fail-fast bound. */
async function expectFailsFast(call: () => Promise<unknown>, what: string, address: string | undefined): Promise<void> {
  const started = Date.now();
  const error = await bounded(rejection(call), FAIL_FAST + SLACK, what);
  const took = Date.now() - started;
  expect(error, `${what} resolved instead of rejecting`).toBeDefined();
  expect(TransportError.isInstance(error), `${what} rejected with ${String(error)}, not a TransportError`).toBe(true);
  expect((error as TransportError).retryable, `${what}: ${String(error)} is not retryable`).toBe(true);
  expect(took, `${what} took ${took} ms`).toBeLessThanOrEqual(FAIL_FAST + SLACK);
  if (address !== undefined) expect((error as Error).message, `${what}: the message names the address`).toContain(address);
}

/** A worker on `transport` that records how many times each item ran, and the times of its errors. */
async function startWorker(context: CaseContext, transport: Transport<unknown>): Promise<{ worker: WorkerLike; runs: Map<string, number>; errors: number[] }> {
  const Worker = await loadWorker(context.options.Worker);
  const runs = new Map<string, number>();
  const errors: number[] = [];
  const handler: BatchHandler<unknown, unknown> = async (requests) => {
    for (const r of requests) runs.set(r.id, (runs.get(r.id) ?? 0) + 1);
    await sleepMs(context.ms(20));
  };
  const worker = new Worker(transport, handler, {
    flushEvery: 5,
    flushInterval: context.ms(50),
    lease: context.lease,
    ioTimeout: ioTimeout(context),
    ioBackoff: { delay: context.ms(50), maxDelay: context.ms(500) },
    retry: { attempts: 3 },
    ...(context.queue.clock === undefined ? {} : { clock: context.queue.clock }),
  });
  worker.on("error", () => errors.push(Date.now()));
  await worker.start();
  return { worker, runs, errors };
}

/** Sends `ITEMS` payloads, trying again while the transport reports a retryable error (it reconnects). */
async function sendWhenBack(context: CaseContext, producer: Transport<unknown>, label: string): Promise<string[]> {
  const deadline = Date.now() + recovery(context);
  for (;;) {
    try {
      return await bounded(
        producer.sendMany(Array.from({ length: ITEMS }, (_, i) => ({ label, i }))),
        FAIL_FAST + SLACK,
        "sendMany",
      );
    } catch (error) {
      const retryable = TransportError.isInstance(error) && (error as TransportError).retryable;
      if (!retryable || Date.now() >= deadline) throw error;
      await sleepMs(context.ms(200));
    }
  }
}

function missing(ids: string[], runs: Map<string, number>): string[] {
  return ids.filter((id) => !runs.has(id));
}

/** Runs a worker, lets `fault` strike once it has done some work, heals, and checks nothing was lost. */
async function faultMidRun(context: CaseContext, fault: (worker: { errors: number[] }) => Promise<void>): Promise<void> {
  const proxy = proxyOf(context);
  const producer = await context.queue.connect();
  const before = await producer.sendMany(Array.from({ length: ITEMS }, (_, i) => ({ label: "before", i })));
  const { worker, runs, errors } = await startWorker(context, context.transport);
  let after: string[] = [];
  let failed = true;
  try {
    await waitUntil(() => runs.size >= 5, context.patience, () => `the worker ran ${runs.size} items before the fault`);
    await fault({ errors });
    proxy.heal();
    // A fresh producer: connections cut or black-holed before the heal stay dead.
    after = await sendWhenBack(context, await context.queue.connect(), "after");
    await waitUntil(
      () => missing([...before, ...after], runs).length === 0,
      recovery(context),
      () => `after the heal, the worker never ran ${missing(before, runs).length} items sent before the fault and ${missing(after, runs).length} sent after`,
    );
    failed = false;
  } finally {
    const bound = CLOSE_BOUND + ioTimeout(context);
    // After a failure the worker is only stopped: the failure is the report, not the close.
    if (failed) await bounded(worker.close({ drain: false, timeout: 0 }), bound, "worker.close()").catch(() => {});
    else await bounded(worker.close(), bound, "worker.close() after the heal");
  }
  // Every outcome reached the broker: nothing comes back.
  const checker = await context.queue.connect();
  await expectNoDelivery(context, [...before, ...after], context.lease * 2 + context.ms(500), "after the worker acked it", checker);
}

/**
 * Connection faults, through a `TcpProxy` between the transports and their server (the
 * options' `server`; skipped without it).
 */
export const connectionCases: readonly ConformanceCase[] = [
  {
    name: "connection: with the server unreachable, send and receive reject with a retryable TransportError within 5 s, and close resolves",
    requires: "server",
    async run(context) {
      const proxy = proxyOf(context);
      proxy.cut();
      const aborted = new AbortController();
      try {
        const fresh = await bounded(context.queue.connect(), FAIL_FAST + SLACK, "queue.connect() while the server is unreachable");
        const address = String(proxy.port);
        const transports: [string, Transport<unknown>, string | undefined][] = [
          ["made while the server was unreachable", fresh, address],
          ["connected before the cut", context.transport, undefined],
        ];
        for (const [which, transport, named] of transports) {
          await expectFailsFast(() => transport.send({ unreachable: true }), `send on a transport ${which}`, named);
          await expectFailsFast(() => transport.receive(1, aborted.signal), `receive on a transport ${which}`, named);
        }
        const started = Date.now();
        await bounded(fresh.close(), CLOSE_BOUND, "close() while the server is unreachable");
        expect(Date.now() - started).toBeLessThanOrEqual(CLOSE_BOUND);
      } finally {
        aborted.abort();
      }
    },
  },
  {
    name: "connection: cut mid-run, then healed: a Worker on the transport loses nothing and resumes",
    requires: "server",
    async run(context) {
      await faultMidRun(context, async () => {
        const proxy = proxyOf(context);
        proxy.cut();
        await sleepMs(context.ms(1500));
      });
    },
  },
  {
    name: "connection: black-holed, then healed: calls end within the worker's ioTimeout, and the Worker resumes",
    requires: "server",
    async run(context) {
      let stuck: Promise<unknown> | undefined;
      let since = 0;
      await faultMidRun(context, async ({ errors }) => {
        const proxy = proxyOf(context);
        const producer = await context.queue.connect();
        await producer.send({ label: "warm-up" });
        proxy.blackhole();
        since = Date.now();
        // A call on a silent connection ends by the transport's own timeout, not never.
        stuck = rejection(() => producer.send({ label: "into the black hole" }));
        const bound = ioTimeout(context) + SLACK;
        await waitUntil(
          () => errors.some((t) => t >= since),
          bound,
          () => "no transport call of the worker failed or timed out while the connection was black-holed",
        );
        await sleepMs(Math.max(0, since + ioTimeout(context) + context.ms(500) - Date.now()));
      });
      await bounded(stuck as Promise<unknown>, Math.max(0, since + recovery(context) - Date.now()), `a send made on a black-holed connection ${recovery(context)} ms ago`);
    },
  },
];

import type { BatchHandler, Delivery } from "@tranche/core";
import { SimulatedClock } from "@tranche/core/testing";
import { MemoryResultStore, MemoryTransport } from "@tranche/memory";
import { Worker, type WorkerEvents, type WorkerOptions } from "../../src/index.js";

export interface Setup<T, R> {
  clock: SimulatedClock;
  transport: MemoryTransport<T>;
  results: MemoryResultStore<R>;
  worker: Worker<T, R>;
  /** Every event the worker emitted, in order. */
  events: { [K in keyof WorkerEvents]: WorkerEvents[K][0][] };
  /** Each handler call: the time, the ids and attempts it was handed. */
  calls: { at: number; ids: string[]; attempts: number[]; payloads: T[] }[];
}

export const START = 1_700_000_000_000;

/** A worker over a MemoryTransport, both on one SimulatedClock, with its events recorded. */
export function setup<T, R = unknown>(
  handler: BatchHandler<T, R>,
  options: WorkerOptions<T> = {},
  transportOptions: { visibilityTimeout?: number; wait?: number } = {},
  wrap: (transport: MemoryTransport<T>) => import("@tranche/core").Transport<T> = (t) => t,
): Setup<T, R> {
  const clock = new SimulatedClock(START);
  const transport = new MemoryTransport<T>({ clock, ...transportOptions });
  const results = new MemoryResultStore<R>({ clock });
  const calls: Setup<T, R>["calls"] = [];
  const recorded: BatchHandler<T, R> = (requests, context) => {
    calls.push({
      at: clock.now(),
      ids: requests.map((r) => r.id),
      attempts: requests.map((r) => r.attempt),
      payloads: requests.map((r) => r.payload),
    });
    return handler(requests, context);
  };
  const worker = new Worker<T, R>(wrap(transport), recorded, { clock, results, ...options });
  const events = { flush: [], settled: [], retry: [], deadLetter: [], error: [], idle: [] } as unknown as Setup<T, R>["events"];
  for (const name of Object.keys(events) as (keyof WorkerEvents)[]) {
    worker.on(name, ((event: unknown) => (events[name] as unknown[]).push(event ?? name)) as never);
  }
  return { clock, transport, results, worker, events, calls };
}

export interface Deferred<V = void> {
  promise: Promise<V>;
  resolve: (value: V) => void;
  reject: (reason: unknown) => void;
}

export function deferred<V = void>(): Deferred<V> {
  let resolve!: (value: V) => void;
  let reject!: (reason: unknown) => void;
  const promise = new Promise<V>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

export type { Delivery };

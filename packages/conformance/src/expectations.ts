import type { Transport } from "@tranche/core";
import { expect } from "vitest";
import { idsOf } from "./context.js";
import type { CaseContext, Received } from "./context.js";

export function uniqueId(label: string): string {
  return `${label}-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 10)}`;
}

/** Receives until a delivery of `id` arrives; fails if none does within the patience. */
export async function receiveItem(context: CaseContext, id: string, transport = context.transport): Promise<Received> {
  const received = await context.collect(transport, { done: (all) => idsOf(all).includes(id) });
  const found = received.find((r) => r.delivery.id === id);
  expect(found, `no delivery of ${id} within ${context.patience} ms`).toBeDefined();
  return found as Received;
}

/**
 * Receives until `id` arrives again, failing if it arrives before `notBefore`. A transport
 * without native delay may hand it out early if the delivery says when it may run.
 */
export async function receiveNotBefore(context: CaseContext, id: string, notBefore: number, transport = context.transport): Promise<Received> {
  const received = await context.collect(transport, {
    done: (all) => idsOf(all).includes(id),
    budget: notBefore - context.now() + context.patience,
    each: ({ delivery, at }) => {
      if (delivery.id !== id || at >= notBefore) return;
      const heldByWorker = !context.capabilities.nativeDelay && delivery.notBefore !== undefined && delivery.notBefore >= notBefore;
      expect(heldByWorker, `${id} delivered at ${at}, ${notBefore - at} ms before its notBefore ${notBefore}`).toBe(true);
    },
  });
  const found = received.find((r) => r.delivery.id === id);
  expect(found, `no delivery of ${id} within ${context.patience} ms after its notBefore`).toBeDefined();
  return found as Received;
}

/** Receives for `budget` ms and fails on any delivery of `ids`. */
export async function expectNoDelivery(context: CaseContext, ids: string[], budget: number, why: string, transport = context.transport): Promise<void> {
  await context.collect(transport, {
    done: () => false,
    budget,
    each: ({ delivery }) => {
      expect(ids.includes(delivery.id), `${delivery.id} delivered again ${why}`).toBe(false);
    },
  });
}

/** Receives `ids` once each (from `transport`); fails on a second delivery of one before all came. */
export async function receiveOnce(context: CaseContext, ids: string[], options: { budget?: number; transport?: Transport<unknown>; notBefore?: number } = {}): Promise<Map<string, Received>> {
  const got = new Map<string, Received>();
  const { notBefore } = options;
  await context.collect(options.transport ?? context.transport, {
    done: () => ids.every((id) => got.has(id)),
    ...(options.budget === undefined ? {} : { budget: options.budget }),
    each: (received) => {
      const { delivery, at } = received;
      if (!ids.includes(delivery.id)) return;
      expect(got.has(delivery.id), `${delivery.id} delivered twice`).toBe(false);
      if (notBefore !== undefined && at < notBefore) {
        const heldByWorker = !context.capabilities.nativeDelay && (delivery.notBefore ?? 0) >= notBefore;
        expect(heldByWorker, `${delivery.id} delivered at ${at}, ${notBefore - at} ms before its notBefore ${notBefore}`).toBe(true);
      }
      got.set(delivery.id, received);
    },
  });
  const missing = ids.filter((id) => !got.has(id));
  expect(missing, "never delivered").toEqual([]);
  return got;
}

/** A dead letter as the checks compare it: the reason as one text (`name: message`). */
export interface LetterSeen {
  readonly id: string;
  readonly reason: string;
  readonly attempt?: number | undefined;
  readonly retries?: number | undefined;
}

/**
 * The queue's dead letters: from the queue's own `deadLetters` hook when it has one, else from
 * the transport's `deadLetters()` (`QueueAdmin`); `undefined` when neither can list them.
 */
export async function deadLettersOf(context: CaseContext, transport: Transport<unknown> = context.transport): Promise<LetterSeen[] | undefined> {
  if (context.queue.deadLetters !== undefined) return context.queue.deadLetters();
  if (transport.deadLetters === undefined) return undefined;
  return (await transport.deadLetters()).map((l) => ({ id: l.id, reason: `${l.reason.name}: ${l.reason.message}`, attempt: l.attempt, retries: l.retries }));
}

export async function rejection(call: () => Promise<unknown>): Promise<unknown> {
  try {
    await call();
  } catch (error) {
    return error;
  }
  return undefined;
}


/** Real ms to sleep. */
export function sleepMs(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** `promise`'s value, or a rejection saying that `what` took longer than `ms` real ms. */
export async function bounded<V>(promise: Promise<V>, ms: number, what: string): Promise<V> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not settle within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, late]);
  } finally {
    clearTimeout(timer);
  }
}

/** Polls `done` every few real ms; fails with `why()` when it does not hold within `ms`. */
export async function waitUntil(done: () => boolean, ms: number, why: () => string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!done()) {
    if (Date.now() >= deadline) expect.fail(`${why()} (waited ${ms} ms)`);
    await sleepMs(20);
  }
}

import type { Outcome, ResultStore } from "@tranche/core";
import { TransportOperationError, isRetryable } from "./errors.js";

/** An item and the outcome to store under its id. */
export interface ToStore<I> {
  readonly item: I;
  readonly outcome: Outcome<unknown>;
}

/**
 * Stores each item's outcome under its id, all at once, a round at a time:
 * - stored: the item is done;
 * - refused for good (not serialisable, too large): `refused` is told, and a result is stored
 *   again as a failure saying so (the item is settled all the same); a failure refused too is
 *   settled without one;
 * - failed for a passing fault: tried again through `retry` (the worker's I/O policy) until
 *   it gives up, and then left out.
 *
 * Resolves with the items the store has, or can never take.
 */
export async function storeOutcomes<I extends { readonly id: string }>(
  results: ResultStore<unknown>,
  ttl: number | undefined,
  items: readonly ToStore<I>[],
  retry: (attempt: () => Promise<void>) => Promise<unknown>,
  refused: (error: TransportOperationError) => void,
): Promise<I[]> {
  const stored: I[] = [];
  let pending = items;
  await retry(async () => {
    const again: ToStore<I>[] = [];
    let failure: unknown;
    for (let round = pending; round.length > 0; ) {
      const settled = await Promise.allSettled(round.map(({ item, outcome }) => results.set(item.id, outcome, ttl)));
      const replaced: ToStore<I>[] = [];
      settled.forEach((result, i) => {
        const entry = round[i] as ToStore<I>;
        if (result.status === "fulfilled") stored.push(entry.item);
        else if (isRetryable(result.reason)) {
          again.push(entry);
          failure ??= result.reason;
        } else {
          refused(new TransportOperationError("results.set", 1, result.reason, { retrying: false }));
          if (entry.outcome.ok) replaced.push({ item: entry.item, outcome: unstorable(result.reason) });
          else stored.push(entry.item);
        }
      });
      round = replaced;
    }
    pending = again;
    if (again.length > 0) throw failure;
  });
  return stored;
}

/** The outcome stored instead of a result the store refuses for good. */
function unstorable(reason: unknown): Outcome<never> {
  const message = reason instanceof Error ? reason.message : String(reason);
  return { ok: false, error: { name: "UnstorableResultError", message: `[tranche/worker] the result could not be stored: ${message}` } };
}

import type { SqsEntryFailure } from "./errors.js";

/** Entries per SQS batch request. */
export const BATCH = 10;

interface BatchEntry {
  readonly Id: string;
}

/** The part of a batch call's reply that says which entries SQS refused. */
export interface BatchResult {
  Failed?: { Id?: string; Code?: string; Message?: string; SenderFault?: boolean }[] | undefined;
}

/** How to send items through one kind of SQS batch call. */
export interface BatchSpec<I, E extends BatchEntry> {
  /** The entry of `item`, under the request-local `Id` given. */
  entry(item: I, id: string): E;
  /** The batch call; rejects when the whole request failed. */
  call(entries: E[]): Promise<BatchResult>;
  /** The item id of `item`, for failure reports. */
  idOf(item: I): string;
  /** Items of one group are sent in order: a group's next entries go out only after its previous request was answered. `undefined`: no order. */
  groupOf?(item: I): string | undefined;
  /** Bytes of `item` in a request, summed within `maxBytes`. */
  bytesOf?(item: I): number;
  maxBytes?: number;
  /** Tries of an entry SQS refused with a server fault. */
  entryAttempts: number;
  /** Requests in flight at once. */
  concurrency: number;
  /** Refusal codes that count as done (a release of a lease already gone). */
  ignore?(code: string): boolean;
}

/** What became of each item of `sendBatches`. */
export interface BatchOutcome<I> {
  /** Confirmed by SQS (or refused with an ignored code). */
  readonly done: I[];
  /** Refused by SQS, for good. */
  readonly refused: { readonly item: I; readonly failure: SqsEntryFailure }[];
  /** In a request that failed as a whole: SQS may or may not have applied them. */
  readonly failed: { readonly items: I[]; readonly error: unknown }[];
  /** Not sent: an earlier item of their group was refused or failed. */
  readonly skipped: I[];
}

interface Pending<I> {
  readonly item: I;
  readonly bytes: number;
  tries: number;
}

/** A group's items not sent yet; `ordered` groups send one request at a time. */
interface Lane<I> {
  readonly queue: Pending<I>[];
  readonly ordered: boolean;
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/**
 * Sends `items` through a batch call in requests of ≤ 10 entries and ≤ `maxBytes`, up to
 * `concurrency` at once. Entries SQS refuses with a server fault are tried again (up to
 * `entryAttempts` tries, 50 ms doubling); every other refusal is reported, never dropped.
 *
 * Items of one group keep their order: each round sends at most one request per group, and a
 * group whose entry is refused or whose request fails sends nothing more (its later items are
 * `skipped`). A refused entry is tried again only while none of its group's later entries in
 * the same request was accepted.
 */
export async function sendBatches<I, E extends BatchEntry>(items: I[], spec: BatchSpec<I, E>): Promise<BatchOutcome<I>> {
  const outcome: BatchOutcome<I> = { done: [], refused: [], failed: [], skipped: [] };
  const lanes: Lane<I>[] = [];
  const byGroup = new Map<string, Lane<I>>();
  for (const item of items) {
    const pending = { item, bytes: spec.bytesOf?.(item) ?? 0, tries: 0 };
    const group = spec.groupOf?.(item);
    let lane = group === undefined ? undefined : byGroup.get(group);
    if (lane === undefined) {
      lane = { queue: [], ordered: group !== undefined };
      lanes.push(lane);
      if (group !== undefined) byGroup.set(group, lane);
    }
    lane.queue.push(pending);
  }
  for (let round = 1; ; round++) {
    const requests = pack(lanes, spec.maxBytes ?? Infinity);
    if (requests.length === 0) return outcome;
    let backoff = 0;
    await eachLimited(requests, spec.concurrency, async (request) => {
      const entries = request.map((r, i) => spec.entry(r.pending.item, String(i)));
      let result: BatchResult;
      try {
        result = await spec.call(entries);
      } catch (error) {
        outcome.failed.push({ items: request.map((r) => r.pending.item), error });
        for (const lane of new Set(request.map((r) => r.lane))) if (lane.ordered) skipRest(lane, outcome);
        return;
      }
      const refusals = new Map((result.Failed ?? []).map((f) => [f.Id, f]));
      const retry = settle(request, refusals, spec, outcome);
      if (retry > 0) backoff = Math.max(backoff, 50 * 2 ** (retry - 1));
    });
    if (backoff > 0) await sleep(backoff);
  }
}

type Sent<I> = { readonly pending: Pending<I>; readonly lane: Lane<I> };

/** One round's requests: each lane's next entries, an ordered lane's in one request only. */
function pack<I>(lanes: Lane<I>[], maxBytes: number): Sent<I>[][] {
  const requests: Sent<I>[][] = [];
  let current: Sent<I>[] = [];
  let size = 0;
  for (const lane of lanes) {
    if (lane.queue.length === 0) continue;
    for (let first = true; lane.queue.length > 0; first = false) {
      const next = lane.queue[0] as Pending<I>;
      const full = current.length === BATCH || (current.length > 0 && size + next.bytes > maxBytes);
      if (full) {
        // An ordered lane's rest waits for the next round rather than go out in a parallel request.
        if (lane.ordered && !first) break;
        requests.push(current);
        current = [];
        size = 0;
      }
      current.push({ pending: lane.queue.shift() as Pending<I>, lane });
      size += next.bytes;
    }
  }
  if (current.length > 0) requests.push(current);
  return requests;
}

/**
 * Files each entry of an answered request as done, refused, or back in its lane for another
 * try; returns the highest try count of those going back (0 when none).
 */
function settle<I>(request: Sent<I>[], refusals: Map<string | undefined, NonNullable<BatchResult["Failed"]>[number]>, spec: BatchSpec<I, BatchEntry>, outcome: BatchOutcome<I>): number {
  let retry = 0;
  const byLane = new Map<Lane<I>, { sent: Sent<I>; refusal: NonNullable<BatchResult["Failed"]>[number] | undefined }[]>();
  request.forEach((sent, i) => {
    const refusal = refusals.get(String(i));
    const list = byLane.get(sent.lane) ?? [];
    list.push({ sent, refusal: refusal !== undefined && spec.ignore?.(refusal.Code ?? "") === true ? undefined : refusal });
    byLane.set(sent.lane, list);
  });
  for (const [lane, list] of byLane) {
    const firstRefused = list.findIndex((x) => x.refusal !== undefined);
    for (const x of firstRefused < 0 ? list : list.slice(0, firstRefused)) outcome.done.push(x.sent.pending.item);
    if (firstRefused < 0) continue;
    const rest = list.slice(firstRefused);
    for (const x of rest) if (x.refusal === undefined) outcome.done.push(x.sent.pending.item);
    const refused = rest.filter((x) => x.refusal !== undefined);
    // In order, a refused entry may go again only ahead of everything of its group still unsent.
    const orderKept = !lane.ordered || rest.every((x) => x.refusal !== undefined);
    const again = orderKept && refused.every((x) => !x.refusal?.SenderFault && x.sent.pending.tries + 1 < spec.entryAttempts);
    if (again) {
      for (const x of refused) x.sent.pending.tries++;
      lane.queue.unshift(...refused.map((x) => x.sent.pending));
      retry = Math.max(retry, ...refused.map((x) => x.sent.pending.tries));
      continue;
    }
    for (const x of refused) {
      const f = x.refusal as NonNullable<BatchResult["Failed"]>[number];
      outcome.refused.push({
        item: x.sent.pending.item,
        failure: { id: spec.idOf(x.sent.pending.item), code: f.Code ?? "Unknown", message: f.Message ?? "", senderFault: f.SenderFault === true },
      });
    }
    if (lane.ordered) skipRest(lane, outcome);
  }
  return retry;
}

function skipRest<I>(lane: Lane<I>, outcome: BatchOutcome<I>): void {
  for (const pending of lane.queue.splice(0)) outcome.skipped.push(pending.item);
}

/** Runs `fn` over `items` with at most `limit` in flight; `fn` reports its own failures. */
async function eachLimited<I>(items: I[], limit: number, fn: (item: I) => Promise<void>): Promise<void> {
  let next = 0;
  const lane = async () => {
    while (next < items.length) await fn(items[next++] as I);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, lane));
}

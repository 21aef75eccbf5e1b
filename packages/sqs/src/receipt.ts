import type { Attributes } from "./attributes.js";

/** What the worker asked for a delivery. */
export type Outcome = "ack" | "retry" | "deadLetter" | "release";

/**
 * What the transport keeps per delivery; SQS itself only needs the receipt handle. Its state
 * changes only once SQS confirmed a step, so a call repeated after an error or a lost reply
 * does what is left and nothing twice.
 */
export interface Receipt {
  readonly handle: string;
  readonly messageId: string;
  readonly id: string;
  /** When the `ReceiveMessage` was sent: SQS started the visibility clock no earlier. */
  readonly receivedAt: number;
  readonly body: string;
  readonly attributes: Attributes;
  readonly group: string | undefined;
  readonly sequence: bigint;
  /** The delivery's `attempt` and `retries`, for the copies a retry or a dead letter makes. */
  readonly attempt: number;
  readonly retries: number | undefined;
  /** Epoch ms until which SQS keeps the message from other consumers, at the least. */
  leaseUntil: number;
  /** The outcome asked for; `undefined` while the worker has not decided. */
  outcome: Outcome | undefined;
  /** SQS keeps this message invisible until the retry's `notBefore` (confirmed). */
  hidden: boolean;
  /** The message's copy (a retry's re-send, or the dead letter) is confirmed: only this message's removal is left. */
  copied: boolean;
  /** SQS confirmed the outcome: repeating it is a no-op. */
  settled: boolean;
  /** Ends when the operation under way on this receipt ends: the next one starts from what it left. */
  busy: Promise<void>;
}

/**
 * Runs `fn` once every operation already under way on `list` ended (resolved or rejected), and
 * holds later ones back until it ends: a call repeated while the first is still under way (its
 * caller timed out) sees what the first confirmed, and does only what is left.
 */
export async function exclusive<R>(list: readonly Receipt[], fn: () => Promise<R>): Promise<R> {
  const unique = [...new Set(list)];
  const before = unique.map((r) => r.busy);
  let end!: () => void;
  const mine = new Promise<void>((resolve) => (end = resolve));
  for (const r of unique) r.busy = mine;
  try {
    await Promise.all(before);
    return await fn();
  } finally {
    end();
  }
}

export function bySequence(a: Receipt, b: Receipt): number {
  return a.sequence < b.sequence ? -1 : a.sequence > b.sequence ? 1 : 0;
}

/** Groups a `FifoGroups` holds before it first sweeps out settled receipts. */
const SWEEP_FLOOR = 64;

/**
 * FIFO: this transport's unsettled deliveries per message group, in sequence order. Real SQS may
 * hand out several messages of one group in one receive; a later one must not be deleted while
 * an earlier one may still run again.
 */
export class FifoGroups {
  readonly #groups = new Map<string, Receipt[]>();
  /** Groups left by the last sweep. */
  #swept = 0;

  track(receipt: Receipt): void {
    const name = receipt.group as string;
    const group = this.#groups.get(name) ?? [];
    group.push(receipt);
    group.sort(bySequence);
    this.#groups.set(name, group);
    // A group is pruned when one of its receipts is acted on; one never acted on again (a group
    // per item, per user...) would keep its settled receipts forever. A sweep each time the
    // groups doubled keeps them within twice the unsettled ones, at a constant cost per receipt.
    if (this.#groups.size > 2 * this.#swept + SWEEP_FLOOR) this.#sweep();
  }

  /** Receipts held, settled or not. */
  get size(): number {
    let size = 0;
    for (const group of this.#groups.values()) size += group.length;
    return size;
  }

  /**
   * Acked, unsettled receipts of the groups of `touched` whose earlier siblings are all decided
   * for good (acked or dead-lettered): free to delete. Walking a group stops at the first
   * sibling that is undecided, retried or released: what follows it must run after it again.
   */
  deletable(touched: readonly Receipt[]): Receipt[] {
    const free: Receipt[] = [];
    for (const name of new Set(touched.map((r) => r.group))) {
      if (name === undefined) continue;
      const group = this.#prune(name);
      for (const r of group) {
        if (r.outcome !== "ack" && r.outcome !== "deadLetter" && !r.copied) break;
        if (r.outcome === "ack" && !r.settled) free.push(r);
      }
    }
    return free;
  }

  /** The unsettled later siblings of `receipt` in its group. */
  later(receipt: Receipt): Receipt[] {
    if (receipt.group === undefined) return [];
    return this.#prune(receipt.group).filter((r) => r.sequence > receipt.sequence && !r.settled);
  }

  #sweep(): void {
    for (const name of [...this.#groups.keys()]) this.#prune(name);
    this.#swept = this.#groups.size;
  }

  /** Drops the settled receipts of a group; returns what is left. */
  #prune(name: string): Receipt[] {
    const group = (this.#groups.get(name) ?? []).filter((r) => !r.settled);
    if (group.length === 0) this.#groups.delete(name);
    else this.#groups.set(name, group);
    return group;
  }
}

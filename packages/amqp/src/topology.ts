import type { QueueType } from "./options.js";

/** Delays shorter than this are held by the worker (the copy goes straight back to the work queue with its `notBefore`). */
export const MIN_QUEUED_DELAY = 1_000;
/** The longest TTL a delay queue is given; a longer delay takes several rounds through delay queues. */
export const MAX_QUEUED_DELAY = 2_000_000_000;
/** A delay queue is deleted by the broker after its TTL plus this long without use. */
export const DELAY_QUEUE_IDLE = 24 * 60 * 60 * 1_000;

/**
 * The delay queue TTL for `ms`: rounded up to two significant digits (1 234 → 1 300), so every
 * message in one delay queue has the same TTL and expiry order is queue order (TTL expires only
 * at a queue's head: a long delay never holds a short one behind it). A copy reaches the work
 * queue at most 10 % after its `notBefore`, never before.
 */
export function delayBucket(ms: number): number {
  const d = Math.min(MAX_QUEUED_DELAY, Math.max(MIN_QUEUED_DELAY, Math.ceil(ms)));
  const step = 10 ** Math.max(0, Math.floor(Math.log10(d)) - 1);
  return Math.min(MAX_QUEUED_DELAY, Math.ceil(d / step) * step);
}

/** One queue as the transport declares it. */
export interface QueueSpec {
  readonly name: string;
  readonly arguments: Record<string, unknown>;
}

export interface TopologyOptions {
  readonly queue: string;
  readonly queueType: QueueType;
  readonly deadLetterQueue: string;
  readonly deliveryLimit: number | undefined;
  readonly queueArguments: Record<string, unknown>;
}

/** The work queue: messages the broker gives up on (`x-delivery-limit`) go to the dead-letter queue. */
export function workQueue(o: TopologyOptions): QueueSpec {
  return {
    name: o.queue,
    arguments: {
      "x-queue-type": o.queueType,
      "x-dead-letter-exchange": "",
      "x-dead-letter-routing-key": o.deadLetterQueue,
      ...(o.deliveryLimit === undefined ? {} : { "x-delivery-limit": o.deliveryLimit }),
      ...o.queueArguments,
    },
  };
}

export function deadLetterQueue(o: TopologyOptions): QueueSpec {
  return { name: o.deadLetterQueue, arguments: { "x-queue-type": o.queueType } };
}

/**
 * The delay queue of one bucket: every message expires after `ttl` and is dead-lettered back
 * into the work queue. Quorum delay queues dead-letter at least once (the broker keeps a message
 * until the work queue confirms it), which needs `reject-publish` overflow. Unused, the queue is
 * deleted after `ttl + DELAY_QUEUE_IDLE`; a transport redeclares it before that (see `stale`).
 */
export function delayQueue(o: TopologyOptions, ttl: number): QueueSpec {
  return {
    name: `${o.queue}.delay.${ttl}`,
    arguments: {
      "x-queue-type": o.queueType,
      "x-message-ttl": ttl,
      "x-dead-letter-exchange": "",
      "x-dead-letter-routing-key": o.queue,
      "x-expires": ttl + DELAY_QUEUE_IDLE,
      ...(o.queueType === "quorum" ? { "x-dead-letter-strategy": "at-least-once", "x-overflow": "reject-publish" } : {}),
    },
  };
}

/** Entries the index of delay queues keeps; beyond it the oldest go (a delay queue in use is entered again at each declaration). */
const DELAY_INDEX_MAX = 10_000;

/**
 * The index of a work queue's delay queues, which AMQP cannot list: a worker enters a delay
 * queue's name each time it declares it, as a message that expires with the queue, so that
 * `depth()` finds them. A classic queue: reading it (and putting back) counts no deliveries.
 */
export function delayIndexQueue(o: TopologyOptions): QueueSpec {
  return { name: `${o.queue}.delays`, arguments: { "x-queue-type": "classic", "x-max-length": DELAY_INDEX_MAX, "x-overflow": "drop-head" } };
}

/** Whether `name` is one of the delay queues of work queue `queue`. */
export function isDelayQueue(queue: string, name: string): boolean {
  return name.startsWith(`${queue}.delay.`) && /^\d+$/.test(name.slice(queue.length + ".delay.".length));
}

/**
 * Whether a declaration made at `declaredAt` must be renewed before publishing into the queue at
 * `now`: a delay queue's idle expiry restarts at each declaration, so one renewed within half of
 * `DELAY_QUEUE_IDLE` outlives every message published into it.
 */
export function stale(declaredAt: number, now: number): boolean {
  return now - declaredAt > DELAY_QUEUE_IDLE / 2;
}

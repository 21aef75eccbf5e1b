import { type DeadLetter, type DeadLetterPage, type QueueDepth } from "@tranche/core";
import { checkMs, decodeWith, checkDeadLetterIds, checkDeadLetterPage } from "@tranche/core/internal";
import type { Channel, Message } from "amqplib";
import { itemId } from "./amqp-delivery.js";
import type { Session } from "./connection.js";
import { Consumer } from "./consumer.js";
import { count, DELIVERY_COUNT, Header } from "./headers.js";
import { keptCopy, redrivenCopy } from "./messages.js";
import { invalid, PREFIX, type ResolvedAmqpTransportOptions } from "./options.js";
import type { Outgoing } from "./publisher.js";
import { delayBucket, delayIndexQueue, delayQueue, isDelayQueue, MIN_QUEUED_DELAY } from "./topology.js";

/** Dead letters moved per call: their copies confirmed, then their acks. */
const CHUNK = 100;
/** Shown as the reason of a letter RabbitMQ dead-lettered by itself (`x-delivery-limit`), which carries none. */
const BY_THE_BROKER = "DeliveryLimitExceeded";

/** What the admin needs of its transport. */
export interface AdminHooks {
  /** Runs `body` on the open session; failures become classified `TransportError`s. */
  run<V>(operation: string, body: (session: Session) => Promise<V>): Promise<V>;
  /** Declares the work and dead-letter queues, as a worker does. */
  declareBase(session: Session): Promise<void>;
  /** Publishes copies with confirms to their queues (declared first; a delay queue on demand), again to a queue declared anew if one went missing. */
  publishCopies(session: Session, copies: readonly Outgoing[]): Promise<void>;
}

/** What a message of the dead-letter queue becomes in one pass over it. */
type Fate = { readonly keep: true } | { readonly to: Outgoing } | { readonly drop: true };

/**
 * The operator's side of a RabbitMQ queue (`QueueAdmin`). Depth is what `queue.declare`
 * (passive) tells: ready messages of the work queue, of its delay queues (found through their
 * index) and of the dead-letter queue; AMQP 0-9-1 has no count of unacknowledged messages. The
 * dead letters are read by passing over the dead-letter queue once: each message is taken,
 * published again — behind the others (kept), to the work queue (redriven), or not at all
 * (purged) — and acked once that copy was confirmed. A pass cut short loses nothing: what it had
 * not acked goes back to the queue; a letter whose copy was confirmed then is there twice.
 */
export class AmqpQueueAdmin<T> {
  constructor(
    private readonly options: ResolvedAmqpTransportOptions<T>,
    private readonly hooks: AdminHooks,
  ) {}

  /** `ready`, `delayed` and `deadLettered` as RabbitMQ counts ready messages; `inFlight` is 0 (not counted by AMQP). */
  async depth(): Promise<QueueDepth> {
    const o = this.options;
    return this.hooks.run("depth", async (session) => {
      const delays = await this.#delayQueues(session);
      const counts = await messageCounts(session, [o.queue, o.deadLetterQueue, ...delays]);
      let delayed = 0;
      for (const name of delays) delayed += counts.get(name) ?? 0;
      return { ready: counts.get(o.queue) ?? 0, delayed, inFlight: 0, deadLettered: counts.get(o.deadLetterQueue) ?? 0 };
    });
  }

  async deadLetters(options?: DeadLetterPage): Promise<DeadLetter<T>[]> {
    const { limit, after } = checkDeadLetterPage(options, { prefix: PREFIX });
    const seen: DeadLetter<T>[] = [];
    await this.#pass("deadLetters", (message) => {
      seen.push(this.#letterOf(message));
      return { keep: true };
    });
    // One letter per item: its newest.
    const newest = new Map<string, DeadLetter<T>>();
    for (const letter of seen.sort((a, b) => a.at - b.at)) {
      newest.delete(letter.id);
      newest.set(letter.id, letter);
    }
    const letters = [...newest.values()];
    const start = after === undefined ? 0 : letters.findIndex((l) => l.id === after) + 1;
    return after !== undefined && start === 0 ? [] : letters.slice(start, start + limit);
  }

  async redrive(ids: readonly string[] | "all", options?: { delay?: number }): Promise<number> {
    checkDeadLetterIds(ids, { prefix: PREFIX });
    const o = options ?? {};
    if (typeof o !== "object" || o === null) invalid("options", "an object", o);
    const delay = o.delay === undefined ? 0 : checkMs("delay", o.delay, { prefix: PREFIX });
    const wanted = ids === "all" ? undefined : new Set(ids);
    const sent = new Set<string>();
    await this.#pass("redrive", (message) => {
      const id = itemId(message);
      if (wanted !== undefined && !wanted.has(id)) return { keep: true };
      sent.add(id);
      const now = this.options.clock.now();
      // A delay of a second or more waits in a delay queue; a shorter one is held by the worker.
      const queue = delay >= MIN_QUEUED_DELAY ? delayQueue(this.options, delayBucket(delay)).name : this.options.queue;
      return { to: redrivenCopy(message, id, queue, delay > 0 ? Math.ceil(now + delay) : undefined) };
    });
    return sent.size;
  }

  async purge(ids: readonly string[] | "all"): Promise<number> {
    checkDeadLetterIds(ids, { prefix: PREFIX });
    const dead = this.options.deadLetterQueue;
    if (ids === "all") {
      return this.hooks.run("purgeDeadLetters", async (session) => {
        const channel = await openChannel(session);
        try {
          return (await channel.purgeQueue(dead)).messageCount;
        } catch (error) {
          if ((error as { code?: unknown }).code === 404) return 0;
          throw error;
        } finally {
          await channel.close().catch(() => {});
        }
      });
    }
    const wanted = new Set(ids);
    const purged = new Set<string>();
    await this.#pass("purgeDeadLetters", (message) => {
      const id = itemId(message);
      if (!wanted.has(id)) return { keep: true };
      purged.add(id);
      return { drop: true };
    });
    return purged.size;
  }

  /**
   * Takes each message that was in the dead-letter queue when the pass began, oldest first, and
   * settles it as `fate` says: the copies (if any) of up to `CHUNK` messages confirmed, then their
   * acks, each chunk a call of its own (bounded by the `timeout` option).
   */
  async #pass(operation: string, fate: (message: Message) => Fate): Promise<void> {
    const dead = this.options.deadLetterQueue;
    let left = await this.hooks.run(operation, async (session) => (await messageCounts(session, [dead])).get(dead) ?? 0);
    let consumer: Consumer | undefined;
    try {
      while (left > 0) {
        left = await this.hooks.run(operation, async (session) => {
          if (consumer === undefined) {
            await this.hooks.declareBase(session);
            consumer = await Consumer.open(session);
          }
          // A pass goes on only on the channel it began on: a new connection means a new pass.
          if (consumer.session !== session || consumer.dead !== undefined) throw consumer.dead ?? new Error("the channel of the pass closed");
          return this.#chunk(session, consumer, left, fate);
        });
      }
    } finally {
      await consumer?.channel.close().catch(() => {});
    }
  }

  /** One chunk of a pass: up to `CHUNK` of the `left` messages; resolves with how many are left (0 once the queue ran dry). */
  async #chunk(session: Session, consumer: Consumer, left: number, fate: (message: Message) => Fate): Promise<number> {
    const dead = this.options.deadLetterQueue;
    const taken: Message[] = [];
    while (taken.length < CHUNK && taken.length < left) {
      const message = await consumer.get(dead);
      if (message === false) {
        left = taken.length;
        break;
      }
      taken.push(message);
    }
    if (taken.length === 0) return 0;
    const copies: Outgoing[] = [];
    for (const message of taken) {
      const f = fate(message);
      if ("keep" in f) copies.push(keptCopy(message, dead));
      else if ("to" in f) copies.push(f.to);
    }
    if (copies.length > 0) await this.hooks.publishCopies(session, copies);
    await consumer.ack(taken);
    return left - taken.length;
  }

  /** The delay queues entered in the index, deduplicated. Reading the index puts every entry back. */
  async #delayQueues(session: Session): Promise<string[]> {
    const index = delayIndexQueue(this.options).name;
    if ((await messageCounts(session, [index])).get(index) === undefined) return [];
    const channel = await openChannel(session);
    const names = new Set<string>();
    try {
      for (;;) {
        const message = await channel.get(index, { noAck: false });
        if (message === false) break;
        const name = message.content.toString();
        if (isDelayQueue(this.options.queue, name)) names.add(name);
      }
    } finally {
      // Closing the channel puts the entries back.
      await channel.close().catch(() => {});
    }
    return [...names];
  }

  #letterOf(message: Message): DeadLetter<T> {
    const h = message.properties.headers ?? {};
    const decoded = decodeWith(this.options.codec, message.content);
    const name = h[Header.errorName];
    // Without tranche's reason, RabbitMQ dead-lettered it (x-delivery-limit): x-death says from where.
    const death = Array.isArray(h["x-death"]) ? (h["x-death"][0] as { reason?: unknown; queue?: unknown; time?: unknown } | undefined) : undefined;
    const byBroker = name === undefined;
    const deliveries = (count(h[Header.deliveries]) ?? 0) + (count(h[DELIVERY_COUNT]) ?? this.options.deliveryLimit ?? 0) + 1;
    return {
      id: itemId(message),
      payload: "payload" in decoded ? decoded.payload : undefined,
      raw: message.content,
      attempt: count(h[Header.attempt]) ?? deliveries,
      retries: count(h[Header.retries]) ?? 0,
      reason: byBroker
        ? { name: BY_THE_BROKER, message: `dead-lettered by RabbitMQ (${String(death?.reason ?? "unknown reason")}) from ${String(death?.queue ?? this.options.queue)}` }
        : { name: String(name), message: String(h[Header.reason] ?? "") },
      at: count(h[Header.deadAt]) ?? secondsOf(death?.time) * 1000,
    };
  }
}

/**
 * A channel of its own for a call that may fail on a missing queue: the broker then closes the
 * channel, and the error it emits is the caller's (a listener keeps it from closing the connection).
 */
async function openChannel(session: Session): Promise<Channel> {
  const channel = await session.model.createChannel();
  channel.on("error", () => {});
  return channel;
}

/** Ready messages of each queue that exists (`queue.declare` passive); a missing one is left out. */
async function messageCounts(session: Session, queues: readonly string[]): Promise<Map<string, number>> {
  const counts = new Map<string, number>();
  let channel: Channel | undefined;
  try {
    for (const queue of queues) {
      channel ??= await openChannel(session);
      try {
        counts.set(queue, (await channel.checkQueue(queue)).messageCount);
      } catch (error) {
        if ((error as { code?: unknown }).code !== 404) throw error;
        // The broker closed the channel over the missing queue: the next check opens another.
        channel = undefined;
      }
    }
  } finally {
    await channel?.close().catch(() => {});
  }
  return counts;
}

/** Epoch seconds of an AMQP timestamp as amqplib decodes it; 0 when absent. */
function secondsOf(value: unknown): number {
  const n = Number(typeof value === "object" && value !== null && "value" in value ? (value as { value: unknown }).value : value);
  return Number.isFinite(n) ? n : 0;
}

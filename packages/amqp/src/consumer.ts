import type { Channel, ConsumeMessage, Message, Options } from "amqplib";
import type { Session } from "./connection.js";
import { Header } from "./headers.js";
import type { Outgoing } from "./publisher.js";

// AMQP 0-9-1 method ids of tx.select / tx.commit and their replies (class 90); amqplib has no
// API for transactions, but its channel runs any method as an RPC.
const TX_SELECT = 5898250;
const TX_SELECT_OK = 5898251;
const TX_COMMIT = 5898260;
const TX_COMMIT_OK = 5898261;

interface PendingCommit {
  readonly copies: readonly Outgoing[];
  readonly acks: readonly Message[];
  resolve(returned: number[]): void;
  reject(error: unknown): void;
}

interface RpcChannel extends Channel {
  rpc(method: number, fields: object, expect: number): Promise<unknown>;
}

/**
 * The channel a transport consumes on, in transaction mode. Every settlement is a commit: the
 * acks of the delivered messages, and the copies that replace them (a retry's delayed copy, a
 * dead letter, a released copy), are applied together when the broker confirms the commit, or
 * not at all if the channel closes first. So a retry never leaves both the original and its copy,
 * and a dead letter is written exactly once per delivery.
 *
 * Deliveries are settled only on the channel that delivered them; once it closes (`dead`), the
 * broker has put back what was not settled, and none of its deliveries can be settled again.
 */
export class Consumer {
  /** Why the channel closed; `undefined` while it is open. */
  dead: Error | undefined;
  /** Messages the broker pushed that no `receive` has taken yet. */
  readonly buffer: ConsumeMessage[] = [];
  /** The consumer tag while consuming; `undefined` before, after `pause()`, and after the broker cancelled it. */
  tag: string | undefined;
  /** The broker cancelled the consumer: its queue was deleted. */
  cancelled = false;
  readonly #wakers = new Set<() => void>();
  readonly #returned = new Set<string>();
  #seq = 0;
  /** Settlements waiting for the commit under way to end. */
  readonly #queued: PendingCommit[] = [];
  #committing = false;
  /** Delivery tags of this channel not acked yet (ascending; tags in `#acked` are skipped). */
  readonly #unsettled: number[] = [];
  /** Tags acked one by one while older tags were still unsettled. */
  readonly #acked = new Set<number>();

  private constructor(
    readonly channel: RpcChannel,
    readonly session: Session,
  ) {
    channel.on("return", (message: Message) => {
      const tag = message.properties.headers?.[Header.publish];
      if (typeof tag === "string") this.#returned.add(tag);
    });
    channel.on("error", (error: Error) => this.#die(error));
    channel.on("close", () => this.#die(session.dead ?? new Error("channel closed")));
    session.onDeath((error) => this.#die(error));
  }

  /** Opens a channel on `session` and turns on transactions. */
  static async open(session: Session): Promise<Consumer> {
    const channel = (await session.model.createChannel()) as RpcChannel;
    const consumer = new Consumer(channel, session);
    await channel.rpc(TX_SELECT, {}, TX_SELECT_OK);
    return consumer;
  }

  #die(error: Error): void {
    if (this.dead !== undefined) return;
    this.dead = error;
    // The broker requeues whatever was delivered on this channel and not settled.
    this.buffer.length = 0;
    this.#wake();
  }

  #wake(): void {
    for (const wake of this.#wakers) wake();
    this.#wakers.clear();
  }

  /** Starts consuming `queue` with at most `prefetch` unsettled deliveries. */
  async consume(queue: string, prefetch: number): Promise<void> {
    await this.channel.prefetch(prefetch);
    const { consumerTag } = await this.channel.consume(
      queue,
      (message) => {
        if (message === null) {
          // The broker cancelled the consumer: the queue was deleted. The next receive declares it again.
          this.tag = undefined;
          this.cancelled = true;
        } else {
          this.buffer.push(message);
          this.#unsettled.push(message.fields.deliveryTag);
        }
        this.#wake();
      },
      { noAck: false },
    );
    this.tag = consumerTag;
    this.cancelled = false;
  }

  /**
   * Stops the broker pushing messages (`basic.cancel`) and resolves with those it pushed that no
   * `receive` took: they are still unsettled on this channel, for the caller to give back.
   */
  async pause(): Promise<ConsumeMessage[]> {
    const tag = this.tag;
    if (tag !== undefined) {
      await this.channel.cancel(tag);
      if (this.tag === tag) this.tag = undefined;
    }
    return this.buffer.splice(0);
  }

  /** Resolves when a message arrives, the consumer stops, `signal` aborts or `ms` pass. */
  wait(ms: number, signal: AbortSignal): Promise<void> {
    if (this.buffer.length > 0 || this.dead !== undefined || this.tag === undefined || signal.aborted) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        signal.removeEventListener("abort", done);
        this.#wakers.delete(done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      signal.addEventListener("abort", done, { once: true });
      this.#wakers.add(done);
    });
  }

  /** Wakes every `wait` (the transport is closing). */
  interrupt(): void {
    this.#wake();
  }

  /**
   * Publishes `copies` and acks `acks` in one transaction. Resolves, once the broker confirmed
   * the commit, with the indexes of the copies it returned as unroutable (their acks were
   * committed all the same).
   *
   * RabbitMQ closes the connection if a channel sends anything while its `tx.commit` is being
   * processed, so settlements that come during a commit wait and go out together in the next one.
   */
  commit(copies: readonly Outgoing[], acks: readonly Message[]): Promise<number[]> {
    return new Promise<number[]>((resolve, reject) => {
      this.#queued.push({ copies, acks, resolve, reject });
      if (!this.#committing) void this.#commitQueued();
    });
  }

  /**
   * Sends the acks of `messages`: one `basic.ack` with `multiple` when they are every unsettled
   * delivery up to the newest of them (a worker acks its oldest deliveries first), else one each.
   */
  #ack(messages: readonly Message[]): void {
    if (messages.length === 0) return;
    const tags = new Set<number>();
    let newest = -1;
    for (const message of messages) {
      const tag = message.fields.deliveryTag;
      tags.add(tag);
      if (tag > newest) newest = tag;
    }
    const unsettled = this.#unsettled;
    let covered = 0;
    let all = true;
    for (let i = 0; i < unsettled.length && (unsettled[i] as number) <= newest; i++) {
      const tag = unsettled[i] as number;
      if (this.#acked.has(tag)) continue;
      if (!tags.has(tag)) {
        all = false;
        break;
      }
      covered++;
    }
    if (all && covered === tags.size) {
      this.channel.ack(messages.find((m) => m.fields.deliveryTag === newest) as Message, true);
      let drop = 0;
      while (drop < unsettled.length && (unsettled[drop] as number) <= newest) this.#acked.delete(unsettled[drop++] as number);
      unsettled.splice(0, drop);
      return;
    }
    for (const message of messages) this.channel.ack(message);
    for (const tag of tags) this.#acked.add(tag);
    // Acked tags at the front need no more checking.
    let drop = 0;
    while (drop < unsettled.length && this.#acked.delete(unsettled[drop] as number)) drop++;
    unsettled.splice(0, drop);
  }
  async #commitQueued(): Promise<void> {
    this.#committing = true;
    while (this.#queued.length > 0) {
      const batch = this.#queued.splice(0);
      const tags: string[][] = [];
      try {
        // One settlement's frames never go out without its commit: all of them, then the commit.
        for (const { copies, acks } of batch) {
          const own: string[] = [];
          for (const copy of copies) {
            const tag = `c${(this.#seq++).toString(36)}`;
            own.push(tag);
            const properties: Options.Publish = { ...copy.properties, headers: { ...copy.properties.headers, [Header.publish]: tag }, persistent: true, mandatory: true };
            this.channel.publish("", copy.queue, copy.content, properties);
          }
          tags.push(own);
        }
        this.#ack(batch.flatMap((pending) => pending.acks));
      } catch (error) {
        // Part of a settlement may be on the wire: closing the channel rolls it back (and puts
        // back every delivery of the channel) rather than let a later commit apply it.
        this.#die(error as Error);
        void this.channel.close().catch(() => {});
        for (const pending of [...batch, ...this.#queued.splice(0)]) pending.reject(error);
        break;
      }
      try {
        await this.channel.rpc(TX_COMMIT, {}, TX_COMMIT_OK);
      } catch (error) {
        for (const pending of batch) pending.reject(error);
        continue;
      }
      for (const [i, pending] of batch.entries()) {
        const returned: number[] = [];
        for (const [index, tag] of (tags[i] as string[]).entries()) if (this.#returned.delete(tag)) returned.push(index);
        pending.resolve(returned);
      }
    }
    this.#committing = false;
  }
}

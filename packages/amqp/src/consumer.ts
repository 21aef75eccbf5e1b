import type { Channel, ConsumeMessage, GetMessage, Message } from "amqplib";
import type { Session } from "./connection.js";

/**
 * The channel a transport consumes on. Its deliveries are settled only here, by `basic.ack`:
 * the copies that replace some of them (a retry's delayed copy, a dead letter, a released copy)
 * go out on the session's confirm channel first, and are confirmed before the ack is sent.
 *
 * Once the channel closes (`dead`), the broker has put back what was not acked, and none of its
 * deliveries can be settled again.
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
  /** Delivery tags of this channel not acked yet (ascending; tags in `#acked` are skipped). */
  readonly #unsettled: number[] = [];
  /** Tags acked one by one while older tags were still unsettled. */
  readonly #acked = new Set<number>();
  /** `basic.qos` of the consumer, sent again as the round trip that tells the acks before it were taken. */
  #prefetch = 0;
  /** The round trip under way, and the one that follows it for acks sent meanwhile. */
  #syncing: Promise<void> | undefined;
  #nextSync: Promise<void> | undefined;

  private constructor(
    readonly channel: Channel,
    readonly session: Session,
  ) {
    channel.on("error", (error: Error) => this.#die(error));
    channel.on("close", () => this.#die(session.dead ?? new Error("channel closed")));
    session.onDeath((error) => this.#die(error));
  }

  /** Opens a channel on `session`. */
  static async open(session: Session): Promise<Consumer> {
    return new Consumer(await session.model.createChannel(), session);
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
    this.#prefetch = prefetch;
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

  /** One message of `queue` (`basic.get`), to be settled on this channel; `false` when the queue is empty. */
  async get(queue: string): Promise<GetMessage | false> {
    const message = await this.channel.get(queue, { noAck: false });
    if (message !== false) this.#unsettled.push(message.fields.deliveryTag);
    return message;
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
   * Acks `messages` (each once: a second ack of a tag makes the broker close the channel) and
   * resolves once the broker has taken the acks, or rejects if the channel closes first: then the
   * broker puts back every delivery of the channel it had not taken an ack for.
   *
   * The acks go out at once; what tells they were taken is the reply to a `basic.qos` sent after
   * them (a channel handles its methods in order). One such round trip is under way at a time:
   * acks sent during it wait for the next, which serves them all.
   */
  ack(messages: readonly Message[]): Promise<void> {
    if (this.dead !== undefined) return Promise.reject(this.dead);
    try {
      this.#send(messages);
    } catch (error) {
      // amqplib throws for a channel closing under it: what was sent is settled or put back with the rest.
      this.#die(error as Error);
      return Promise.reject(error);
    }
    return this.#sync();
  }

  /**
   * Sends the acks of `messages`: one `basic.ack` with `multiple` when they are every unsettled
   * delivery up to the newest of them (a worker acks its oldest deliveries first), else one each.
   */
  #send(messages: readonly Message[]): void {
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

  /** Resolves once the broker has handled every method this channel sent so far. */
  #sync(): Promise<void> {
    const current = this.#syncing;
    if (current === undefined) return this.#startSync();
    // The round trip under way went out before the caller's acks: they need the next one.
    this.#nextSync ??= current.then(
      () => this.#startSync(),
      () => this.#startSync(),
    );
    return this.#nextSync;
  }

  #startSync(): Promise<void> {
    this.#nextSync = undefined;
    if (this.dead !== undefined) return Promise.reject(this.dead);
    const sync = this.channel.prefetch(this.#prefetch).then(() => {});
    this.#syncing = sync;
    const clear = (): void => {
      if (this.#syncing === sync) this.#syncing = undefined;
    };
    sync.then(clear, clear);
    return sync;
  }
}

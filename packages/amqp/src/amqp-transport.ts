import { randomUUID } from "node:crypto";
import type { Message } from "amqplib";
import { ClosedError, type Delivery, type SendManyOptions, type SendOptions, type Transport, type TransportCapabilities, type DeadLetter, type DeadLetterPage, type QueueAdmin, type QueueDepth } from "@tranche/core";
import { checkHeaders, checkInteger, checkMs, checkTime } from "@tranche/core/internal";
import { AmqpDelivery, type Handle } from "./amqp-delivery.js";
import { Link, type Session } from "./connection.js";
import { Consumer } from "./consumer.js";
import { channelGoneError, describe, notRetryable, transportError } from "./errors.js";
import { Header } from "./headers.js";
import { deadLetterCopy, inherited, MAX_INHERITED, retryCopy, unchangedCopy } from "./messages.js";
import { invalid, PREFIX, resolveAmqpTransportOptions, type AmqpTransportOptions, type ResolvedAmqpTransportOptions } from "./options.js";
import { Unroutable, type Outgoing } from "./publisher.js";
import { AmqpQueueAdmin } from "./queue-admin.js";
import { DELAY_QUEUE_IDLE, deadLetterQueue, delayBucket, delayIndexQueue, delayQueue, MIN_QUEUED_DELAY, stale, workQueue, type QueueSpec } from "./topology.js";

// A send of many payloads waits for this many publisher confirms at a time.
const PUBLISH_WINDOW = 1_000;

/**
 * A `Transport` on a RabbitMQ queue (AMQP 0-9-1, through amqplib).
 *
 * | operation | RabbitMQ |
 * |---|---|
 * | send | publish with confirms, `persistent`, `mandatory` (a return is an error) |
 * | receive | `basic.consume` with `basic.qos` prefetch, served from what the channel was given |
 * | ack | `basic.ack` (one with `multiple` for the channel's oldest deliveries); resolves once a `basic.qos` round trip after it returns |
 * | retry | a copy to the delay queue of its delay (TTL, then dead-lettered back), confirmed; then the ack |
 * | release | a copy to the work queue that keeps `attempt`, confirmed; then the ack |
 * | dead letter | a copy to the dead-letter queue with the reason, confirmed; then the ack |
 * | crash recovery | the channel closes: the broker puts back what it delivered on it and had no ack for |
 *
 * Copies go out on the session's confirm channel, acks on the channel that delivered. A delivery's
 * copy is published once per transport, however often the call is repeated; but if the channel
 * closes after the copy was confirmed and before the broker took the ack (a crash, a dropped
 * connection), the broker delivers the original again beside its copy: a retried item can run
 * once more at once, a released one twice, and a dead-lettered one can be dead-lettered twice.
 *
 * There are no leases (`lease: false`): a delivery stays with its channel until it is settled,
 * the channel closes, or RabbitMQ's `consumer_timeout` closes the channel.
 */
export class AmqpTransport<T = unknown> implements Transport<T>, QueueAdmin<T> {
  readonly name = "amqp";
  readonly capabilities: TransportCapabilities;

  readonly #options: ResolvedAmqpTransportOptions<T>;
  readonly #link: Link;
  readonly #queues = new Set<string>();
  #consumer: Consumer | undefined;
  #starting: Promise<Consumer> | undefined;
  /** Set once the transport consumes or settles: only then does it declare queues. */
  #worker = false;
  #closed = false;
  readonly #admin: AmqpQueueAdmin<T>;
  /** `receive` calls under way. */
  #receiving = 0;
  /** Fires once no `receive` has waited for `wait` ms. */
  #idle: NodeJS.Timeout | undefined;
  /** The give-back of an idle consumer, under way. */
  #pausing: Promise<void> | undefined;

  constructor(options?: AmqpTransportOptions<T>) {
    this.#options = resolveAmqpTransportOptions(options);
    this.#link = new Link(this.#options, `tranche ${this.#options.queue}`);
    this.#admin = new AmqpQueueAdmin(this.#options, {
      run: (operation, body) => this.#run(operation, body),
      declareBase: (session) => {
        this.#worker = true;
        return this.#declareBase(session);
      },
      publishCopies: (session, copies) => this.#publishCopies(session, copies),
    });
    this.capabilities = {
      maxReceive: this.#options.prefetch,
      // Delays of a second or more wait in delay queues; shorter ones are held by the worker.
      nativeDelay: false,
      lease: false,
      // With `deliveryLimit` the broker dead-letters a message it delivered that many times.
      nativeDeadLetter: this.#options.deliveryLimit !== undefined,
    };
  }

  /**
   * Connects and declares the work queue and the dead-letter queue (a worker's topology).
   * `receive` and the settling calls do it themselves; a transport that only sends never does.
   */
  async ready(): Promise<void> {
    this.#assertOpen();
    this.#worker = true;
    await this.#run("ready", async (session) => this.#declareBase(session));
  }

  /** Names of the queues this transport declared so far: the work queue, the dead-letter queue, delay queues. */
  queues(): string[] {
    return [...this.#queues];
  }

  async send(payload: T, options?: SendOptions): Promise<string> {
    this.#assertOpen();
    const id = options?.id ?? randomUUID();
    if (typeof id !== "string" || id === "") invalid("id", "a non-empty string", id);
    const [outgoing] = this.#outgoing("send", [payload], [id], options);
    await this.#publish("send", [outgoing as Outgoing]);
    return id;
  }

  /** Sends in windows of confirms. On a failure the error's `sent` lists the ids the broker confirmed. */
  async sendMany(payloads: T[], options?: SendManyOptions): Promise<string[]> {
    this.#assertOpen();
    if (!Array.isArray(payloads)) invalid("payloads", "an array", payloads);
    const ids = payloads.map(() => randomUUID());
    const outgoing = this.#outgoing("sendMany", payloads, ids, options);
    const sent: string[] = [];
    for (let start = 0; start < outgoing.length; start += PUBLISH_WINDOW) {
      const window = outgoing.slice(start, start + PUBLISH_WINDOW);
      try {
        await this.#publish("sendMany", window, (index) => sent.push(ids[start + index] as string));
      } catch (error) {
        const failure = error as Error;
        failure.message += ` (${sent.length} of ${ids.length} sent, listed in error.sent)`;
        throw Object.assign(failure, { sent });
      }
    }
    return ids;
  }

  /**
   * Up to `max` deliveries from what the channel was given, waiting at most `wait` ms for the
   * first. A message whose `notBefore` is a second or more away is not returned: it moves to the
   * delay queue of the time left (a confirmed copy, then the ack), without counting as a delivery.
   * One due sooner is returned with `notBefore`, and the worker holds it.
   *
   * Once no `receive` has been waiting for `wait` ms (the worker is full, or stopped asking), the
   * transport stops the broker pushing (`basic.cancel`) and gives back what it was pushed and
   * did not hand out, so other workers get it; the next `receive` consumes again.
   */
  async receive(max: number, signal: AbortSignal): Promise<Delivery<T>[]> {
    checkInteger("max", max, { min: 1, prefix: PREFIX });
    this.#assertOpen();
    this.#worker = true;
    this.#receiving++;
    clearTimeout(this.#idle);
    try {
      await this.#pausing;
      const deadline = Date.now() + this.#options.wait;
      while (!signal.aborted && !this.#closed) {
        const consumer = await this.#consumerReady();
        if (consumer.buffer.length > 0) {
          const deliveries = await this.#deliver(consumer.buffer.splice(0, max), consumer);
          if (deliveries.length > 0) return deliveries;
          continue;
        }
        const left = deadline - Date.now();
        if (left <= 0) break;
        await consumer.wait(left, signal);
        if (consumer.dead !== undefined && !this.#closed) {
          // Whatever closed it (the connection, the broker's consumer_timeout), the next receive opens another.
          throw transportError("receive", new Error(`the consuming channel closed: ${describe(consumer.dead)}`, { cause: consumer.dead }), this.#options.address);
        }
      }
      return [];
    } finally {
      if (--this.#receiving === 0 && !this.#closed) this.#idle = setTimeout(() => this.#pauseIdle(), this.#options.wait).unref();
    }
  }

  async ack(deliveries: Delivery<T>[]): Promise<void> {
    this.#assertOpen();
    if (!Array.isArray(deliveries)) invalid("deliveries", "an array of deliveries", deliveries);
    const gone = await this.#settle("ack", deliveries);
    if (gone !== undefined) throw channelGoneError("ack", gone.id, this.#heldOf(gone).consumer.dead);
  }

  /** The copy goes to the delay queue of `notBefore − now` (or, under a second, straight back with its `notBefore`). */
  async retry(delivery: Delivery<T>, notBefore: number): Promise<void> {
    this.#assertOpen();
    checkTime("notBefore", notBefore, { prefix: PREFIX });
    const held = this.#heldOf(delivery);
    const now = this.#options.clock.now();
    const delay = notBefore - now;
    const queue = delay >= MIN_QUEUED_DELAY ? delayQueue(this.#options, delayBucket(delay)).name : this.#options.queue;
    const copy = retryCopy(held.message, delivery, queue, notBefore, now);
    const gone = await this.#settle("retry", [delivery], [copy]);
    if (gone !== undefined) throw channelGoneError("retry", delivery.id, held.consumer.dead);
  }

  async deadLetter(delivery: Delivery<T>, reason: Error): Promise<void> {
    this.#assertOpen();
    const held = this.#heldOf(delivery);
    const copy = deadLetterCopy(held.message, delivery, this.#options.deadLetterQueue, this.#options.queue, reason, this.#options.clock.now());
    const gone = await this.#settle("deadLetter", [delivery], [copy]);
    if (gone !== undefined) throw channelGoneError("deadLetter", delivery.id, held.consumer.dead);
  }

  /**
   * Puts deliveries back at the tail of the work queue as copies that keep their `attempt`,
   * `retries` and `notBefore` (a release is not a delivery). A delivery whose channel has closed
   * is already back in the queue: releasing it does nothing.
   */
  async release(deliveries: Delivery<T>[]): Promise<void> {
    this.#assertOpen();
    if (!Array.isArray(deliveries)) invalid("deliveries", "an array of deliveries", deliveries);
    const now = this.#options.clock.now();
    const copies = deliveries.map((delivery) => unchangedCopy(this.#heldOf(delivery).message, delivery, this.#options.queue, now));
    await this.#settle("release", deliveries, copies);
  }

  /**
   * Ready messages of the work queue, of its delay queues and of the dead-letter queue, as
   * RabbitMQ counts them (`queue.declare` passive). `inFlight` is always 0: AMQP 0-9-1 does not
   * tell a queue's unacknowledged messages (the management API does). A delayed `send` counts as
   * ready until a worker receives it and moves it to a delay queue.
   */
  async depth(): Promise<QueueDepth> {
    this.#assertOpen();
    return this.#admin.depth();
  }

  /**
   * The dead letters, oldest first, one per item id: up to `limit`, after the letter of item id
   * `after`. AMQP cannot look at a queue without taking its messages: each call passes once over
   * the dead-letter queue, putting every letter back behind the others: a hundred confirmed
   * copies, then their acks. A listing cut short between the two leaves those letters twice in the
   * queue (listed once, counted twice by `depth()`).
   */
  async deadLetters(options?: DeadLetterPage): Promise<DeadLetter<T>[]> {
    this.#assertOpen();
    return this.#admin.deadLetters(options);
  }

  /**
   * Sends dead letters back to the work queue (a delay of a second or more: to its delay queue)
   * under their ids with their bytes and the producer's headers, as fresh items (no counts); each
   * letter is acked only after its copy was confirmed, so an interrupted redrive loses nothing,
   * and a repeat finds the letters it acked gone (one cut short between a copy's confirm and the
   * ack leaves the letter too: a later redrive sends that item again). Declares the queues, as a
   * worker does. Resolves with how many items.
   */
  async redrive(ids: readonly string[] | "all", options?: { delay?: number }): Promise<number> {
    this.#assertOpen();
    return this.#admin.redrive(ids, options);
  }

  /** Deletes dead letters for good (`"all"`: `queue.purge`); resolves with how many. */
  async purgeDeadLetters(ids: readonly string[] | "all"): Promise<number> {
    this.#assertOpen();
    return this.#admin.purge(ids);
  }

  /**
   * Ends pending receives and closes the connection, waiting at most a second for the broker.
   * The broker puts back whatever was delivered and not settled.
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#idle);
    this.#consumer?.interrupt();
    await this.#link.close();
  }

  #assertOpen(): void {
    if (this.#closed) throw new ClosedError(`${PREFIX} transport is closed`);
  }

  #heldOf(delivery: Delivery<T>): Handle {
    return AmqpDelivery.handle(delivery, this);
  }

  /** Runs `body` on the open session; whatever it throws becomes a classified `TransportError`. */
  async #run<V>(operation: string, body: (session: Session) => Promise<V>): Promise<V> {
    try {
      const session = await this.#link.session();
      return await session.bounded(operation, body(session));
    } catch (error) {
      throw transportError(operation, error, this.#options.address);
    }
  }

  /** The messages of a send: the producer's headers as AMQP headers, and `tranche-not-before` when delayed. */
  #outgoing(operation: string, payloads: readonly T[], ids: readonly string[], options: SendManyOptions | undefined): Outgoing[] {
    const delay = options?.delay;
    let headers: Record<string, string | number> | undefined = this.#headers(operation, options?.headers);
    if (delay !== undefined) {
      checkMs("delay", delay, { prefix: PREFIX });
      if (delay > 0) headers = { ...headers, [Header.notBefore]: Math.ceil(this.#options.clock.now() + delay) };
    }
    return payloads.map((payload, index) => {
      let encoded: string | Uint8Array;
      try {
        encoded = this.#options.codec.encode(payload);
      } catch (error) {
        throw notRetryable(operation, `cannot encode payload ${index}: ${(error as Error)?.message ?? String(error)}`, error);
      }
      const content = typeof encoded === "string" ? Buffer.from(encoded) : Buffer.from(encoded.buffer, encoded.byteOffset, encoded.byteLength);
      return { queue: this.#options.queue, content, properties: { messageId: ids[index], ...(headers === undefined ? {} : { headers }) } };
    });
  }

  /**
   * Checks a send's headers: names of tranche's or the broker's own are refused (TypeError), and
   * so are headers a copy could not keep (larger than `MAX_INHERITED` as JSON, not retryable).
   */
  #headers(operation: string, value: unknown): Record<string, string> | undefined {
    const headers = checkHeaders("headers", value, { prefix: PREFIX });
    if (headers === undefined) return undefined;
    const reserved = Object.keys(headers).find((name) => !inherited(name));
    if (reserved !== undefined) invalid("headers", "names other than tranche-*, x-death*, x-first-death*, x-last-death* and x-delivery-count", reserved);
    const size = JSON.stringify(headers).length;
    if (size > MAX_INHERITED) throw notRetryable(operation, `headers are ${size} characters as JSON, over the ${MAX_INHERITED} a retry's copy keeps`);
    return { ...headers };
  }

  /**
   * Publishes with confirms. A return means the queue is missing: a worker declares its queues
   * again and the call may be retried; a producer never declares, so it cannot.
   */
  async #publish(operation: string, messages: readonly Outgoing[], confirmed?: (index: number) => void): Promise<void> {
    await this.#run(operation, async (session) => {
      if (this.#worker) await this.#declareBase(session);
      const publisher = await session.publisher();
      const results = await Promise.allSettled(messages.map((m, index) => publisher.publish(m).then(() => confirmed?.(index))));
      const failed = results.find((r): r is PromiseRejectedResult => r.status === "rejected");
      if (failed === undefined) return;
      const error = failed.reason as Error;
      if (!(error instanceof Unroutable)) throw error;
      if (!this.#worker) {
        throw notRetryable(operation, `${error.message}; the queue is declared by workers (or by \`ready()\`), never by a producer`, error);
      }
      session.declared.clear();
      throw transportError(operation, new Error(`${error.message} (it is declared again on the next call)`), this.#options.address);
    });
  }

  /** Declares the work and dead-letter queues once per connection. */
  async #declareBase(session: Session): Promise<void> {
    await this.#declare(session, workQueue(this.#options));
    await this.#declare(session, deadLetterQueue(this.#options));
  }

  /** Declares `spec` unless this connection did lately; resolves `true` when it declared. */
  async #declare(session: Session, spec: QueueSpec): Promise<boolean> {
    const now = Date.now();
    const at = session.declared.get(spec.name);
    if (at !== undefined && !stale(at, now)) return false;
    await session.declare(spec, now);
    this.#queues.add(spec.name);
    return true;
  }

  /** A consuming channel on an open connection, with the queues declared. */
  #consumerReady(): Promise<Consumer> {
    const current = this.#consumer;
    if (current !== undefined && current.dead === undefined && current.tag !== undefined) return Promise.resolve(current);
    this.#starting ??= this.#run("receive", async (session) => {
      await this.#declareBase(session);
      let consumer = this.#consumer;
      if (consumer === undefined || consumer.dead !== undefined || consumer.session !== session) {
        consumer = await Consumer.open(session);
        this.#consumer = consumer;
      }
      if (consumer.tag === undefined) {
        if (consumer.cancelled) {
          // Cancelled by the broker: the queue was deleted, so declare it again before consuming.
          session.declared.clear();
          await this.#declareBase(session);
        }
        await consumer.consume(this.#options.queue, this.#options.prefetch).catch((error: unknown) => {
          if ((error as { code?: unknown }).code !== 404) throw error;
          // Deleted between its declaration and the consume: declared again on the next try.
          session.declared.clear();
          throw new Error(`queue ${JSON.stringify(this.#options.queue)} vanished before its consumer started`, { cause: error });
        });
      }
      return consumer;
    }).finally(() => {
      this.#starting = undefined;
    });
    return this.#starting;
  }

  /** Stops an idle consumer and gives back, without counting a delivery, what it was pushed and did not hand out. */
  #pauseIdle(): void {
    this.#idle = undefined;
    const consumer = this.#consumer;
    if (this.#receiving > 0 || this.#closed || consumer === undefined || consumer.dead !== undefined || consumer.tag === undefined) return;
    this.#pausing = (async () => {
      const messages = await consumer.session.bounded("receive", consumer.pause());
      if (messages.length === 0) return;
      const now = this.#options.clock.now();
      const deliveries = messages.map((message) => new AmqpDelivery(this, this.#options.codec, message, consumer, now));
      const copies = deliveries.map((delivery, i) => unchangedCopy(messages[i] as Message, delivery, this.#options.queue, now));
      await this.#settle("receive", deliveries, copies).catch(() => {
        // Not given back: the next receive hands them out (or the broker puts them back when the channel closes).
        if (consumer.dead === undefined) consumer.buffer.unshift(...messages);
      });
    })()
      .catch(() => {})
      .finally(() => {
        this.#pausing = undefined;
      });
  }

  /** Deliveries of `messages`; those due a second or more from now go to a delay queue instead. */
  async #deliver(messages: Message[], consumer: Consumer): Promise<Delivery<T>[]> {
    const now = this.#options.clock.now();
    const ready: Delivery<T>[] = [];
    const early: Delivery<T>[] = [];
    const copies: Outgoing[] = [];
    for (const message of messages) {
      const delivery = new AmqpDelivery(this, this.#options.codec, message, consumer, now);
      const wait = delivery.notBefore === undefined ? 0 : delivery.notBefore - now;
      if (wait < MIN_QUEUED_DELAY) {
        ready.push(delivery);
        continue;
      }
      early.push(delivery);
      copies.push(unchangedCopy(message, delivery, delayQueue(this.#options, delayBucket(wait)).name, now));
    }
    if (early.length > 0) {
      // If the move fails, the worker holds them until their notBefore instead.
      await this.#settle("receive", early, copies).catch(() => ready.push(...early));
    }
    return ready;
  }

  /**
   * Settles deliveries on the channel that delivered them: publishes the copies that replace them
   * (`copies[i]` for `deliveries[i]`; none for an ack) with confirms, then acks them all. A
   * delivery's copy goes out once: a repeated call whose copy was confirmed only acks, and one
   * whose ack was taken does nothing. Resolves with a delivery whose channel has closed, if any:
   * nothing can settle it any more.
   */
  async #settle(operation: string, deliveries: readonly Delivery<T>[], copies?: readonly Outgoing[]): Promise<Delivery<T> | undefined> {
    this.#worker = true;
    const handles = deliveries.map((delivery) => this.#heldOf(delivery));
    for (let busy = handles.find((h) => h.settling !== undefined); busy !== undefined; busy = handles.find((h) => h.settling !== undefined)) {
      await busy.settling?.catch(() => {});
    }
    let gone: Delivery<T> | undefined;
    const live: Handle[] = [];
    const liveCopies: Outgoing[] = [];
    /** The handle each of `liveCopies` replaces. */
    const replaced: Handle[] = [];
    for (const [i, handle] of handles.entries()) {
      if (handle.settled) continue;
      if (handle.consumer.dead !== undefined) gone ??= deliveries[i];
      else {
        live.push(handle);
        const copy = copies?.[i];
        if (copy !== undefined && !handle.copied) {
          liveCopies.push(copy);
          replaced.push(handle);
        }
      }
    }
    const consumer = live[0]?.consumer;
    if (consumer === undefined) return gone;
    const settling = this.#run(operation, async (session) => {
      // A call whose reply is lost times out and drops the connection: a repeated call then finds these deliveries gone.
      if (consumer.session !== session || consumer.dead !== undefined) throw consumer.dead ?? new Error("channel closed");
      if (liveCopies.length > 0) await this.#publishCopies(session, liveCopies, (index) => ((replaced[index] as Handle).copied = true));
      await consumer.ack(live.map((handle) => handle.message));
      for (const handle of live) handle.settled = true;
    });
    for (const handle of live) handle.settling = settling;
    try {
      await settling;
    } finally {
      for (const handle of live) handle.settling = undefined;
    }
    return gone;
  }

  /**
   * Publishes copies with confirms to their queues, declared first; `confirmed(i)` runs for each
   * copy the broker took. A copy the broker returned (its queue was deleted under it) goes out
   * again, to a queue declared anew: a dead letter to the dead-letter queue, any other to the work
   * queue (a delay queue's copy with its `notBefore`, so the worker that receives it moves or holds it).
   */
  async #publishCopies(session: Session, copies: readonly Outgoing[], confirmed?: (index: number) => void): Promise<void> {
    for (const queue of new Set(copies.map((copy) => copy.queue))) await this.#declareTarget(session, queue);
    const publisher = await session.publisher();
    const results = await Promise.allSettled(
      copies.map(async (copy, index) => {
        await publisher.publish(copy).catch(async (error: unknown) => {
          if (!(error instanceof Unroutable)) throw error;
          const queue = copy.queue === this.#options.deadLetterQueue ? copy.queue : this.#options.queue;
          session.declared.delete(copy.queue);
          session.declared.delete(queue);
          await this.#declareBase(session);
          await (await session.publisher()).publish({ ...copy, queue });
        });
        confirmed?.(index);
      }),
    );
    const failed = results.find((r): r is PromiseRejectedResult => r.status === "rejected");
    if (failed === undefined) return;
    if (failed.reason instanceof Unroutable) {
      session.declared.clear();
      throw new Error(`${failed.reason.message} (it is declared again on the next call)`, { cause: failed.reason });
    }
    throw failed.reason;
  }

  /** Declares the queue a copy goes to: delay queues are made on demand, the others at start. */
  async #declareTarget(session: Session, queue: string): Promise<void> {
    if (queue === this.#options.queue || queue === this.#options.deadLetterQueue) return this.#declareBase(session);
    const ttl = Number(queue.slice(queue.lastIndexOf(".") + 1));
    const spec = delayQueue(this.#options, ttl);
    if (await this.#declare(session, spec)) await this.#enterDelayQueue(session, spec.name, ttl);
  }

  /**
   * Enters a delay queue just declared in the index `depth()` reads, as a message that expires
   * with the queue. If that fails, the queue counts as not declared, and the next use tries again.
   */
  async #enterDelayQueue(session: Session, queue: string, ttl: number): Promise<void> {
    try {
      await this.#declare(session, delayIndexQueue(this.#options));
      const publisher = await session.publisher();
      await publisher.publish({ queue: delayIndexQueue(this.#options).name, content: Buffer.from(queue), properties: { expiration: String(ttl + DELAY_QUEUE_IDLE) } });
    } catch (error) {
      session.declared.delete(queue);
      throw error;
    }
  }
}

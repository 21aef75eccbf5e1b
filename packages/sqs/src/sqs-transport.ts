import {
  ChangeMessageVisibilityCommand,
  type MessageSystemAttributeName,
  type ReceiveMessageCommandOutput,
  ReceiveMessageCommand,
  SendMessageBatchCommand,
  SendMessageCommand,
  SQSClient,
} from "@aws-sdk/client-sqs";
import { ClosedError, type DeadLetter, type DeadLetterPage, type Delivery, type QueueAdmin, type QueueDepth, type SendManyOptions, type SendOptions, type Transport, type TransportCapabilities, TransportError } from "@tranche/core";
import { checkTime } from "@tranche/core/internal";
import { copyAttributes, SQS_ATTRIBUTES } from "./attributes.js";
import { BATCH } from "./batches.js";
import { describe } from "./classify.js";
import { SqsTransportError } from "./errors.js";
import { type MutableDelivery, type Received, toDelivery } from "./incoming.js";
import { invalid, type ResolvedSqsOptions, resolveSqsOptions, SQS_MAX_VISIBILITY_MS, type SqsTransportOptions } from "./options.js";
import { deadLetterAttributes, delaySeconds, headersAttribute, outgoing, sendError } from "./outgoing.js";
import { SqsQueueAdmin } from "./queue-admin.js";
import { bySequence, exclusive, FifoGroups, type Receipt } from "./receipt.js";
import { ABORTED, closedOr, SqsCalls } from "./sqs-calls.js";

/** `send` options of an SQS transport: a FIFO item may name its own message group. */
export interface SqsSendOptions extends SendOptions {
  /** FIFO only: this item's message group, over the `messageGroupId` option. */
  messageGroupId?: string;
}

/** `sendMany` options of an SQS transport. */
export interface SqsSendManyOptions extends SendManyOptions {
  /** FIFO only: the message group of every item, over the `messageGroupId` option. */
  messageGroupId?: string;
  /** Item ids, one per payload, in order (to send again what an `SqsSendError` lists as unsent). Generated when absent. */
  ids?: readonly string[];
}

// SQS measures the 12 h from its own receive; ours is a little later. Stay clear of the edge.
const BUDGET_MARGIN_MS = 60_000;
// A delivery due sooner than this goes to the worker, which holds it; a later one is put back.
const EARLY_SLACK_MS = 1_000;
// The client the transport makes gives up connecting after this long (or `requestTimeout`, if shorter).
const CONNECT_TIMEOUT_MS = 2_000;
// System attributes a receive asks for: the attempt, and on a FIFO queue the group order.
const SYSTEM_ATTRIBUTES: MessageSystemAttributeName[] = ["ApproximateReceiveCount"];
const FIFO_SYSTEM_ATTRIBUTES: MessageSystemAttributeName[] = [...SYSTEM_ATTRIBUTES, "MessageGroupId", "SequenceNumber"];

// Module-wide, so any SqsTransport on the same queue can settle a delivery another one made.
const receipts = new WeakMap<object, Receipt>();

function receiptOf(delivery: Delivery<unknown>): Receipt {
  const receipt = receipts.get(delivery);
  if (receipt === undefined) invalid("delivery", "a delivery received from an SqsTransport", delivery);
  return receipt;
}

/**
 * Amazon SQS as a tranche `Transport`, on `@aws-sdk/client-sqs` v3.
 *
 * Item id, carried attempts and retries, `notBefore` and the headers (one `tranche.headers`
 * attribute, JSON) travel in message attributes; the
 * receipt handle of each receive settles the delivery, so an ack from a consumer whose lease
 * expired cannot delete the copy another consumer now holds under a newer handle. A delivery's
 * state changes only once SQS confirmed a step, so every call may be repeated after an error.
 */
export class SqsTransport<T> implements Transport<T>, QueueAdmin<T> {
  readonly name = "sqs";
  readonly capabilities: TransportCapabilities;
  /** The SQS client in use (yours, or the one the transport made). */
  readonly client: SQSClient;

  readonly #options: ResolvedSqsOptions<T>;
  readonly #ownsClient: boolean;
  #closed = false;
  readonly #calls: SqsCalls;
  readonly #admin: SqsQueueAdmin<T>;
  /** The last receive was filled: the queue is probably deep, so the next one polls in parallel at once. */
  #deep = false;
  readonly #groups = new FifoGroups();
  /** Early deliveries whose copy is in the queue but whose own delete failed: finished by the next receive. */
  #putBackDeletes: Receipt[] = [];
  /** A failure of work `receive` does on the side (putting early deliveries back): the next `receive` rejects with it. */
  #sideFailure: Error | undefined = undefined;

  constructor(options: SqsTransportOptions<T>) {
    this.#options = resolveSqsOptions(options);
    this.#ownsClient = options.client === undefined;
    this.client =
      options.client ??
      new SQSClient({
        ...(options.region === undefined ? {} : { region: options.region }),
        ...(options.endpoint === undefined ? {} : { endpoint: options.endpoint }),
        ...(options.credentials === undefined ? {} : { credentials: options.credentials }),
        requestHandler: { connectionTimeout: Math.min(CONNECT_TIMEOUT_MS, this.#options.requestTimeout) },
      });
    this.#calls = new SqsCalls(this.client.send.bind(this.client) as never, this.#options);
    this.#admin = new SqsQueueAdmin(this.#calls, this.#options);
    this.capabilities = {
      maxReceive: this.#options.maxReceive,
      nativeDelay: true,
      lease: true,
      nativeDeadLetter: this.#options.nativeDeadLetter,
    };
  }

  /** The queue this transport consumes. */
  get queueUrl(): string {
    return this.#options.queueUrl;
  }

  async send(payload: T, options?: SqsSendOptions): Promise<string> {
    this.#checkOpen();
    const [id] = await this.#sendItems([{ payload, id: options?.id, group: options?.messageGroupId }], options?.delay, options?.headers);
    return id as string;
  }

  async sendMany(payloads: T[], options?: SqsSendManyOptions): Promise<string[]> {
    this.#checkOpen();
    const ids = options?.ids;
    if (ids !== undefined && (!Array.isArray(ids) || ids.length !== payloads.length)) invalid("ids", `an array of ${payloads.length} item ids`, ids);
    return this.#sendItems(
      payloads.map((payload, i) => ({ payload, id: ids?.[i], group: options?.messageGroupId })),
      options?.delay,
      options?.headers,
    );
  }

  async receive(max: number, signal: AbortSignal): Promise<Delivery<T>[]> {
    this.#checkOpen();
    this.#checkConsumer();
    const want = Math.min(Math.floor(max), this.#options.maxReceive);
    if (!(want >= 1) || signal.aborted) return [];
    await this.#finishPutBacks();
    const failure = this.#sideFailure;
    if (failure !== undefined) {
      this.#sideFailure = undefined;
      throw failure;
    }
    const calls: number[] = [];
    for (let left = want; left > 0; left -= BATCH) calls.push(Math.min(BATCH, left));
    const received: Received[] = [];
    if (this.#deep && calls.length > 1) {
      // The last receive came back full: short polls for all of `want` at once, one round trip.
      // Short polls answer at once, so none holds the others' messages back; a queue that ran
      // dry shows as a partial answer, and the next receive long-polls again.
      const parts = await this.#shortPolls(calls, received);
      // Every poll failed: an outage, reported like a failed long poll rather than as an empty queue.
      if (parts.every((part) => part.status === "rejected")) throw (parts[0] as PromiseRejectedResult).reason;
    } else {
      // One long poll first. A deep queue fills it, and then the rest is fetched with parallel
      // short polls; parallel long polls on a quiet queue would hold the whole receive for up to
      // 20 s after the first message arrived.
      const first = await this.#receiveMessages(calls[0] as number, this.#options.waitTimeSeconds, signal);
      if (first === ABORTED) return [];
      received.push(...first);
      if (received.length === calls[0] && calls.length > 1 && !signal.aborted) await this.#shortPolls(calls.slice(1), received);
    }
    this.#deep = received.length === want;
    return this.#deliveries(received);
  }

  async ack(deliveries: Delivery<T>[]): Promise<void> {
    this.#checkOpen();
    const acked = deliveries.map(receiptOf);
    await exclusive(acked, () => this.#ack(acked));
  }

  async #ack(acked: Receipt[]): Promise<void> {
    const toDelete = new Set<Receipt>();
    for (const receipt of acked) {
      if (receipt.settled) continue;
      if (!receipt.copied) receipt.outcome = "ack";
      if (receipt.group === undefined || receipt.copied) toDelete.add(receipt);
    }
    // FIFO: an ack waits behind an earlier undecided sibling of its group (see FifoGroups).
    for (const receipt of this.#groups.deletable(acked)) toDelete.add(receipt);
    await this.#calls.delete([...toDelete]);
  }

  async retry(delivery: Delivery<T>, notBefore: number): Promise<void> {
    this.#checkOpen();
    checkTime("notBefore", notBefore, { prefix: "[tranche/sqs]" });
    const receipt = receiptOf(delivery);
    await exclusive([receipt], () => this.#retry(receipt, notBefore));
  }

  async #retry(receipt: Receipt, notBefore: number): Promise<void> {
    if (receipt.settled) return;
    if (receipt.copied) return this.#calls.delete([receipt]);
    receipt.outcome = "retry";
    if (this.#options.fifo) return this.#retryInPlace(receipt, notBefore);
    await this.#hideUntil(receipt, notBefore);
    await this.#copy(receipt, { attempt: receipt.attempt, retries: (receipt.retries ?? 0) + 1, notBefore }, "retry");
    await this.#calls.delete([receipt]);
  }

  async deadLetter(delivery: Delivery<T>, reason: Error): Promise<void> {
    this.#checkOpen();
    const receipt = receiptOf(delivery);
    await exclusive([receipt], () => this.#deadLetter(receipt, reason));
  }

  async #deadLetter(receipt: Receipt, reason: Error): Promise<void> {
    if (receipt.settled) return;
    const dlq = this.#options.deadLetterQueueUrl;
    if (dlq === undefined && !receipt.copied) {
      // The queue's RedrivePolicy moves it after maxReceiveCount receives (without the reason):
      // hand it back now rather than hold it, so those receives come soon.
      if (this.#options.nativeDeadLetter) return this.#release([receipt]);
      throw new SqsTransportError("deadLetter", `deadLetter: item ${JSON.stringify(receipt.id)}: no \`deadLetterQueueUrl\` configured, and no \`nativeDeadLetter\` (a RedrivePolicy) declared`, {
        retryable: false,
      });
    }
    if (!receipt.copied) {
      const attributes = deadLetterAttributes(
        receipt.body,
        {
          id: receipt.id,
          encoding: receipt.attributes[SQS_ATTRIBUTES.encoding],
          headers: receipt.attributes[SQS_ATTRIBUTES.headers],
          attempt: receipt.attempt,
          retries: receipt.retries,
        },
        reason,
        this.#options.maxMessageBytes,
      );
      receipt.outcome = "deadLetter";
      const fifoDlq = new URL(dlq as string).pathname.endsWith(".fifo");
      await this.#calls.call("SendMessage", new SendMessageCommand({
        QueueUrl: dlq,
        MessageBody: receipt.body,
        MessageAttributes: attributes,
        ...(fifoDlq ? { MessageGroupId: receipt.group ?? "default", MessageDeduplicationId: receipt.messageId } : {}),
      }));
      receipt.copied = true;
    }
    await this.#calls.delete([receipt, ...this.#groups.deletable([receipt])]);
  }

  async extend(deliveries: Delivery<T>[], until: number): Promise<void> {
    this.#checkOpen();
    const now = this.#options.clock.now();
    const entries: { receipt: Receipt; seconds: number }[] = [];
    const byReceipt = new Map<Receipt, MutableDelivery<T>[]>();
    for (const delivery of deliveries) {
      const receipt = receiptOf(delivery);
      if (receipt.settled) continue;
      const seconds = Math.ceil(Math.min(until - now, this.#budget(receipt, now)) / 1000);
      // Nothing to renew (until is past), or the 12 h budget is spent: the lease runs out as it is.
      if (seconds < 1) continue;
      const same = byReceipt.get(receipt);
      if (same !== undefined) {
        same.push(delivery as MutableDelivery<T>);
        continue;
      }
      byReceipt.set(receipt, [delivery as MutableDelivery<T>]);
      entries.push({ receipt, seconds });
    }
    const outcome = await this.#calls.changeVisibility(entries, false);
    for (const e of outcome.done) {
      e.receipt.leaseUntil = now + e.seconds * 1000;
      for (const d of byReceipt.get(e.receipt) ?? []) d.leaseUntil = e.receipt.leaseUntil;
    }
    // A refusal for a delivery whose outcome was asked meanwhile (its ack raced the renewal) is no failure.
    const refused = outcome.refused.filter((r) => r.item.receipt.outcome === undefined && !r.item.receipt.settled);
    this.#calls.throwFailures("ChangeMessageVisibilityBatch", { ...outcome, refused });
  }

  async release(deliveries: Delivery<T>[]): Promise<void> {
    this.#checkOpen();
    const list = deliveries.map(receiptOf);
    await exclusive(list, () => this.#release(list));
  }

  async #release(list: Receipt[]): Promise<void> {
    const released = [...new Set(list)].filter((r) => !r.settled);
    // A message whose copy exists already is removed, not handed back: the copy carries the item.
    const copied = released.filter((r) => r.copied);
    const back = released.filter((r) => !r.copied);
    for (const r of back) r.outcome = "release";
    const later = back.flatMap((r) => this.#groups.later(r)).filter((r) => !back.includes(r));
    const [deleted, given] = await Promise.allSettled([this.#calls.delete(copied), this.#calls.visibleNow([...back, ...new Set(later)])]);
    for (const result of [deleted, given]) if (result.status === "rejected") throw result.reason;
  }

  /**
   * Messages by state, from `GetQueueAttributes` (approximate, as SQS counts them): `ready`
   * ApproximateNumberOfMessages, `delayed` …Delayed, `inFlight` …NotVisible (a FIFO retry
   * waits invisible, so it counts here), `deadLettered` every message of the dead-letter queue
   * (`deadLetterQueueUrl`, else the queue's `RedrivePolicy` target; 0 without one).
   */
  async depth(): Promise<QueueDepth> {
    this.#checkOpen();
    return this.#admin.depth();
  }

  /**
   * The dead letters, oldest first (by the time SQS took them), one per item id: up to `limit`,
   * after the letter of item id `after`. SQS has no way to look at a message without receiving
   * it: every call reads the whole dead-letter queue, hiding each letter while it reads, then
   * makes them visible again.
   */
  async deadLetters(options?: DeadLetterPage): Promise<DeadLetter<T>[]> {
    this.#checkOpen();
    return this.#admin.deadLetters(options);
  }

  /**
   * Sends dead letters back to the queue under their ids with their bodies as kept, a fresh
   * attempt count and `retries` 0, not before `delay` ms from now; each letter is deleted only
   * once SQS confirmed its copy, so an interrupted redrive loses nothing (a repeat may send an
   * item once more; on a FIFO queue the copy of the same letter is deduplicated). Resolves with
   * how many items went back.
   */
  async redrive(ids: readonly string[] | "all", options?: { delay?: number }): Promise<number> {
    this.#checkOpen();
    return this.#admin.redrive(ids, options);
  }

  /** Deletes dead letters for good; resolves with how many items. */
  async purgeDeadLetters(ids: readonly string[] | "all"): Promise<number> {
    this.#checkOpen();
    return this.#admin.purge(ids);
  }

  /**
   * Resolves at once, also while SQS is unreachable: calls under way reject with `ClosedError`
   * (a `receive` resolves `[]`), and a client the transport made is destroyed, so nothing keeps
   * the process alive.
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#calls.close();
    if (this.#ownsClient) this.client.destroy();
  }

  #checkOpen(): void {
    if (this.#closed) throw new ClosedError("[tranche/sqs] the transport is closed");
  }

  /** ms left of the 12 h SQS allows a message to stay invisible after one receive. */
  #budget(receipt: Receipt, now: number): number {
    return receipt.receivedAt + SQS_MAX_VISIBILITY_MS - BUDGET_MARGIN_MS - now;
  }

  // --- retry ---

  /**
   * FIFO: the message itself waits invisible until `notBefore` (a copy would lose its place in
   * the group), at most until its 12 h budget ends; its later siblings go back, in order.
   */
  async #retryInPlace(receipt: Receipt, notBefore: number): Promise<void> {
    if (!receipt.hidden) {
      const now = this.#options.clock.now();
      const wait = Math.min(Math.max(0, notBefore - now), Math.max(0, this.#budget(receipt, now)));
      await this.#calls.call("ChangeMessageVisibility", new ChangeMessageVisibilityCommand({
        QueueUrl: this.#options.queueUrl,
        ReceiptHandle: receipt.handle,
        VisibilityTimeout: Math.ceil(wait / 1000),
      }));
      receipt.hidden = true;
    }
    await this.#calls.visibleNow(this.#groups.later(receipt));
    receipt.settled = true;
  }

  /**
   * Standard queue: before a retry's copy is made, the message is kept invisible until
   * `notBefore` when its lease ends sooner, so it cannot run early if the rest of the retry fails.
   */
  async #hideUntil(receipt: Receipt, notBefore: number): Promise<void> {
    if (receipt.hidden || notBefore <= receipt.leaseUntil) return;
    const now = this.#options.clock.now();
    const wait = Math.min(notBefore - now, this.#budget(receipt, now));
    if (wait < 1000) return;
    await this.#calls.call("ChangeMessageVisibility", new ChangeMessageVisibilityCommand({
      QueueUrl: this.#options.queueUrl,
      ReceiptHandle: receipt.handle,
      VisibilityTimeout: Math.ceil(wait / 1000),
    }));
    receipt.hidden = true;
    receipt.leaseUntil = now + Math.ceil(wait / 1000) * 1000;
  }

  /**
   * Sends a copy of `receipt`'s message delayed toward `notBefore` (≤ 15 min; a longer wait is
   * put back on arrival) carrying the id, attempt, retries and `notBefore`; marks it copied once
   * SQS confirmed. A copy over the limits fails for good (not retryable).
   */
  async #copy(receipt: Receipt, carried: { attempt: number; retries: number; notBefore: number }, what: string): Promise<void> {
    const attributes = copyAttributes(receipt.body, receipt.attributes, { id: receipt.id, ...carried }, this.#options.maxMessageBytes);
    if (attributes === undefined) {
      throw new SqsTransportError("SendMessage", `${what}: item ${JSON.stringify(receipt.id)} cannot be re-sent: its body and the transport's attributes exceed maxMessageBytes ${this.#options.maxMessageBytes}`, {
        retryable: false,
      });
    }
    await this.#calls.call("SendMessage", new SendMessageCommand({
      QueueUrl: this.#options.queueUrl,
      MessageBody: receipt.body,
      MessageAttributes: attributes,
      DelaySeconds: delaySeconds(carried.notBefore - this.#options.clock.now()),
    }));
    receipt.copied = true;
  }

  // --- receive ---

  /**
   * What a consumer needs and a producer does not: somewhere for `deadLetter` to put a message.
   * Checked on every receive, so a misconfigured worker is told before it takes a message that it
   * could then neither finish nor give up.
   */
  #checkConsumer(): void {
    const o = this.#options;
    if (o.deadLetterQueueUrl === undefined && !o.nativeDeadLetter) {
      invalid(
        "deadLetterQueueUrl",
        "a queue URL on a transport that receives (or set `nativeDeadLetter: true` when the queue's RedrivePolicy takes dead letters; sending needs neither)",
        undefined,
      );
    }
  }

  /**
   * Parallel short polls of `calls[i]` messages each, appended to `received`. They answer at once,
   * so they take no abort signal: an abort under way returns what they brought.
   */
  async #shortPolls(calls: number[], received: Received[]): Promise<PromiseSettledResult<Received[] | typeof ABORTED>[]> {
    const parts = await Promise.allSettled(calls.map((n) => this.#receiveMessages(n, 0, undefined)));
    // A failed short poll costs nothing: what it may have taken reappears after its visibility timeout.
    for (const part of parts) if (part.status === "fulfilled" && part.value !== ABORTED) received.push(...part.value);
    return parts;
  }

  async #receiveMessages(max: number, waitSeconds: number, signal: AbortSignal | undefined): Promise<Received[] | typeof ABORTED> {
    // SQS starts the visibility clock when it answers, never before the request left: the time
    // taken before the call is a safe lower bound for `leaseUntil`.
    const receivedAt = this.#options.clock.now();
    try {
      const output: ReceiveMessageCommandOutput = await this.#calls.call(
        "ReceiveMessage",
        new ReceiveMessageCommand({
          QueueUrl: this.#options.queueUrl,
          MaxNumberOfMessages: max,
          WaitTimeSeconds: waitSeconds,
          VisibilityTimeout: this.#options.visibilitySeconds,
          MessageSystemAttributeNames: this.#options.fifo ? FIFO_SYSTEM_ATTRIBUTES : SYSTEM_ATTRIBUTES,
          MessageAttributeNames: ["All"],
        }),
        { wait: waitSeconds * 1000, ...(signal === undefined ? {} : { signal }) },
      );
      return (output.Messages ?? []).map((message) => ({ message, receivedAt }));
    } catch (error) {
      if (error === ABORTED || ClosedError.isInstance(error)) return ABORTED;
      throw error;
    }
  }

  async #deliveries(received: Received[]): Promise<Delivery<T>[]> {
    const out: Delivery<T>[] = [];
    const early: { delivery: Delivery<T>; receipt: Receipt; notBefore: number }[] = [];
    const behindEarly: Receipt[] = [];
    const blockedGroups = new Set<string>();
    const now = this.#options.clock.now();
    const converted = received.map((r) => toDelivery(r, this.#options));
    if (this.#options.fifo) converted.sort((a, b) => bySequence(a.receipt, b.receipt));
    for (const { delivery, receipt } of converted) {
      const notBefore = delivery.notBefore;
      if (receipt.group !== undefined && blockedGroups.has(receipt.group)) {
        // FIFO: a later sibling of a message put back must not run before it.
        behindEarly.push(receipt);
      } else if (notBefore !== undefined && notBefore - now > EARLY_SLACK_MS) {
        early.push({ delivery, receipt, notBefore });
        if (receipt.group !== undefined) blockedGroups.add(receipt.group);
      } else {
        this.#handOver(delivery, receipt, out);
      }
    }
    await Promise.all([
      ...early.map((e) => this.#putBack(e, now, out)),
      behindEarly.length === 0 ? undefined : this.#calls.visibleNow(behindEarly).catch((error: unknown) => this.#sideFailed("releasing deliveries behind an early one of their group", error)),
    ]);
    return out;
  }

  #handOver(delivery: Delivery<T>, receipt: Receipt, out: Delivery<T>[]): void {
    receipts.set(delivery, receipt);
    if (receipt.group !== undefined) this.#groups.track(receipt);
    out.push(delivery);
  }

  /**
   * A delivery due well after now (a delay beyond SQS's 15 min or 12 h limits) goes back to the
   * queue instead of to the worker: a standard queue gets a copy delayed by up to 15 min carrying
   * the attempts before this receive (a hop costs no attempt), then the message is deleted; a FIFO
   * queue keeps the message invisible a while longer (each hop counts one receive).
   *
   * When that fails, nothing is dropped: a retryable failure leaves the message to come back
   * after its visibility timeout; one that cannot pass (the copy would exceed SQS's limits) hands
   * the delivery to the worker, which holds it until `notBefore`. A copy made whose original
   * could not be deleted is deleted by the next receive. Either way the next `receive` reports it.
   */
  async #putBack({ delivery, receipt, notBefore }: { delivery: Delivery<T>; receipt: Receipt; notBefore: number }, now: number, out: Delivery<T>[]): Promise<void> {
    try {
      if (this.#options.fifo) {
        const seconds = Math.ceil(Math.min(notBefore - now, SQS_MAX_VISIBILITY_MS - BUDGET_MARGIN_MS) / 1000);
        await this.#calls.call("ChangeMessageVisibility", new ChangeMessageVisibilityCommand({
          QueueUrl: this.#options.queueUrl,
          ReceiptHandle: receipt.handle,
          VisibilityTimeout: seconds,
        }));
        return;
      }
      await this.#copy(receipt, { attempt: receipt.attempt - 1, retries: receipt.retries ?? 0, notBefore }, "put back");
      await this.#calls.delete([receipt]);
    } catch (error) {
      if (receipt.copied) this.#putBackDeletes.push(receipt);
      else if (TransportError.isInstance(error) && !(error as TransportError).retryable) this.#handOver(delivery, receipt, out);
      this.#sideFailed("putting an early delivery back", error);
    }
  }

  /** Deletes the originals of put-back copies whose delete failed, while their lease lasts (after it, they come back). */
  async #finishPutBacks(): Promise<void> {
    if (this.#putBackDeletes.length === 0) return;
    const now = this.#options.clock.now();
    const left = this.#putBackDeletes.filter((r) => !r.settled && r.leaseUntil > now);
    this.#putBackDeletes = [];
    try {
      await this.#calls.delete(left);
    } finally {
      this.#putBackDeletes.push(...left.filter((r) => !r.settled));
    }
  }

  /** Keeps the first failure of work done on the side of `receive`, for the next `receive` to reject with. */
  #sideFailed(what: string, error: unknown): void {
    if (this.#sideFailure !== undefined || ClosedError.isInstance(error)) return;
    this.#sideFailure = new SqsTransportError("ReceiveMessage", `receive: ${what} failed (nothing was lost): ${describe(error).replace(/^\[tranche\/sqs\] /, "")}`, {
      retryable: true,
      cause: error,
    });
  }

  // --- send ---

  async #sendItems(items: { payload: T; id: string | undefined; group: string | undefined }[], delay: number | undefined, headers: unknown): Promise<string[]> {
    if (delay !== undefined && !(typeof delay === "number" && delay >= 0 && Number.isFinite(delay))) invalid("delay", "a number of ms ≥ 0", delay);
    const headersAttr = headersAttribute(headers);
    const o = this.#options;
    const notBefore = delay !== undefined && delay > 0 ? o.clock.now() + delay : undefined;
    const entries = outgoing(items, { ...o, group: (payload, id, i) => items[i]?.group ?? o.messageGroupId(payload, id) }, notBefore, delay, headersAttr);
    const outcome = await this.#calls.batch(entries, {
      entry: (e, Id) => ({ ...e.entry, Id }),
      call: (Entries) => this.#calls.call("SendMessageBatch", new SendMessageBatchCommand({ QueueUrl: o.queueUrl, Entries })),
      idOf: (e) => e.id,
      // FIFO: a group's items go out in order, one request at a time (see sendBatches).
      ...(o.fifo ? { groupOf: (e: (typeof entries)[number]) => e.entry.MessageGroupId } : {}),
      bytesOf: (e) => e.bytes,
      maxBytes: o.maxBatchBytes,
    });
    if (outcome.done.length < entries.length) throw closedOr(sendError(entries, outcome), outcome);
    return entries.map((e) => e.id);
  }
}

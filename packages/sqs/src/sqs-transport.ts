import { createHash, randomUUID } from "node:crypto";
import {
  ChangeMessageVisibilityBatchCommand,
  ChangeMessageVisibilityCommand,
  DeleteMessageBatchCommand,
  DeleteMessageCommand,
  type Message,
  type ReceiveMessageCommandOutput,
  type MessageAttributeValue,
  type MessageSystemAttributeName,
  ReceiveMessageCommand,
  SendMessageBatchCommand,
  type SendMessageBatchRequestEntry,
  SendMessageCommand,
  SQSClient,
} from "@aws-sdk/client-sqs";
import { ClosedError, decodeWith, type Delivery, OversizeError, type SendOptions, type Transport, type TransportCapabilities } from "@tranche/core";
import { type SqsEntryFailure, SqsTransportError } from "./errors.js";
import {
  invalid,
  type ResolvedSqsOptions,
  resolveSqsOptions,
  SQS_MAX_DELAY_MS,
  SQS_MAX_VISIBILITY_MS,
  type SqsTransportOptions,
} from "./options.js";

/** Message attributes the transport writes and reads. */
export const SQS_ATTRIBUTES = {
  /** Item id, stable across retries and re-sends. */
  id: "tranche.id",
  /** Deliveries before this message existed (a re-sent retry carries its attempts). */
  attempt: "tranche.attempt",
  /** Epoch ms before which the item must not run. */
  notBefore: "tranche.notBefore",
  /** `"base64"` when the codec produced bytes. */
  encoding: "tranche.encoding",
  /** Dead letters: the reason's message and error name. */
  reason: "tranche.reason",
  error: "tranche.error",
} as const;

/** `send` options of an SQS transport: a FIFO item may name its own message group. */
export interface SqsSendOptions extends SendOptions {
  /** FIFO only: this item's message group, over the `messageGroupId` option. */
  messageGroupId?: string;
}

// SQS measures the 12 h from its own receive; ours is a little later. Stay clear of the edge.
const BUDGET_MARGIN_MS = 60_000;
// A delivery due sooner than this goes to the worker, which holds it; a later one is put back.
const EARLY_SLACK_MS = 1_000;
const BATCH = 10;
// Batch calls (send, delete, visibility) in flight at once: a receive of 100 is answered by 10
// parallel calls, so its ack goes out the same way rather than as 8 and then 2 stragglers.
const BATCH_CONCURRENCY = 10;
const REASON_CHARS = 1_000;
// System attributes a receive asks for: the attempt, and on a FIFO queue the group order.
const SYSTEM_ATTRIBUTES: MessageSystemAttributeName[] = ["ApproximateReceiveCount"];
const FIFO_SYSTEM_ATTRIBUTES: MessageSystemAttributeName[] = [...SYSTEM_ATTRIBUTES, "MessageGroupId", "SequenceNumber"];
const LEASE_GONE = new Set(["ReceiptHandleIsInvalid", "MessageNotInflight", "InvalidParameterValue"]);

type ReceiptState = "open" | "acked" | "gone";

/** What the transport keeps per delivery; SQS itself only needs the receipt handle. */
interface Receipt {
  readonly handle: string;
  readonly messageId: string;
  readonly id: string;
  /** When the `ReceiveMessage` was sent: SQS started the visibility clock no earlier. */
  readonly receivedAt: number;
  readonly body: string;
  readonly attributes: Record<string, MessageAttributeValue>;
  readonly group: string | undefined;
  readonly sequence: bigint;
  state: ReceiptState;
}

interface Received {
  readonly message: Message;
  readonly receivedAt: number;
}

function bySequence(a: Receipt, b: Receipt): number {
  return a.sequence < b.sequence ? -1 : a.sequence > b.sequence ? 1 : 0;
}

type MutableDelivery<T> = { -readonly [K in keyof Delivery<T>]: Delivery<T>[K] };

// Module-wide, so any SqsTransport on the same queue can settle a delivery another one made.
const receipts = new WeakMap<object, Receipt>();

function receiptOf(delivery: Delivery<unknown>): Receipt {
  const receipt = receipts.get(delivery);
  if (receipt === undefined) invalid("delivery", "a delivery received from an SqsTransport", delivery);
  return receipt;
}

function stringAttribute(value: string): MessageAttributeValue {
  return { DataType: "String", StringValue: value };
}

function numberAttribute(value: number): MessageAttributeValue {
  return { DataType: "Number", StringValue: String(value) };
}

/** Size of a message as SQS counts it: body plus each attribute's name, type and value. */
export function messageBytes(body: string, attributes: Record<string, MessageAttributeValue>): number {
  let size = Buffer.byteLength(body, "utf8");
  for (const [name, attribute] of Object.entries(attributes)) {
    size += Buffer.byteLength(name, "utf8") + Buffer.byteLength(attribute.DataType ?? "", "utf8");
    if (attribute.StringValue !== undefined) size += Buffer.byteLength(attribute.StringValue, "utf8");
    if (attribute.BinaryValue !== undefined) size += attribute.BinaryValue.byteLength;
  }
  return size;
}

/** FIFO deduplication ids are 1..128 printable ASCII characters; other item ids are hashed. */
function deduplicationId(id: string): string {
  return /^[\x21-\x7e]{1,128}$/.test(id) ? id : createHash("sha256").update(id).digest("hex");
}

function isAbort(error: unknown, signal: AbortSignal | undefined): boolean {
  return signal?.aborted === true || (error as { name?: string } | null)?.name === "AbortError";
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Chunks of ≤ 10 entries whose summed `bytes` stay within `maxBytes`. */
function chunk<E>(entries: E[], bytes: (entry: E) => number = () => 0, maxBytes = Infinity): E[][] {
  const chunks: E[][] = [];
  let current: E[] = [];
  let size = 0;
  for (const entry of entries) {
    const b = bytes(entry);
    if (current.length === BATCH || (current.length > 0 && size + b > maxBytes)) {
      chunks.push(current);
      current = [];
      size = 0;
    }
    current.push(entry);
    size += b;
  }
  if (current.length > 0) chunks.push(current);
  return chunks;
}

/** Runs `fn` over `items` with at most `limit` in flight, settling all before it rejects. */
async function eachLimited<I>(items: I[], limit: number, fn: (item: I) => Promise<void>): Promise<void> {
  let next = 0;
  const errors: unknown[] = [];
  const lane = async () => {
    while (next < items.length) {
      const item = items[next++] as I;
      try {
        await fn(item);
      } catch (error) {
        errors.push(error);
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, lane));
  if (errors.length > 0) throw mergeErrors(errors);
}

function mergeErrors(errors: unknown[]): unknown {
  if (errors.length === 1) return errors[0];
  const failures = errors.flatMap((e) => (SqsTransportError.isInstance(e) ? [...(e as SqsTransportError).failures] : []));
  const first = errors[0] as SqsTransportError;
  return new SqsTransportError(first.operation ?? "batch", `${errors.length} requests failed; first: ${(first as Error).message}`, {
    cause: first,
    failures,
  });
}

interface BatchEntry {
  readonly Id: string;
}
interface BatchResult {
  Failed?: { Id?: string; Code?: string; Message?: string; SenderFault?: boolean }[] | undefined;
}

/**
 * Amazon SQS as a tranche `Transport`, on `@aws-sdk/client-sqs` v3.
 *
 * Item id, carried attempts and `notBefore` travel in message attributes; the receipt handle of
 * each receive settles the delivery, so an ack from a consumer whose lease expired cannot delete
 * the copy another consumer now holds under a newer handle.
 */
export class SqsTransport<T> implements Transport<T> {
  readonly name = "sqs";
  readonly capabilities: TransportCapabilities;
  /** The SQS client in use (yours, or the one the transport made). */
  readonly client: SQSClient;

  readonly #options: ResolvedSqsOptions<T>;
  readonly #ownsClient: boolean;
  readonly #closing = new AbortController();
  /** The caller's receive signal joined with `#closing`, kept while the caller passes the same one (a worker does). */
  #receiveSignal: { source: AbortSignal; both: AbortSignal } | undefined = undefined;
  /** The last receive was filled: the queue is probably deep, so the next one polls in parallel at once. */
  #deep = false;
  /** FIFO: this transport's unsettled deliveries per message group, in sequence order. */
  readonly #groups = new Map<string, Receipt[]>();
  // `client.send` with its overloads erased: every call site names its own output type.
  readonly #send: (command: unknown, options?: { abortSignal?: AbortSignal }) => Promise<any>;

  constructor(options: SqsTransportOptions<T>) {
    this.#options = resolveSqsOptions(options);
    this.#ownsClient = options.client === undefined;
    this.client =
      options.client ??
      new SQSClient({
        ...(options.region === undefined ? {} : { region: options.region }),
        ...(options.endpoint === undefined ? {} : { endpoint: options.endpoint }),
        ...(options.credentials === undefined ? {} : { credentials: options.credentials }),
      });
    this.#send = this.client.send.bind(this.client) as never;
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
    const [id] = await this.#sendItems([{ payload, id: options?.id, group: options?.messageGroupId }], options?.delay);
    return id as string;
  }

  async sendMany(payloads: T[], options?: { delay?: number; messageGroupId?: string }): Promise<string[]> {
    this.#checkOpen();
    return this.#sendItems(
      payloads.map((payload) => ({ payload, id: undefined, group: options?.messageGroupId })),
      options?.delay,
    );
  }

  async receive(max: number, signal: AbortSignal): Promise<Delivery<T>[]> {
    this.#checkOpen();
    this.#checkConsumer();
    const want = Math.min(Math.floor(max), this.#options.maxReceive);
    if (!(want >= 1) || signal.aborted) return [];
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
      const both = this.#joined(signal);
      received.push(...(await this.#receiveMessages(calls[0] as number, this.#options.waitTimeSeconds, both)));
      if (received.length === calls[0] && calls.length > 1 && !both.aborted) await this.#shortPolls(calls.slice(1), received);
    }
    this.#deep = received.length === want;
    return this.#deliveries(received);
  }

  async ack(deliveries: Delivery<T>[]): Promise<void> {
    this.#checkOpen();
    const acked = deliveries.map(receiptOf);
    const toDelete: Receipt[] = [];
    for (const receipt of acked) {
      if (receipt.state !== "open") continue;
      receipt.state = "acked";
      if (receipt.group === undefined) toDelete.push(receipt);
    }
    // FIFO: an ack waits behind an earlier unsettled sibling of its group (see #settleGroups).
    toDelete.push(...this.#settleGroups(acked));
    await this.#delete(toDelete);
  }

  async retry(delivery: Delivery<T>, notBefore: number): Promise<void> {
    this.#checkOpen();
    const receipt = receiptOf(delivery);
    if (receipt.state !== "open") return;
    receipt.state = "gone";
    const now = this.#options.clock.now();
    const wait = Math.max(0, notBefore - now);
    const budget = receipt.receivedAt + SQS_MAX_VISIBILITY_MS - BUDGET_MARGIN_MS - now;
    try {
      if (wait <= budget || this.#options.fifo) {
        // FIFO keeps the message (a re-send would lose its place in the group); past the budget it
        // comes back early and `receive` puts it back again.
        await this.#call("ChangeMessageVisibility", new ChangeMessageVisibilityCommand({
          QueueUrl: this.#options.queueUrl,
          ReceiptHandle: receipt.handle,
          VisibilityTimeout: Math.ceil(Math.min(wait, Math.max(0, budget)) / 1000),
        }));
      } else {
        await this.#resend(receipt, delivery.attempt, notBefore, now);
      }
    } finally {
      await this.#releaseAfter(receipt);
    }
  }

  async deadLetter(delivery: Delivery<T>, reason: Error): Promise<void> {
    this.#checkOpen();
    const receipt = receiptOf(delivery);
    if (receipt.state === "gone") return;
    const dlq = this.#options.deadLetterQueueUrl;
    if (dlq === undefined) {
      // The queue's RedrivePolicy moves it after maxReceiveCount receives (without the reason):
      // hand it back now rather than hold it, so those receives come soon.
      if (this.#options.nativeDeadLetter) return this.release([delivery]);
      throw new SqsTransportError("deadLetter", `item ${JSON.stringify(receipt.id)}: no \`deadLetterQueueUrl\` configured, and no \`nativeDeadLetter\` (a RedrivePolicy) declared`);
    }
    const attributes: Record<string, MessageAttributeValue> = {};
    for (const name of [SQS_ATTRIBUTES.id, SQS_ATTRIBUTES.encoding]) {
      const value = receipt.attributes[name];
      if (value !== undefined) attributes[name] = value;
    }
    attributes[SQS_ATTRIBUTES.id] = stringAttribute(receipt.id);
    attributes[SQS_ATTRIBUTES.attempt] = numberAttribute(delivery.attempt);
    attributes[SQS_ATTRIBUTES.reason] = stringAttribute(String(reason?.message ?? reason).slice(0, REASON_CHARS) || "(no message)");
    attributes[SQS_ATTRIBUTES.error] = stringAttribute(String(reason?.name ?? "Error").slice(0, 256) || "Error");
    const fifoDlq = new URL(dlq).pathname.endsWith(".fifo");
    await this.#call("SendMessage", new SendMessageCommand({
      QueueUrl: dlq,
      MessageBody: receipt.body,
      MessageAttributes: attributes,
      ...(fifoDlq ? { MessageGroupId: receipt.group ?? "default", MessageDeduplicationId: receipt.messageId } : {}),
    }));
    receipt.state = "acked";
    await this.#delete([receipt, ...this.#settleGroups([receipt])]);
  }

  async extend(deliveries: Delivery<T>[], until: number): Promise<void> {
    this.#checkOpen();
    const now = this.#options.clock.now();
    const entries: { delivery: MutableDelivery<T>; receipt: Receipt; seconds: number }[] = [];
    for (const delivery of deliveries) {
      const receipt = receiptOf(delivery);
      if (receipt.state === "gone") continue;
      const budget = receipt.receivedAt + SQS_MAX_VISIBILITY_MS - BUDGET_MARGIN_MS - now;
      const seconds = Math.ceil(Math.min(until - now, budget) / 1000);
      // Nothing to renew (until is past), or the 12 h budget is spent: the lease runs out as it is.
      if (seconds < 1) continue;
      entries.push({ delivery: delivery as MutableDelivery<T>, receipt, seconds });
    }
    await this.#changeVisibility(entries.map((e) => ({ receipt: e.receipt, seconds: e.seconds })), false);
    for (const e of entries) e.delivery.leaseUntil = now + e.seconds * 1000;
  }

  async release(deliveries: Delivery<T>[]): Promise<void> {
    this.#checkOpen();
    const released = deliveries.map(receiptOf).filter((r) => r.state !== "gone");
    for (const receipt of released) receipt.state = "gone";
    const later = released.flatMap((r) => this.#takeLaterSiblings(r));
    await this.#changeVisibility([...released, ...later].map((receipt) => ({ receipt, seconds: 0 })), true);
  }

  async close(): Promise<void> {
    if (this.#closing.signal.aborted) return;
    this.#closing.abort();
    if (this.#ownsClient) this.client.destroy();
  }

  #checkOpen(): void {
    if (this.#closing.signal.aborted) throw new ClosedError("[tranche/sqs] the transport is closed");
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

  /** The caller's signal joined with `close()`'s; joined once per caller signal, not per receive. */
  #joined(signal: AbortSignal): AbortSignal {
    if (this.#receiveSignal?.source !== signal) this.#receiveSignal = { source: signal, both: AbortSignal.any([signal, this.#closing.signal]) };
    return this.#receiveSignal.both;
  }

  /**
   * Parallel short polls of `calls[i]` messages each, appended to `received`. They answer at once,
   * so they take no abort signal: an abort under way returns what they brought.
   */
  async #shortPolls(calls: number[], received: Received[]): Promise<PromiseSettledResult<Received[]>[]> {
    const parts = await Promise.allSettled(calls.map((n) => this.#receiveMessages(n, 0, undefined)));
    // A failed short poll costs nothing: what it may have taken reappears after its visibility timeout.
    for (const part of parts) if (part.status === "fulfilled") received.push(...part.value);
    return parts;
  }

  async #receiveMessages(max: number, waitSeconds: number, signal: AbortSignal | undefined): Promise<Received[]> {
    // SQS starts the visibility clock when it answers, never before the request left: the time
    // taken before the call is a safe lower bound for `leaseUntil`.
    const receivedAt = this.#options.clock.now();
    try {
      const output: ReceiveMessageCommandOutput = await this.#send(
        new ReceiveMessageCommand({
          QueueUrl: this.#options.queueUrl,
          MaxNumberOfMessages: max,
          WaitTimeSeconds: waitSeconds,
          VisibilityTimeout: this.#options.visibilitySeconds,
          MessageSystemAttributeNames: this.#options.fifo ? FIFO_SYSTEM_ATTRIBUTES : SYSTEM_ATTRIBUTES,
          MessageAttributeNames: ["All"],
        }),
        signal === undefined ? undefined : { abortSignal: signal },
      );
      return (output.Messages ?? []).map((message) => ({ message, receivedAt }));
    } catch (error) {
      if (isAbort(error, signal)) return [];
      throw new SqsTransportError("ReceiveMessage", (error as Error)?.message ?? String(error), { cause: error });
    }
  }

  async #deliveries(received: Received[]): Promise<Delivery<T>[]> {
    const out: Delivery<T>[] = [];
    const early: { receipt: Receipt; notBefore: number }[] = [];
    const behindEarly: Receipt[] = [];
    const blockedGroups = new Set<string>();
    const now = this.#options.clock.now();
    const converted = received.map((r) => this.#toDelivery(r));
    if (this.#options.fifo) converted.sort((a, b) => bySequence(a.receipt, b.receipt));
    for (const { delivery, receipt, notBefore } of converted) {
      if (receipt.group !== undefined && blockedGroups.has(receipt.group)) {
        // FIFO: a later sibling of a message put back must not run before it.
        behindEarly.push(receipt);
      } else if (notBefore !== undefined && notBefore - now > EARLY_SLACK_MS) {
        early.push({ receipt, notBefore });
        if (receipt.group !== undefined) blockedGroups.add(receipt.group);
      } else {
        receipts.set(delivery, receipt);
        if (receipt.group !== undefined) this.#track(receipt);
        out.push(delivery);
      }
    }
    if (early.length > 0) await this.#putBack(early, now);
    if (behindEarly.length > 0) {
      await this.#changeVisibility(behindEarly.map((receipt) => ({ receipt, seconds: 0 })), true).catch(() => {
        // They reappear after their visibility timeout, still in order.
      });
    }
    return out;
  }

  #toDelivery({ message, receivedAt }: Received): { delivery: Delivery<T>; receipt: Receipt; notBefore: number | undefined } {
    const attributes = message.MessageAttributes ?? {};
    const number = (name: string) => {
      const value = Number(attributes[name]?.StringValue);
      return Number.isFinite(value) ? value : undefined;
    };
    const body = message.Body ?? "";
    const id = attributes[SQS_ATTRIBUTES.id]?.StringValue ?? message.MessageId ?? randomUUID();
    const carried = number(SQS_ATTRIBUTES.attempt) ?? 0;
    const receiveCount = Number(message.Attributes?.ApproximateReceiveCount ?? 1) || 1;
    const notBefore = number(SQS_ATTRIBUTES.notBefore);
    const raw = attributes[SQS_ATTRIBUTES.encoding]?.StringValue === "base64" ? new Uint8Array(Buffer.from(body, "base64")) : body;
    const decoded = decodeWith(this.#options.codec, raw);
    const receipt: Receipt = {
      handle: message.ReceiptHandle ?? "",
      messageId: message.MessageId ?? id,
      id,
      receivedAt,
      body,
      attributes,
      group: this.#options.fifo ? (message.Attributes?.MessageGroupId ?? "default") : undefined,
      sequence: this.#options.fifo ? BigInt(message.Attributes?.SequenceNumber ?? 0) : 0n,
      state: "open",
    };
    const delivery: MutableDelivery<T> = {
      id,
      payload: "payload" in decoded ? decoded.payload : (undefined as T),
      attempt: carried + receiveCount,
      leaseUntil: receivedAt + this.#options.visibilitySeconds * 1000,
    };
    if (notBefore !== undefined) delivery.notBefore = notBefore;
    if ("error" in decoded) delivery.error = decoded.error;
    return { delivery, receipt, notBefore };
  }

  /**
   * Deliveries due well after now (a delay beyond SQS's 15 min or 12 h limits) go back to the
   * queue instead of to the worker: a standard queue gets a fresh copy delayed by up to 15 min
   * (the attempt count carried, as if it had not been received); a FIFO queue keeps the message
   * invisible a while longer (each such hop counts one receive).
   */
  async #putBack(early: { receipt: Receipt; notBefore: number }[], now: number): Promise<void> {
    await Promise.all(
      early.map(async ({ receipt, notBefore }) => {
        try {
          if (this.#options.fifo) {
            const seconds = Math.ceil(Math.min(notBefore - now, SQS_MAX_VISIBILITY_MS - BUDGET_MARGIN_MS) / 1000);
            await this.#call("ChangeMessageVisibility", new ChangeMessageVisibilityCommand({
              QueueUrl: this.#options.queueUrl,
              ReceiptHandle: receipt.handle,
              VisibilityTimeout: seconds,
            }));
          } else {
            const carried = Number(receipt.attributes[SQS_ATTRIBUTES.attempt]?.StringValue ?? 0) || 0;
            await this.#resend(receipt, carried, notBefore, now);
          }
        } catch {
          // The message reappears after its visibility timeout and is put back then.
        }
      }),
    );
  }

  /** Re-sends `receipt`'s message delayed toward `notBefore` with `attempt` carried, then deletes the old one. */
  async #resend(receipt: Receipt, attempt: number, notBefore: number, now: number): Promise<void> {
    const attributes = { ...receipt.attributes };
    attributes[SQS_ATTRIBUTES.id] = stringAttribute(receipt.id);
    attributes[SQS_ATTRIBUTES.attempt] = numberAttribute(attempt);
    attributes[SQS_ATTRIBUTES.notBefore] = numberAttribute(notBefore);
    await this.#call("SendMessage", new SendMessageCommand({
      QueueUrl: this.#options.queueUrl,
      MessageBody: receipt.body,
      MessageAttributes: attributes,
      DelaySeconds: Math.ceil(Math.min(Math.max(0, notBefore - now), SQS_MAX_DELAY_MS) / 1000),
    }));
    await this.#call("DeleteMessage", new DeleteMessageCommand({ QueueUrl: this.#options.queueUrl, ReceiptHandle: receipt.handle }));
  }

  // --- FIFO groups ---

  #track(receipt: Receipt): void {
    const group = this.#groups.get(receipt.group as string) ?? [];
    group.push(receipt);
    group.sort(bySequence);
    this.#groups.set(receipt.group as string, group);
  }

  /** FIFO: drops the settled heads of the groups of `touched`; returns the acked ones, now free to delete. */
  #settleGroups(touched: Receipt[]): Receipt[] {
    const free: Receipt[] = [];
    for (const name of new Set(touched.map((r) => r.group))) {
      if (name === undefined) continue;
      const group = this.#groups.get(name) ?? [];
      while (group.length > 0 && (group[0] as Receipt).state !== "open") {
        const head = group.shift() as Receipt;
        if (head.state === "acked") free.push(head);
      }
      if (group.length === 0) this.#groups.delete(name);
    }
    return free;
  }

  /** FIFO: the unsettled later siblings of `receipt` in its group, marked gone and untracked. */
  #takeLaterSiblings(receipt: Receipt): Receipt[] {
    if (receipt.group === undefined) return [];
    const group = this.#groups.get(receipt.group);
    if (group === undefined) return [];
    const later = group.filter((r) => r.sequence > receipt.sequence && r.state !== "gone");
    const kept = group.filter((r) => r.sequence < receipt.sequence && r.state !== "gone");
    for (const r of later) r.state = "gone";
    if (kept.length === 0) this.#groups.delete(receipt.group);
    else this.#groups.set(receipt.group, kept);
    return later;
  }

  /** After a retry of `receipt`: its later FIFO siblings go back (in order) instead of being deleted. */
  async #releaseAfter(receipt: Receipt): Promise<void> {
    const later = this.#takeLaterSiblings(receipt);
    if (later.length > 0) await this.#changeVisibility(later.map((r) => ({ receipt: r, seconds: 0 })), true);
  }

  // --- batch calls ---

  async #delete(receiptList: Receipt[]): Promise<void> {
    const unique = [...new Set(receiptList)];
    for (const r of unique) r.state = "gone";
    await this.#batches("DeleteMessageBatch", unique, (r, i) => ({ Id: String(i), ReceiptHandle: r.handle }), (Entries) =>
      this.#call("DeleteMessageBatch", new DeleteMessageBatchCommand({ QueueUrl: this.#options.queueUrl, Entries })),
    );
  }

  /** `ChangeMessageVisibilityBatch`; with `ignoreLost`, entries whose lease is already gone are fine (release). */
  async #changeVisibility(entries: { receipt: Receipt; seconds: number }[], ignoreLost: boolean): Promise<void> {
    // A FIFO queue puts a message made visible at the head of its group: the last one first keeps order.
    const ordered = [...entries].sort((a, b) => bySequence(b.receipt, a.receipt));
    await this.#batches(
      "ChangeMessageVisibilityBatch",
      ordered,
      (e, i) => ({ Id: String(i), ReceiptHandle: e.receipt.handle, VisibilityTimeout: e.seconds }),
      (Entries) => this.#call("ChangeMessageVisibilityBatch", new ChangeMessageVisibilityBatchCommand({ QueueUrl: this.#options.queueUrl, Entries })),
      ignoreLost ? (code) => LEASE_GONE.has(code) : undefined,
      (e) => e.receipt.id,
    );
  }

  /**
   * Sends `items` in chunks of ≤ 10 in parallel. Entries SQS refuses with a server fault are
   * retried up to `entryAttempts` tries; whatever is still refused is thrown, listed, never dropped.
   */
  async #batches<I, E extends BatchEntry>(
    operation: string,
    items: I[],
    entry: (item: I, index: number) => E,
    call: (entries: E[]) => Promise<BatchResult>,
    ignore?: (code: string) => boolean,
    idOf: (item: I) => string = (item) => (item as Receipt).id,
    chunks: I[][] = chunk(items),
  ): Promise<void> {
    const failures: SqsEntryFailure[] = [];
    await eachLimited(chunks, BATCH_CONCURRENCY, async (part) => {
      let pending = part.map((item, i) => ({ item, entry: entry(item, i) }));
      for (let attempt = 1; pending.length > 0; attempt++) {
        const result = await call(pending.map((p) => p.entry));
        const failed = new Map((result.Failed ?? []).map((f) => [f.Id, f]));
        const retry: typeof pending = [];
        for (const p of pending) {
          const f = failed.get(p.entry.Id);
          if (f === undefined || ignore?.(f.Code ?? "")) continue;
          if (!f.SenderFault && attempt < this.#options.entryAttempts) retry.push(p);
          else failures.push({ id: idOf(p.item), code: f.Code ?? "Unknown", message: f.Message ?? "", senderFault: f.SenderFault === true });
        }
        pending = retry;
        if (pending.length > 0) await sleep(50 * 2 ** (attempt - 1));
      }
    });
    if (failures.length > 0) {
      const first = failures[0] as SqsEntryFailure;
      throw new SqsTransportError(operation, `${failures.length} entr${failures.length === 1 ? "y" : "ies"} refused; first: item ${JSON.stringify(first.id)} ${first.code} ${first.message}`.trim(), { failures });
    }
  }

  async #call<O>(operation: string, command: unknown): Promise<O> {
    try {
      return (await this.#send(command)) as O;
    } catch (error) {
      throw new SqsTransportError(operation, (error as Error)?.message ?? String(error), { cause: error });
    }
  }

  // --- send ---

  async #sendItems(items: { payload: T; id: string | undefined; group: string | undefined }[], delay: number | undefined): Promise<string[]> {
    if (delay !== undefined && !(typeof delay === "number" && delay >= 0 && Number.isFinite(delay))) invalid("delay", "a number of ms ≥ 0", delay);
    const o = this.#options;
    const now = o.clock.now();
    const notBefore = delay !== undefined && delay > 0 ? now + delay : undefined;
    const entries = items.map((item, index) => {
      const id = item.id ?? randomUUID();
      if (typeof id !== "string" || id.length === 0) invalid("id", "a non-empty string", id);
      const encoded = o.codec.encode(item.payload);
      const binary = typeof encoded !== "string";
      const body = binary ? Buffer.from(encoded).toString("base64") : encoded;
      const attributes: Record<string, MessageAttributeValue> = { [SQS_ATTRIBUTES.id]: stringAttribute(id) };
      if (notBefore !== undefined) attributes[SQS_ATTRIBUTES.notBefore] = numberAttribute(notBefore);
      if (binary) attributes[SQS_ATTRIBUTES.encoding] = stringAttribute("base64");
      const bytes = messageBytes(body, attributes);
      if (bytes > o.maxMessageBytes) {
        throw new OversizeError(bytes, o.maxMessageBytes, `[tranche/sqs] item ${JSON.stringify(id)} is ${bytes} bytes as an SQS message, over the limit of ${o.maxMessageBytes}`);
      }
      const entry: SendMessageBatchRequestEntry = { Id: String(index), MessageBody: body, MessageAttributes: attributes };
      if (o.fifo) {
        entry.MessageGroupId = item.group ?? o.messageGroupId(item.payload, id);
        entry.MessageDeduplicationId = deduplicationId(id);
      } else if (notBefore !== undefined) {
        entry.DelaySeconds = Math.ceil(Math.min(delay as number, SQS_MAX_DELAY_MS) / 1000);
      }
      return { id, bytes, entry };
    });
    await this.#batches(
      "SendMessageBatch",
      entries,
      (e, i) => ({ ...e.entry, Id: String(i) }),
      (Entries) => this.#call("SendMessageBatch", new SendMessageBatchCommand({ QueueUrl: o.queueUrl, Entries })),
      undefined,
      (e) => e.id,
      chunk(entries, (e) => e.bytes, o.maxBatchBytes),
    );
    return entries.map((e) => e.id);
  }
}


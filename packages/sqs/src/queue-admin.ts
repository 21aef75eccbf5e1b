import { createHash } from "node:crypto";
import {
  DeleteMessageBatchCommand,
  GetQueueAttributesCommand,
  type GetQueueAttributesCommandOutput,
  GetQueueUrlCommand,
  type Message,
  type QueueAttributeName,
  ReceiveMessageCommand,
  type ReceiveMessageCommandOutput,
  SendMessageBatchCommand,
  type SendMessageBatchRequestEntry,
  ChangeMessageVisibilityBatchCommand,
} from "@aws-sdk/client-sqs";
import { type DeadLetter, type DeadLetterPage, type QueueDepth } from "@tranche/core";
import { checkMs, decodeWith, checkDeadLetterIds, checkDeadLetterPage } from "@tranche/core/internal";
import { copyAttributes, messageBytes, numberOf, SQS_ATTRIBUTES } from "./attributes.js";
import { SqsTransportError } from "./errors.js";
import { invalid, PREFIX, type ResolvedSqsOptions } from "./options.js";
import { delaySeconds } from "./outgoing.js";
import type { SqsCalls } from "./sqs-calls.js";

/** Seconds a scan of the dead-letter queue keeps the letters it read from other readers; they are made visible again after it. */
const SCAN_VISIBILITY = 30;
/** A scan's receives long-poll this long, so that an empty answer means the queue is empty (a short poll samples). */
const SCAN_WAIT = 1;
const COUNTS: QueueAttributeName[] = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible", "ApproximateNumberOfMessagesDelayed"];
/** ms SQS's clock (a letter's `SentTimestamp`) may be ahead of ours. */
const CLOCK_SKEW = 5_000;
/** Shown as the reason of a letter SQS moved by itself (a `RedrivePolicy`), which carries none. */
const MOVED_BY_SQS = "MaxReceiveCountExceeded";

/** The dead-letter queue, and the source queue's `maxReceiveCount` when SQS moves letters there itself. */
interface DeadLetterQueue {
  readonly url: string;
  readonly maxReceiveCount: number | undefined;
}

/** A letter as read from the dead-letter queue: every message of its item id, newest last. */
interface Letter<T> {
  readonly letter: DeadLetter<T>;
  readonly messages: Message[];
}

/**
 * The operator's side of an SQS queue (`QueueAdmin`). Depth is `GetQueueAttributes`'
 * approximate counts. The dead-letter queue — `deadLetterQueueUrl`, else the target of the
 * queue's `RedrivePolicy` — cannot be read without receiving: a listing receives every letter
 * (hiding each for `SCAN_VISIBILITY` s), then makes them visible again. A redrive sends a copy to
 * the queue and only then deletes the letter, so an interrupted one loses nothing (a repeat may
 * send the item once more).
 */
export class SqsQueueAdmin<T> {
  #deadLetterQueue: Promise<DeadLetterQueue | undefined> | undefined;

  constructor(
    private readonly calls: SqsCalls,
    private readonly options: ResolvedSqsOptions<T>,
  ) {}

  /** Approximate (SQS's own counts); `deadLettered` counts every message of the dead-letter queue, 0 without one. */
  async depth(): Promise<QueueDepth> {
    const dlq = await this.#dlq();
    const [queue, dead] = await Promise.all([this.#counts(this.options.queueUrl), dlq === undefined ? undefined : this.#counts(dlq.url)]);
    return {
      ready: queue.ApproximateNumberOfMessages,
      delayed: queue.ApproximateNumberOfMessagesDelayed,
      inFlight: queue.ApproximateNumberOfMessagesNotVisible,
      deadLettered: dead === undefined ? 0 : dead.ApproximateNumberOfMessages + dead.ApproximateNumberOfMessagesNotVisible + dead.ApproximateNumberOfMessagesDelayed,
    };
  }

  async deadLetters(options?: DeadLetterPage): Promise<DeadLetter<T>[]> {
    const { limit, after } = checkDeadLetterPage(options, { prefix: PREFIX });
    const dlq = await this.#dlq();
    if (dlq === undefined) return [];
    const messages = await this.#scan(dlq.url);
    await this.#showAgain(dlq.url, messages);
    const letters = this.#letters(messages, dlq).map((l) => l.letter);
    const start = after === undefined ? 0 : letters.findIndex((l) => l.id === after) + 1;
    return start === 0 && after !== undefined ? [] : letters.slice(start, start + limit);
  }

  async redrive(ids: readonly string[] | "all", options?: { delay?: number }): Promise<number> {
    checkDeadLetterIds(ids, { prefix: PREFIX });
    const o = options ?? {};
    if (typeof o !== "object" || o === null) invalid("options", "an object", o);
    const delay = o.delay === undefined ? 0 : checkMs("delay", o.delay, { prefix: "[tranche/sqs]" });
    return this.#take(ids, "redrive", (letters) => this.#sendBack(letters, delay));
  }

  async purge(ids: readonly string[] | "all"): Promise<number> {
    checkDeadLetterIds(ids, { prefix: PREFIX });
    return this.#take(ids, "purgeDeadLetters", async () => {});
  }

  /**
   * The letters of `ids` (or all) each go through `before`, then leave the dead-letter queue;
   * resolves with how many items. `"all"` works through the queue as it receives, and leaves
   * letters written after it began.
   */
  async #take(ids: readonly string[] | "all", operation: string, before: (letters: Letter<T>[]) => Promise<void>): Promise<number> {
    const dlq = await this.#dlq();
    if (dlq === undefined) return 0;
    if (ids !== "all") {
      const wanted = new Set(ids);
      const messages = await this.#scan(dlq.url, wanted);
      const letters = this.#letters(messages, dlq).filter((l) => wanted.has(l.letter.id));
      const taken = new Set(letters.flatMap((l) => l.messages));
      await this.#showAgain(dlq.url, messages.filter((m) => !taken.has(m)));
      await this.#settleOrShow(dlq.url, [...taken], () => before(letters));
      await this.#delete(dlq.url, operation, [...taken]);
      return letters.length;
    }
    // Letters written after this began (the items it sent back, failing again) stay; SQS's clock may be a little ahead.
    const until = Date.now() + CLOCK_SKEW;
    const later: Message[] = [];
    let count = 0;
    try {
      for (;;) {
        const batch = await this.#receive(dlq.url);
        if (batch.length === 0) return count;
        const now = batch.filter((m) => sentAt(m) <= until);
        later.push(...batch.filter((m) => sentAt(m) > until));
        const letters = this.#letters(now, dlq);
        await this.#settleOrShow(dlq.url, now, () => before(letters));
        await this.#delete(dlq.url, operation, now);
        count += letters.length;
      }
    } finally {
      await this.#showAgain(dlq.url, later);
    }
  }

  /** Runs `step`; when it fails, `messages` are made visible again at once rather than after their hiding runs out. */
  async #settleOrShow(url: string, messages: Message[], step: () => Promise<void>): Promise<void> {
    try {
      await step();
    } catch (error) {
      await this.#showAgain(url, messages);
      throw error;
    }
  }

  /** A copy of each letter's newest message to the queue under its item id, fresh: no attempt or retries carried. */
  async #sendBack(letters: Letter<T>[], delay: number): Promise<void> {
    const o = this.options;
    const notBefore = delay > 0 ? o.clock.now() + delay : undefined;
    const entries = letters.map(({ letter, messages }, i) => {
      const message = messages[messages.length - 1] as Message;
      const body = message.Body ?? "";
      const original = message.MessageAttributes ?? {};
      const attributes = copyAttributes(body, original, { id: letter.id, attempt: 0, retries: 0, notBefore: notBefore ?? 0 }, o.maxMessageBytes);
      if (attributes === undefined) {
        throw new SqsTransportError("SendMessageBatch", `redrive: item ${JSON.stringify(letter.id)} cannot be sent back: its body and the transport's attributes exceed maxMessageBytes ${o.maxMessageBytes}`, {
          retryable: false,
        });
      }
      if (notBefore === undefined) delete attributes[SQS_ATTRIBUTES.notBefore];
      const entry: SendMessageBatchRequestEntry = { Id: String(i), MessageBody: body, MessageAttributes: attributes };
      if (o.fifo) {
        entry.MessageGroupId = message.Attributes?.MessageGroupId ?? groupOf(o, letter);
        // The same letter sent back twice (a redrive repeated before its delete) is one message.
        entry.MessageDeduplicationId = createHash("sha256").update(`${letter.id}\n${message.MessageId ?? ""}`).digest("hex");
      } else if (delay > 0) {
        entry.DelaySeconds = delaySeconds(delay);
      }
      return { id: letter.id, entry, bytes: messageBytes(body, attributes) };
    });
    const outcome = await this.calls.batch(entries, {
      entry: (e, Id) => ({ ...e.entry, Id }),
      call: (Entries) => this.calls.call("SendMessageBatch", new SendMessageBatchCommand({ QueueUrl: o.queueUrl, Entries })),
      idOf: (e) => e.id,
      ...(o.fifo ? { groupOf: (e: (typeof entries)[number]) => e.entry.MessageGroupId } : {}),
      bytesOf: (e) => e.bytes,
      maxBytes: o.maxBatchBytes,
    });
    this.calls.throwFailures("SendMessageBatch", outcome);
  }

  /**
   * Every message of the dead-letter queue, each received once (hidden while the scan runs);
   * with `wanted`, it stops once it has a message of each. A message seen again (its hiding ran
   * out during a long scan) ends it too, with its newer receipt handle.
   */
  async #scan(url: string, wanted?: ReadonlySet<string>): Promise<Message[]> {
    const seen = new Map<string, Message>();
    const found = new Set<string>();
    for (;;) {
      const batch = await this.#receive(url);
      let fresh = 0;
      for (const m of batch) {
        const key = m.MessageId ?? m.ReceiptHandle ?? "";
        if (!seen.has(key)) fresh++;
        seen.set(key, m);
        found.add(itemIdOf(m));
      }
      if (fresh === 0) return [...seen.values()];
      if (wanted !== undefined && [...wanted].every((id) => found.has(id))) return [...seen.values()];
    }
  }

  async #receive(url: string): Promise<Message[]> {
    const output: ReceiveMessageCommandOutput = await this.calls.call(
      "ReceiveMessage",
      new ReceiveMessageCommand({
        QueueUrl: url,
        MaxNumberOfMessages: 10,
        WaitTimeSeconds: SCAN_WAIT,
        VisibilityTimeout: SCAN_VISIBILITY,
        MessageSystemAttributeNames: ["SentTimestamp", "MessageGroupId", "SequenceNumber"],
        MessageAttributeNames: ["All"],
      }),
      { wait: SCAN_WAIT * 1000 },
    );
    return output.Messages ?? [];
  }

  /** Makes scanned messages visible again. Best effort: one it misses shows again after `SCAN_VISIBILITY`. */
  async #showAgain(url: string, messages: Message[]): Promise<void> {
    if (messages.length === 0) return;
    await this.calls
      .batch(messages, {
        entry: (m, Id) => ({ Id, ReceiptHandle: m.ReceiptHandle ?? "", VisibilityTimeout: 0 }),
        call: (Entries) => this.calls.call("ChangeMessageVisibilityBatch", new ChangeMessageVisibilityBatchCommand({ QueueUrl: url, Entries })),
        idOf: itemIdOf,
      })
      .catch(() => {});
  }

  async #delete(url: string, operation: string, messages: Message[]): Promise<void> {
    if (messages.length === 0) return;
    const outcome = await this.calls.batch(messages, {
      entry: (m, Id) => ({ Id, ReceiptHandle: m.ReceiptHandle ?? "" }),
      call: (Entries) => this.calls.call("DeleteMessageBatch", new DeleteMessageBatchCommand({ QueueUrl: url, Entries })),
      idOf: itemIdOf,
    });
    try {
      this.calls.throwFailures("DeleteMessageBatch", outcome);
    } catch (error) {
      // What is left shows again at once, as it is: still a dead letter.
      const deleted = new Set(outcome.done);
      await this.#showAgain(url, messages.filter((m) => !deleted.has(m)));
      throw new SqsTransportError(operation, `${operation}: some letters were not deleted from the dead-letter queue (a repeat finds them): ${(error as Error).message.replace(/^\[tranche\/sqs\] /, "")}`, {
        retryable: (error as SqsTransportError).retryable ?? true,
        cause: error,
      });
    }
  }

  /** One letter per item id (its newest message), oldest first. */
  #letters(messages: Message[], dlq: DeadLetterQueue): Letter<T>[] {
    const byId = new Map<string, Message[]>();
    for (const m of [...messages].sort(byAge)) {
      const id = itemIdOf(m);
      const list = byId.get(id) ?? [];
      list.push(m);
      byId.set(id, list);
    }
    const letters = [...byId.values()].map((list) => ({ letter: this.#letterOf(list[list.length - 1] as Message, dlq), messages: list }));
    return letters.sort((a, b) => a.letter.at - b.letter.at || (a.letter.id < b.letter.id ? -1 : 1));
  }

  #letterOf(message: Message, dlq: DeadLetterQueue): DeadLetter<T> {
    const attributes = message.MessageAttributes ?? {};
    const body = message.Body ?? "";
    const raw = attributes[SQS_ATTRIBUTES.encoding]?.StringValue === "base64" ? new Uint8Array(Buffer.from(body, "base64")) : body;
    const decoded = decodeWith(this.options.codec, raw);
    const name = attributes[SQS_ATTRIBUTES.error]?.StringValue;
    const carried = numberOf(attributes, SQS_ATTRIBUTES.attempt) ?? 0;
    // Without the transport's reason, SQS moved it: after maxReceiveCount receives in the queue.
    const movedBySqs = name === undefined;
    return {
      id: itemIdOf(message),
      payload: "payload" in decoded ? decoded.payload : undefined,
      raw,
      attempt: movedBySqs ? carried + (dlq.maxReceiveCount ?? 0) : carried,
      retries: numberOf(attributes, SQS_ATTRIBUTES.retries) ?? (this.options.fifo ? undefined : 0),
      reason: movedBySqs
        ? { name: MOVED_BY_SQS, message: `moved by the queue's RedrivePolicy after ${dlq.maxReceiveCount ?? "maxReceiveCount"} receives` }
        : { name, message: attributes[SQS_ATTRIBUTES.reason]?.StringValue ?? "" },
      at: sentAt(message),
    };
  }

  async #counts(url: string): Promise<Record<(typeof COUNTS)[number] & string, number>> {
    const out: GetQueueAttributesCommandOutput = await this.calls.call("GetQueueAttributes", new GetQueueAttributesCommand({ QueueUrl: url, AttributeNames: COUNTS }));
    const a = out.Attributes ?? {};
    return Object.fromEntries(COUNTS.map((name) => [name, Number(a[name] ?? 0) || 0])) as Record<(typeof COUNTS)[number] & string, number>;
  }

  /** `deadLetterQueueUrl`, else the queue's `RedrivePolicy` target; looked up once (a failed lookup is tried again). */
  #dlq(): Promise<DeadLetterQueue | undefined> {
    this.#deadLetterQueue ??= this.#findDlq().catch((error: unknown) => {
      this.#deadLetterQueue = undefined;
      throw error;
    });
    return this.#deadLetterQueue;
  }

  async #findDlq(): Promise<DeadLetterQueue | undefined> {
    const { queueUrl, deadLetterQueueUrl } = this.options;
    const out: GetQueueAttributesCommandOutput = await this.calls.call("GetQueueAttributes", new GetQueueAttributesCommand({ QueueUrl: queueUrl, AttributeNames: ["RedrivePolicy"] }));
    const policy = parsePolicy(out.Attributes?.RedrivePolicy);
    if (deadLetterQueueUrl !== undefined) return { url: deadLetterQueueUrl, maxReceiveCount: policy?.maxReceiveCount };
    if (policy === undefined) return undefined;
    // arn:aws:sqs:<region>:<account>:<name>
    const [, , , , account, name] = policy.deadLetterTargetArn.split(":");
    const found = await this.calls.call<{ QueueUrl?: string }>("GetQueueUrl", new GetQueueUrlCommand({ QueueName: name, ...(account ? { QueueOwnerAWSAccountId: account } : {}) }));
    return found.QueueUrl === undefined ? undefined : { url: found.QueueUrl, maxReceiveCount: policy.maxReceiveCount };
  }
}

function parsePolicy(text: string | undefined): { deadLetterTargetArn: string; maxReceiveCount: number | undefined } | undefined {
  if (text === undefined || text === "") return undefined;
  try {
    const policy = JSON.parse(text) as { deadLetterTargetArn?: unknown; maxReceiveCount?: unknown };
    if (typeof policy.deadLetterTargetArn !== "string") return undefined;
    const count = Number(policy.maxReceiveCount);
    return { deadLetterTargetArn: policy.deadLetterTargetArn, maxReceiveCount: Number.isFinite(count) ? count : undefined };
  } catch {
    return undefined;
  }
}

function itemIdOf(message: Message): string {
  return message.MessageAttributes?.[SQS_ATTRIBUTES.id]?.StringValue ?? message.MessageId ?? "";
}

function sentAt(message: Message): number {
  return Number(message.Attributes?.SentTimestamp ?? 0) || 0;
}

function byAge(a: Message, b: Message): number {
  return sentAt(a) - sentAt(b);
}

/** The FIFO message group of a letter sent back from a standard dead-letter queue. */
function groupOf<T>(o: ResolvedSqsOptions<T>, letter: DeadLetter<T>): string {
  try {
    return o.messageGroupId(letter.payload as T, letter.id);
  } catch {
    return "default";
  }
}

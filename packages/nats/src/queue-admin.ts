import { type DeadLetter, type DeadLetterPage, type QueueDepth } from "@tranche/core";
import { checkMs, decodeWith, checkDeadLetterIds, checkDeadLetterPage } from "@tranche/core/internal";
import { JetStreamApiCodes, type JetStreamManager, type MsgRequest } from "@nats-io/jetstream";
import type { MsgHdrs } from "@nats-io/transport-node";
import { transportError } from "./classify.js";
import { Header } from "./headers.js";
import { itemHeaders, producerHeaders } from "./message.js";
import { invalid, PREFIX, type ResolvedNatsTransportOptions } from "./options.js";
import { isApiError } from "./setup.js";

/** What the admin needs of its transport. */
export interface NatsAdminHooks {
  /** The JetStream manager of the connection, opened on first use; `where` names the server for errors. */
  connect(operation: string): Promise<{ jsm: JetStreamManager; where: string }>;
  /** Publishes to the stream, waiting for its ack (see the transport's `#publish`). */
  publish(operation: string, subject: string, data: Uint8Array, options: { headers: MsgHdrs; msgID: string }): Promise<unknown>;
}

/** A dead-letter message as read from its stream. */
interface Stored<T> {
  readonly seq: number;
  readonly header: MsgHdrs | undefined;
  readonly data: Uint8Array;
  readonly letter: DeadLetter<T>;
}

/**
 * The operator's side of a JetStream queue (`QueueAdmin`). Depth is the durable consumer's
 * `num_pending` and `num_ack_pending`, and the messages on the dead-letter subject. Dead letters
 * are read one by one by subject (`STREAM.MSG.GET` with `next_by_subj`: no consumer, so readers
 * never meet on a work-queue stream, which allows one consumer per subject); a redrive publishes the item again
 * (deduplicated by the letter's stream sequence) and only then deletes the letter. It creates no
 * stream and no consumer.
 */
export class NatsQueueAdmin<T> {
  constructor(
    private readonly options: ResolvedNatsTransportOptions<T>,
    private readonly hooks: NatsAdminHooks,
  ) {}

  /**
   * `ready`: messages the consumer has not delivered yet (the whole subject when there is no
   * consumer yet); `inFlight`: delivered and not acked — JetStream keeps a retry (a nak with a
   * delay), and a delayed send once first delivered, that way too, so they count here and
   * `delayed` is 0; `deadLettered`: messages on the dead-letter subject. Exact, read in three calls.
   */
  async depth(): Promise<QueueDepth> {
    const o = this.options;
    return this.#call("depth", async ({ jsm }) => {
      const [consumer, stream, deadLettered] = await Promise.all([
        missing(jsm.consumers.info(o.stream, o.durable)),
        missing(jsm.streams.info(o.stream, { subjects_filter: o.subject })),
        this.#deadCount(jsm),
      ]);
      const ready = consumer?.num_pending ?? stream?.state.subjects?.[o.subject] ?? 0;
      return { ready, delayed: 0, inFlight: consumer?.num_ack_pending ?? 0, deadLettered };
    });
  }

  async deadLetters(options?: DeadLetterPage): Promise<DeadLetter<T>[]> {
    const { limit, after } = checkDeadLetterPage(options, { prefix: PREFIX });
    const letters = newestOf((await this.#call("deadLetters", (s) => this.#read(s))).stored).map((stored) => stored.letter);
    const start = after === undefined ? 0 : letters.findIndex((l) => l.id === after) + 1;
    return after !== undefined && start === 0 ? [] : letters.slice(start, start + limit);
  }

  async redrive(ids: readonly string[] | "all", options?: { delay?: number }): Promise<number> {
    checkDeadLetterIds(ids, { prefix: PREFIX });
    const o = options ?? {};
    if (typeof o !== "object" || o === null) invalid("options", "an object", o);
    const delay = o.delay === undefined ? 0 : checkMs("delay", o.delay, { prefix: PREFIX });
    return this.#call("redrive", async (s) => {
      const { stream, stored } = await this.#read(s);
      const chosen = this.#choose(stored, ids);
      const notBefore = delay > 0 ? this.options.clock.now() + delay : undefined;
      for (const copies of chosen.values()) {
        const newest = copies[copies.length - 1] as Stored<T>;
        const headers = itemHeaders(newest.letter.id, notBefore, producerHeaders(newest.header));
        // The same letter sent back twice (a redrive repeated before its deletes) is one message.
        await this.hooks.publish("redrive", this.options.subject, newest.data, { headers, msgID: `redrive:${stream}:${newest.seq}:${newest.letter.at}` });
        await deleteAll(s.jsm, stream as string, copies);
      }
      return chosen.size;
    });
  }

  async purge(ids: readonly string[] | "all"): Promise<number> {
    checkDeadLetterIds(ids, { prefix: PREFIX });
    return this.#call("purgeDeadLetters", async (s) => {
      if (ids === "all") {
        const stream = await this.#deadStream(s.jsm);
        return stream === undefined ? 0 : (await s.jsm.streams.purge(stream, { filter: this.options.deadLetterSubject })).purged;
      }
      const { stream, stored } = await this.#read(s);
      const chosen = this.#choose(stored, ids);
      for (const copies of chosen.values()) await deleteAll(s.jsm, stream as string, copies);
      return chosen.size;
    });
  }

  async #call<V>(operation: string, body: (s: { jsm: JetStreamManager; where: string }) => Promise<V>): Promise<V> {
    const s = await this.hooks.connect(operation);
    try {
      return await body(s);
    } catch (error) {
      throw transportError(operation, error, s.where);
    }
  }

  /** Every message on the dead-letter subject, in stream order, and the stream that holds them. */
  async #read(s: { jsm: JetStreamManager }): Promise<{ stream: string | undefined; stored: Stored<T>[] }> {
    const stream = await this.#deadStream(s.jsm);
    const stored: Stored<T>[] = [];
    if (stream === undefined) return { stream, stored };
    const subject = this.options.deadLetterSubject;
    for (let seq = 1; ; ) {
      const m = await missing(s.jsm.streams.getMessage(stream, { seq, next_by_subj: subject } as MsgRequest));
      if (m === null || m === undefined || m.subject !== subject) return { stream, stored };
      const header = m.header as MsgHdrs | undefined;
      stored.push({ seq: m.seq, header, data: m.data, letter: this.#letterOf(m.seq, header, m.data, m.time.getTime()) });
      seq = m.seq + 1;
    }
  }

  /** The letters of `ids` (or all), grouped by item id, each group in stream order. */
  #choose(stored: Stored<T>[], ids: readonly string[] | "all"): Map<string, Stored<T>[]> {
    const wanted = ids === "all" ? undefined : new Set(ids);
    const chosen = new Map<string, Stored<T>[]>();
    for (const s of stored) {
      if (wanted !== undefined && !wanted.has(s.letter.id)) continue;
      const copies = chosen.get(s.letter.id) ?? [];
      copies.push(s);
      chosen.set(s.letter.id, copies);
    }
    return chosen;
  }

  /** The stream that captures the dead-letter subject; `undefined` when none does. */
  async #deadStream(jsm: JetStreamManager): Promise<string | undefined> {
    try {
      return await jsm.streams.find(this.options.deadLetterSubject);
    } catch (error) {
      if (/no stream matches subject/i.test((error as Error).message)) return undefined;
      throw error;
    }
  }

  async #deadCount(jsm: JetStreamManager): Promise<number> {
    const stream = await this.#deadStream(jsm);
    if (stream === undefined) return 0;
    const info = await missing(jsm.streams.info(stream, { subjects_filter: this.options.deadLetterSubject }));
    return info?.state.subjects?.[this.options.deadLetterSubject] ?? 0;
  }

  #letterOf(seq: number, h: MsgHdrs | undefined, data: Uint8Array, at: number): DeadLetter<T> {
    const decoded = decodeWith(this.options.codec, data);
    return {
      id: h?.get(Header.id) || `seq-${seq}`,
      payload: "payload" in decoded ? decoded.payload : undefined,
      raw: data,
      attempt: count(h?.get(Header.attempt)),
      retries: count(h?.get(Header.retries)),
      reason: { name: h?.get(Header.errorName) || "Error", message: h?.get(Header.reason) ?? "" },
      at,
    };
  }
}

/** JetStream's answer to deleting a message that is not there (deleted already, or past the end). */
const DELETE_FAILED = 10057;

/** Deletes the messages of `copies` from `stream`; one deleted already (by a repeat) is fine. */
async function deleteAll(jsm: JetStreamManager, stream: string, copies: readonly { seq: number }[]): Promise<void> {
  for (const { seq } of copies) {
    try {
      await jsm.streams.deleteMessage(stream, seq, false);
    } catch (error) {
      if (!(isApiError(error, DELETE_FAILED) && /no message found|EOF/i.test((error as Error).message))) throw error;
    }
  }
}

/** One entry per item id: its newest letter, in the stream order of those. */
function newestOf<T>(stored: Stored<T>[]): Stored<T>[] {
  const newest = new Map<string, Stored<T>>();
  for (const s of stored) {
    newest.delete(s.letter.id);
    newest.set(s.letter.id, s);
  }
  return [...newest.values()];
}

/** The value of `call`, or `undefined` when the stream, consumer or message is not there. */
async function missing<V>(call: Promise<V>): Promise<V | undefined> {
  try {
    return await call;
  } catch (error) {
    if (isApiError(error, JetStreamApiCodes.StreamNotFound) || isApiError(error, JetStreamApiCodes.ConsumerNotFound) || isApiError(error, JetStreamApiCodes.NoMessageFound)) return undefined;
    throw error;
  }
}

function count(text: string | undefined): number {
  const n = Number(text);
  return Number.isSafeInteger(n) && n >= 0 ? n : 0;
}

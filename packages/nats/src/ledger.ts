import { DeliverPolicy, type JetStreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import type { ResolvedLedger } from "./options.js";
import { readAll } from "./pull.js";

/** What workers recorded about one work message (its stream sequence is the key). */
export interface MessageRecord {
  /** Times it was retried: handler runs that ended with a retry. */
  readonly retries: number;
  /** Epoch ms before which it must not run: the last retry's bound. */
  readonly notBefore?: number;
  /** Delivery counts that were released: deliveries that do not count in `attempt`. */
  readonly released: readonly number[];
}

/** One entry of settled messages: the work stream's incarnation and the sequences. */
interface Settled {
  readonly s: string;
  readonly q: readonly number[];
}

// Settled entries older than this are not read back: the server forgets deletions of a few
// minutes at most (2.9 syncs its store every 2 minutes).
const SETTLED_WINDOW = 10 * 60_000;

/**
 * The ledger stream: what a crashed server may forget, written by workers before the call that
 * caused it resolves. `<subject>.settled` entries list messages settled (acked, dead-lettered);
 * `<subject>.m.<incarnation>.<seq>` holds the last record of a retried or released message.
 * Messages of a work stream deleted and created again under the same name are told apart by
 * the stream's creation time (its incarnation).
 */
export class Ledger {
  readonly config: ResolvedLedger;
  #incarnation: string | undefined;
  #settled = new Set<number>();
  #records = new Map<number, MessageRecord>();

  constructor(config: ResolvedLedger) {
    this.config = config;
  }

  get settledSubject(): string {
    return `${this.config.subject}.settled`;
  }

  recordSubject(incarnation: string, seq: number): string {
    return `${this.config.subject}.m.${token(incarnation)}.${seq}`;
  }

  settledEntry(incarnation: string, seqs: readonly number[]): string {
    return JSON.stringify({ s: incarnation, q: seqs } satisfies Settled);
  }

  /** Reads the recent settled entries and every record of the work stream `incarnation`. */
  async load(nc: NatsConnection, jsm: JetStreamManager, incarnation: string): Promise<void> {
    const settled = new Set<number>();
    const records = new Map<number, MessageRecord>();
    const since = new Date(Date.now() - SETTLED_WINDOW).toISOString();
    await readAll(nc, jsm, { stream: this.config.stream, filter: this.settledSubject, deliver_policy: DeliverPolicy.StartTime, opt_start_time: since }, (msg) => {
      const entry = parse<Settled>(msg.data);
      if (entry?.s === incarnation && Array.isArray(entry.q)) for (const seq of entry.q) settled.add(seq);
    });
    const prefix = `${this.config.subject}.m.${token(incarnation)}.`;
    await readAll(nc, jsm, { stream: this.config.stream, filter: `${prefix}>`, deliver_policy: DeliverPolicy.LastPerSubject }, (msg) => {
      const record = parse<MessageRecord>(msg.data);
      if (record !== undefined) records.set(Number(msg.subject.slice(prefix.length)), record);
    });
    this.#incarnation = incarnation;
    this.#settled = settled;
    this.#records = records;
  }

  /** Whether message `seq` of `incarnation` was settled, as the last read said. */
  isSettled(incarnation: string | undefined, seq: number): boolean {
    return incarnation === this.#incarnation && this.#settled.has(seq);
  }

  /** The record of message `seq`, as read last or written by this transport since. */
  known(incarnation: string | undefined, seq: number): MessageRecord | undefined {
    return incarnation === this.#incarnation ? this.#records.get(seq) : undefined;
  }

  /** Keeps a record this transport wrote (once the server confirmed it). */
  remember(incarnation: string | undefined, seq: number, record: MessageRecord): void {
    if (incarnation === this.#incarnation) this.#records.set(seq, record);
  }

  /** Drops the record of message `seq` once it is settled: what a worker keeps does not grow with what it handled. */
  forget(incarnation: string | undefined, seq: number): void {
    if (incarnation === this.#incarnation) this.#records.delete(seq);
  }

  /** Reads the record of message `seq` from the server. */
  async lookup(jsm: JetStreamManager, incarnation: string, seq: number): Promise<MessageRecord | undefined> {
    const stored = await jsm.streams.getMessage(this.config.stream, { last_by_subj: this.recordSubject(incarnation, seq) });
    const record = stored === null ? undefined : parse<MessageRecord>(stored.data);
    if (record !== undefined) this.remember(incarnation, seq, record);
    return record;
  }
}

/** A subject token for an incarnation (a creation time such as "2024-05-01T12:00:00.123456789Z"). */
function token(incarnation: string): string {
  return incarnation.replace(/[^0-9A-Za-z]/g, "");
}

function parse<T>(data: Uint8Array): T | undefined {
  try {
    return JSON.parse(new TextDecoder().decode(data)) as T;
  } catch {
    return undefined; // not an entry of ours
  }
}

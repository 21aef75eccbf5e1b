import {
  AckPolicy,
  DiscardPolicy,
  JetStreamApiCodes,
  JetStreamApiError,
  RetentionPolicy,
  StorageType,
  type ConsumerConfig,
  type JetStreamManager,
  type StreamInfo,
} from "@nats-io/jetstream";
import { NatsSetupError } from "./errors.js";
import { subjectMatches, type ResolvedLedger, type ResolvedNatsTransportOptions } from "./options.js";

export function isApiError(error: unknown, code: number): boolean {
  return error instanceof JetStreamApiError && error.code === code;
}

/** The stream's info; it is created from `config` when absent. */
async function streamInfo(jsm: JetStreamManager, name: string, config: () => Parameters<JetStreamManager["streams"]["add"]>[0]): Promise<StreamInfo> {
  try {
    return await jsm.streams.info(name);
  } catch (error) {
    if (!isApiError(error, JetStreamApiCodes.StreamNotFound)) throw error;
  }
  try {
    return await jsm.streams.add(config());
  } catch (addError) {
    // Another worker created it first, or the subjects overlap another stream's.
    return jsm.streams.info(name).catch(() => {
      if (addError instanceof JetStreamApiError && addError.status === 400) {
        throw new NatsSetupError(`cannot create stream ${name}: ${addError.message}`, { cause: addError });
      }
      throw addError;
    });
  }
}

/**
 * Creates the work stream if absent (file storage, work-queue retention, `discard: new`,
 * capturing `subject` and `deadLetterSubject`) and checks that it captures the subjects. Resolves with its creation time,
 * which tells a stream from one deleted and created again under the same name.
 */
export async function ensureStream(jsm: JetStreamManager, o: ResolvedNatsTransportOptions<unknown>): Promise<string> {
  const info = await streamInfo(jsm, o.stream, () => ({
    retention: RetentionPolicy.Workqueue,
    storage: StorageType.File,
    // With limits set, a full stream refuses sends (the producer sees it) instead of dropping its oldest items.
    discard: DiscardPolicy.New,
    ...o.streamConfig,
    name: o.stream,
    subjects: [o.subject, o.deadLetterSubject],
  }));
  const subjects = info.config.subjects ?? [];
  if (!subjects.some((s) => subjectMatches(s, o.subject))) {
    throw new NatsSetupError(`stream ${o.stream} does not capture subject ${o.subject} (its subjects: ${subjects.join(", ") || "none"})`);
  }
  if (!subjects.some((s) => subjectMatches(s, o.deadLetterSubject))) {
    // Dead letters may live in another stream; one must capture them, or they would be dropped.
    await jsm.streams.find(o.deadLetterSubject).catch((cause) => {
      throw new NatsSetupError(`no stream captures the dead-letter subject ${o.deadLetterSubject}`, { cause });
    });
  }
  return info.created;
}

/**
 * Creates the durable pull consumer if absent, checks it, and brings its AckWait and
 * MaxAckPending to the options, with no MaxDeliver (a message the server stops delivering would
 * stay in a work-queue stream for good). Only a transport that receives calls it.
 */
export async function ensureConsumer(jsm: JetStreamManager, o: ResolvedNatsTransportOptions<unknown>): Promise<void> {
  const tunables: Partial<ConsumerConfig> = { ack_wait: o.ackWait * 1_000_000, max_deliver: -1, max_ack_pending: o.maxAckPending };
  const where = `consumer ${o.durable} of stream ${o.stream}`;
  let info;
  try {
    info = await jsm.consumers.info(o.stream, o.durable);
  } catch (error) {
    if (!isApiError(error, JetStreamApiCodes.ConsumerNotFound)) throw error;
    const config: Partial<ConsumerConfig> = { durable_name: o.durable, ack_policy: AckPolicy.Explicit, filter_subject: o.subject, max_waiting: 512, ...tunables };
    info = await jsm.consumers.add(o.stream, config).catch(async (addError: unknown) => {
      return jsm.consumers.info(o.stream, o.durable).catch(() => {
        if (addError instanceof JetStreamApiError && addError.status === 400) {
          // e.g. "filtered consumer not unique on workqueue stream": another durable takes the subject.
          throw new NatsSetupError(`cannot create ${where}: ${addError.message} (every worker of a subject must use the same durable)`, { cause: addError });
        }
        throw addError;
      });
    });
  }
  const c = info.config;
  if (c.deliver_subject) throw new NatsSetupError(`${where} is a push consumer; tranche needs a pull consumer`);
  if (c.ack_policy !== AckPolicy.Explicit) throw new NatsSetupError(`${where} has ack_policy ${c.ack_policy}; tranche needs "explicit"`);
  const filters = c.filter_subjects ?? (c.filter_subject ? [c.filter_subject] : []);
  if (filters.length > 0 && !filters.some((f) => subjectMatches(f, o.subject))) {
    throw new NatsSetupError(`${where} filters ${filters.join(", ")}, not ${o.subject}`);
  }
  if (c.ack_wait !== tunables.ack_wait || c.max_deliver !== tunables.max_deliver || c.max_ack_pending !== tunables.max_ack_pending) {
    // The settings follow the worker that connects last: give every worker the same options.
    await jsm.consumers.update(o.stream, o.durable, tunables);
  }
}

/** Creates the ledger's stream if absent (limits retention, file storage, max age) and checks its subjects. */
export async function ensureLedgerStream(jsm: JetStreamManager, ledger: ResolvedLedger): Promise<void> {
  const subjects = [`${ledger.subject}.>`];
  const info = await streamInfo(jsm, ledger.stream, () => ({
    name: ledger.stream,
    subjects,
    retention: RetentionPolicy.Limits,
    storage: StorageType.File,
    discard: DiscardPolicy.Old,
    max_age: ledger.maxAge * 1_000_000,
  }));
  const captured = info.config.subjects ?? [];
  if (!captured.some((s) => subjectMatches(s, `${ledger.subject}.settled`))) {
    throw new NatsSetupError(`ledger stream ${ledger.stream} does not capture ${ledger.subject}.> (its subjects: ${captured.join(", ") || "none"})`);
  }
}

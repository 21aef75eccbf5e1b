import type { JetStreamManager, MsgRequest } from "@nats-io/jetstream";
import type { ResolvedNatsTransportOptions } from "./options.js";

/**
 * A crashed JetStream 2.9 server can bring back messages that were settled: it writes
 * work-queue deletions lazily, while the consumer's ack floor (written more often) already lies
 * past them, so the consumer never hands them out again and they would stay in the stream for
 * good. Every message on the subject at or below the ack floor was acked, so this deletes those
 * stored from `from` up to the floor, one by one (a purge with a subject filter would also drop
 * the consumer's pending deliveries on 2.9); messages on other subjects (dead letters) are
 * stepped over. Resolves with where the next sweep starts, and whether one is due: the stream
 * holds more messages on the subject than the consumer has pending (the floor may pass more).
 */
export async function deleteSettled(
  jsm: JetStreamManager,
  o: ResolvedNatsTransportOptions<unknown>,
  from: number,
  stopped: () => boolean,
): Promise<{ from: number; due: boolean }> {
  const floor = (await jsm.consumers.info(o.stream, o.durable)).ack_floor.stream_seq;
  for (let seq = from; seq <= floor && !stopped(); ) {
    // The next stored message on any subject: after a crash, a 2.9 server can miss a message in
    // a lookup by subject (and so can its consumer). `next_by_subj` is in STREAM.MSG.GET since 2.9.
    const stored = await jsm.streams.getMessage(o.stream, { seq, next_by_subj: ">" } as MsgRequest);
    if (stored === null || stored.seq > floor) break;
    // Another worker may have deleted it first.
    if (stored.subject === o.subject) await jsm.streams.deleteMessage(o.stream, stored.seq, false).catch(() => {});
    seq = stored.seq + 1;
  }
  const stream = await jsm.streams.info(o.stream, { subjects_filter: o.subject });
  const consumer = await jsm.consumers.info(o.stream, o.durable);
  return { from: Math.max(from, floor + 1), due: (stream.state.subjects?.[o.subject] ?? 0) > consumer.num_pending + consumer.num_ack_pending };
}

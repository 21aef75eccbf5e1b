import type { Delivery } from "@tranche/core";
import type { Msg } from "@nats-io/transport-node";
import type { MessageRecord } from "./ledger.js";
import type { MessageInfo } from "./message.js";

/**
 * A received message, what it says about its item, the work stream's incarnation and the
 * message's ledger record at receipt. A retry or release writes a record derived from that one,
 * so repeating it writes the same record. `msg` and `epoch` (the connection's at receipt) change
 * when the message is delivered again to this transport after a reconnect (see `adopt`).
 */
export interface Held {
  msg: Msg;
  epoch: number;
  readonly info: MessageInfo;
  readonly incarnation: string | undefined;
  readonly record: MessageRecord | undefined;
}

/** The deliveries a transport handed out: each one's message, and those not yet settled. */
export class HeldDeliveries<T> {
  readonly #byDelivery = new WeakMap<Delivery<T>, Held>();
  // Not yet settled, by stream sequence.
  readonly #outstanding = new Map<number, Held>();

  add(delivery: Delivery<T>, held: Held): void {
    this.#byDelivery.set(delivery, held);
    this.#outstanding.set(held.info.seq, held);
  }

  /** The held message of a delivery; a `TypeError` for one this transport did not hand out. */
  of(delivery: Delivery<T>): Held {
    const held = this.#byDelivery.get(delivery);
    if (held === undefined) throw new TypeError(`[tranche/nats] delivery ${JSON.stringify(delivery?.id)} was not received by this transport`);
    return held;
  }

  /**
   * A server that restarted can forget it handed a message to this transport: when it delivers
   * it again, the worker still holds the first delivery. Its calls now go to the new one, which is
   * not handed out, so the item does not run twice here. True when `h` was adopted so.
   */
  adopt(h: Held): boolean {
    const before = this.#outstanding.get(h.info.seq);
    if (before === undefined || before.incarnation !== h.incarnation || before.epoch >= h.epoch) return false;
    before.msg = h.msg;
    before.epoch = h.epoch;
    return true;
  }

  /** Forgets deliveries the server confirmed settled (acked, retried, released, dead-lettered). */
  done(held: Held[]): void {
    for (const h of held) if (this.#outstanding.get(h.info.seq) === h) this.#outstanding.delete(h.info.seq);
  }

  /** Forgets the unsettled deliveries of another incarnation of the stream (deleted since). */
  keepOnly(incarnation: string): void {
    for (const [seq, h] of this.#outstanding) if (h.incarnation !== incarnation) this.#outstanding.delete(seq);
  }
}

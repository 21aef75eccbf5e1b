import { createHash } from "node:crypto";
import { type Codec, type Delivery } from "@tranche/core";
import { decodeWith } from "@tranche/core/internal";
import type { Message } from "amqplib";
import type { Consumer } from "./consumer.js";
import { count, DELIVERY_COUNT, Header } from "./headers.js";
import { producerHeaders } from "./messages.js";
import { PREFIX } from "./options.js";

/** What the transport keeps about a delivery it handed out. */
export interface Handle {
  /** The transport that received it. */
  readonly owner: object;
  readonly message: Message;
  /** The channel that delivered it: the only one it can be settled on. */
  readonly consumer: Consumer;
  /** The broker took its ack. */
  settled: boolean;
  /** The broker confirmed the copy that replaces it (a retry's, a dead letter, a release's): a repeated call only acks. */
  copied: boolean;
  /** The call settling it, while under way: a repeated call waits for it (a second ack of one tag would close the channel). */
  settling: Promise<unknown> | undefined;
}

/** The item id of a message: its `messageId`, or for one published without it a digest of its bytes (the same on every delivery). */
export function itemId(message: Message): string {
  const messageId = message.properties.messageId;
  return typeof messageId === "string" && messageId !== "" ? messageId : `sha256-${createHash("sha256").update(message.content).digest("hex").slice(0, 24)}`;
}

/**
 * A delivery from a RabbitMQ queue. `attempt` adds the deliveries before this copy of the item
 * (`tranche-deliveries`) to the deliveries of this copy: a quorum queue counts them in
 * `x-delivery-count`; a classic queue only says whether the message was delivered before, so
 * there `attempt` is a lower bound. The item id is the `messageId`, or for a message published
 * without one a digest of its bytes (the same on every delivery).
 */
export class AmqpDelivery<T> implements Delivery<T> {
  readonly id: string;
  readonly payload: T;
  readonly attempt: number;
  readonly retries: number;
  declare readonly notBefore?: number;
  declare readonly error?: Error;
  declare readonly headers?: Readonly<Record<string, string>>;
  readonly #handle: Handle;

  constructor(owner: object, codec: Codec<T>, message: Message, consumer: Consumer, now: number) {
    const headers = message.properties.headers ?? {};
    this.id = itemId(message);
    const before = count(headers[Header.deliveries]) ?? 0;
    const ofThisCopy = count(headers[DELIVERY_COUNT]) ?? (message.fields.redelivered ? 1 : 0);
    this.attempt = before + ofThisCopy + 1;
    this.retries = count(headers[Header.retries]) ?? 0;
    const decoded = decodeWith(codec, message.content);
    if ("error" in decoded) {
      this.payload = undefined as T;
      (this as { error?: Error }).error = decoded.error;
    } else {
      this.payload = decoded.payload;
    }
    const notBefore = Number(headers[Header.notBefore]);
    if (notBefore > now) (this as { notBefore?: number }).notBefore = notBefore;
    const own = producerHeaders(headers);
    if (own !== undefined) (this as { headers?: Readonly<Record<string, string>> }).headers = own;
    this.#handle = { owner, message, consumer, settled: false, copied: false, settling: undefined };
  }

  /** The handle of `delivery`, or a TypeError for one that `owner` did not receive. */
  static handle(delivery: Delivery<unknown>, owner: object): Handle {
    if (typeof delivery !== "object" || delivery === null || !(#handle in delivery) || (delivery as AmqpDelivery<unknown>).#handle.owner !== owner) {
      throw new TypeError(`${PREFIX} delivery ${JSON.stringify((delivery as { id?: unknown } | null)?.id)} was not received by this transport`);
    }
    return (delivery as AmqpDelivery<unknown>).#handle;
  }
}

import type { ConfirmChannel, Message, Options } from "amqplib";
import { Header } from "./headers.js";

/** A publish the broker could not route to any queue (`mandatory` return): the queue does not exist. */
export class Unroutable extends Error {
  override readonly name = "Unroutable";
  constructor(readonly queue: string, readonly returned?: Message) {
    super(`no queue ${JSON.stringify(queue)} to route to`);
  }
}

/** One message to publish to a queue through the default exchange. */
export interface Outgoing {
  readonly queue: string;
  readonly content: Buffer;
  readonly properties: Options.Publish;
}

/**
 * A confirm channel: `publish` resolves once the broker has the message (persistent, on a
 * durable queue: on disk, or on a quorum of replicas), and rejects with `Unroutable` when the
 * broker returned it. Each publish carries its own tag, so a return is matched to its publish
 * even when confirms arrive out of order.
 */
export class Publisher {
  /** Why the channel closed; `undefined` while it is open. */
  closed: Error | undefined;
  readonly #returned = new Map<string, Message>();
  #seq = 0;

  constructor(readonly channel: ConfirmChannel) {
    channel.on("return", (message: Message) => {
      const tag = message.properties.headers?.[Header.publish];
      if (typeof tag === "string") this.#returned.set(tag, message);
    });
    channel.on("error", (error: Error) => {
      this.closed ??= error;
    });
    channel.on("close", () => {
      this.closed ??= new Error("channel closed");
    });
  }

  publish(message: Outgoing): Promise<void> {
    const tag = (this.#seq++).toString(36);
    const properties: Options.Publish = {
      ...message.properties,
      headers: { ...message.properties.headers, [Header.publish]: tag },
      persistent: true,
      mandatory: true,
    };
    return new Promise<void>((resolve, reject) => {
      try {
        this.channel.publish("", message.queue, message.content, properties, (error: unknown) => {
          const returned = this.#returned.get(tag);
          this.#returned.delete(tag);
          if (error !== null && error !== undefined) reject(this.closed === undefined ? error : closedUnder(this.closed));
          else if (returned !== undefined) reject(new Unroutable(message.queue, returned));
          else resolve();
        });
      } catch (error) {
        // amqplib throws at once for a closed channel or a headers table it cannot encode.
        reject(error);
      }
    });
  }
}

/**
 * The error of a publish whose channel closed before the broker confirmed it. The broker may
 * close the channel over another publish (one larger than its `max_message_size`, say): every
 * publish in flight fails, and each may succeed when tried again, so the error carries no AMQP
 * reply code (which would make it look like this publish's own refusal).
 */
function closedUnder(cause: Error): Error {
  return new Error(`channel closed before the broker confirmed the message: ${cause.message}`, { cause });
}

import type { TransportError } from "@tranche/core";
import { connect } from "amqplib";

/** The shared broker of the plain tests: `AMQP_URL`, else the local RabbitMQ on 5672. */
export const AMQP_URL = process.env.AMQP_URL || "amqp://guest:guest@127.0.0.1:5672";

let checked: Promise<void> | undefined;

/** Fails with how to get a broker when none answers at `AMQP_URL`. */
export function requireBroker(): Promise<void> {
  checked ??= connect(AMQP_URL, { timeout: 5_000 }).then(
    (connection) => connection.close(),
    (error: Error) => {
      throw new Error(`No RabbitMQ at ${AMQP_URL} (${error.message}): start one (\`rabbitmq-server -detached\`, or \`docker compose up rabbitmq\`) or set AMQP_URL.`);
    },
  );
  return checked;
}

let counter = 0;
/** A queue name no other test uses. */
export function uniqueQueue(prefix = "t"): string {
  return `tranche.test.${prefix}${process.pid}.${Date.now().toString(36)}.${counter++}`;
}

/** The error `promise` rejects with; fails when it resolves. */
export async function rejection<E = TransportError>(promise: Promise<unknown>): Promise<E> {
  try {
    await promise;
  } catch (error) {
    return error as E;
  }
  throw new Error("expected a rejection");
}

import type { ConformanceOptions, ConformanceQueue } from "@tranche/conformance";
import { connect } from "amqplib";
import { AmqpTransport } from "../../src/index.js";
import { deleteQueues } from "../../src/testing.js";
import { AMQP_URL, requireBroker, uniqueQueue } from "./server.js";

/** The shared broker's address, for the suite's connection-fault cases. */
export function brokerEndpoint(): { host: string; port: number } {
  const url = new URL(AMQP_URL);
  return { host: url.hostname, port: Number(url.port || 5672) };
}

/**
 * A fresh work queue per case on the shared broker; every `connect()` is another worker with its
 * own connection, through `endpoint` when the suite gives one (its TCP proxy).
 */
export const createAmqpQueue: ConformanceOptions["create"] = async (settings): Promise<ConformanceQueue> => {
  await requireBroker();
  const { wait, endpoint } = settings as { wait: number; endpoint?: { host: string; port: number } };
  const queue = uniqueQueue("c");
  const transports: AmqpTransport<unknown>[] = [];
  let url = AMQP_URL;
  if (endpoint !== undefined) {
    const through = new URL(AMQP_URL);
    through.hostname = endpoint.host;
    through.port = String(endpoint.port);
    url = through.toString();
  }
  const options = { url, queue, wait: Math.max(10, wait), prefetch: 100 };
  // Declare the queues (on the broker itself, as the endpoint may be cut) before the first raw send.
  const setup = new AmqpTransport<unknown>({ ...options, url: AMQP_URL });
  try {
    await setup.ready();
  } finally {
    await setup.close();
  }
  return {
    async connect() {
      const transport = new AmqpTransport<unknown>(options);
      transports.push(transport);
      return transport;
    },
    async sendRaw(raw) {
      const connection = await connect(AMQP_URL);
      try {
        const channel = await connection.createConfirmChannel();
        channel.sendToQueue(queue, Buffer.from(raw), { persistent: true });
        await channel.waitForConfirms();
      } finally {
        await connection.close();
      }
    },
    async close() {
      await Promise.all(transports.map((t) => t.close()));
      await deleteQueues(AMQP_URL, [queue, `${queue}.dead`, ...transports.flatMap((t) => t.queues())]);
    },
  };
};

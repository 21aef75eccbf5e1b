import type { ConformanceOptions, ConformanceQueue } from "@tranche/conformance";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { NatsTransport } from "../../src/index.js";
import { readDeadLetters } from "../../src/testing.js";
import { testServer, uniqueQueue } from "./server.js";

let server: ReturnType<typeof testServer> | undefined;

/** Starts the server on first use (or uses NATS_URL); `closeConformanceServer` stops it. */
function sharedServer(): ReturnType<typeof testServer> {
  server ??= testServer();
  return server;
}

export async function closeConformanceServer(): Promise<void> {
  if (server !== undefined) await (await server).close();
}

/** A fresh stream and durable per case; every `connect()` is another worker with its own connection. */
export const createNatsQueue: ConformanceOptions["create"] = async ({ lease, wait }): Promise<ConformanceQueue> => {
  const { url } = await sharedServer();
  const q = uniqueQueue("C");
  const admin: NatsConnection = await connect({ servers: url });
  const transports: NatsTransport<unknown>[] = [];
  const options = { servers: url, ...q, ackWait: Math.max(100, lease), wait: Math.max(10, wait) };
  // Create the stream and consumer before the first raw send.
  const first = new NatsTransport<unknown>(options);
  transports.push(first);
  await first.ready();
  let firstHandedOut = false;
  return {
    async connect() {
      if (!firstHandedOut) {
        firstHandedOut = true;
        return first;
      }
      const t = new NatsTransport<unknown>(options);
      transports.push(t);
      return t;
    },
    async sendRaw(raw) {
      await jetstream(admin).publish(q.subject, raw);
    },
    async deadLetters() {
      const letters = await readDeadLetters(admin, { stream: q.stream, deadLetterSubject: `${q.subject}.dead` });
      return letters.map((letter) => ({ id: letter.id, reason: letter.reason }));
    },
    async close() {
      await Promise.all(transports.map((t) => t.close()));
      await (await jetstreamManager(admin)).streams.delete(q.stream).catch(() => {});
      await admin.close();
    },
  };
};

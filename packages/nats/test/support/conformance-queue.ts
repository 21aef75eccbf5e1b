import type { ConformanceOptions, ConformanceQueue } from "@tranche/conformance";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { NatsTransport } from "../../src/index.js";
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

/** Host and port of the shared server, for the suite's connection faults. */
export const natsEndpoint: NonNullable<ConformanceOptions["server"]> = async () => {
  const url = new URL((await sharedServer()).url);
  return { host: url.hostname, port: Number(url.port) };
};

/**
 * A fresh stream and durable per case; every `connect()` is another worker with its own
 * connection, to `endpoint` when the suite gives one. The stream is made over a direct connection.
 */
export const createNatsQueue: ConformanceOptions["create"] = async ({ lease, wait, endpoint }): Promise<ConformanceQueue> => {
  const { url } = await sharedServer();
  const q = uniqueQueue("C");
  const admin: NatsConnection = await connect({ servers: url });
  const options = { ...q, ackWait: Math.max(100, lease), wait: Math.max(10, wait) };
  const setup = new NatsTransport<unknown>({ servers: url, ...options });
  await setup.ready(); // the stream exists before the first raw send
  await setup.close();
  const servers = endpoint === undefined ? url : `nats://${endpoint.host}:${endpoint.port}`;
  const transports: NatsTransport<unknown>[] = [];
  return {
    async connect() {
      const t = new NatsTransport<unknown>({ servers, ...options });
      transports.push(t);
      return t;
    },
    async sendRaw(raw) {
      await jetstream(admin).publish(q.subject, raw);
    },
    async close() {
      await Promise.all(transports.map((t) => t.close()));
      const jsm = await jetstreamManager(admin);
      await jsm.streams.delete(q.stream).catch(() => {});
      await jsm.streams.delete(`${q.stream}_LEDGER`).catch(() => {});
      await admin.close();
    },
  };
};

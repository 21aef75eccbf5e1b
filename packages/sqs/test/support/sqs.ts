import { randomUUID } from "node:crypto";
import { type AddressInfo, createServer } from "node:net";
import { CreateQueueCommand, DeleteQueueCommand, GetQueueAttributesCommand, SQSClient } from "@aws-sdk/client-sqs";
import { afterAll, beforeAll } from "vitest";
import { SqsTransport, type SqsTransportOptions } from "../../src/index.js";
import { type SqsEmulator, startSqsEmulator } from "../../src/testing.js";

/** An SQS endpoint for a test file: `SQS_ENDPOINT` when set, else a fauxqs emulator started here. */
export interface TestSqs {
  readonly endpoint: string;
  readonly connection: { endpoint: string; region: string; credentials: { accessKeyId: string; secretAccessKey: string } };
  readonly client: SQSClient;
  /** A fresh queue with a unique name; `.fifo` queues when `fifo`. */
  queue(options?: { fifo?: boolean; attributes?: Record<string, string> }): Promise<string>;
  /**
   * A transport on this endpoint. Its `deadLetterQueueUrl` is a dead-letter queue shared by the
   * file's transports unless `options` names one (`deadLetterQueueUrl: undefined` for none): a
   * transport that receives must be able to dead-letter. `endpoint` or `client` point it elsewhere
   * (a proxy, a client with faults injected).
   */
  transport<T = unknown>(options: SqsTransportOptions<T>): SqsTransport<T>;
  count(queueUrl: string): Promise<{ visible: number; inFlight: number; delayed: number }>;
  stop(): Promise<void>;
}

/** `own`: always a fauxqs emulator of this file's (fault tests cut it off or point transports past it). */
export async function openSqs(options: { own?: boolean } = {}): Promise<TestSqs> {
  const external = options.own ? undefined : process.env.SQS_ENDPOINT;
  let emulator: SqsEmulator | undefined;
  const connection = external
    ? {
        endpoint: external,
        region: process.env.AWS_REGION ?? "us-east-1",
        credentials: { accessKeyId: process.env.AWS_ACCESS_KEY_ID ?? "test", secretAccessKey: process.env.AWS_SECRET_ACCESS_KEY ?? "test" },
      }
    : (emulator = await startSqsEmulator()).connection;
  const client = new SQSClient(connection);
  const transports: SqsTransport<unknown>[] = [];
  const queues: string[] = [];
  const sharedDlq = (await client.send(new CreateQueueCommand({ QueueName: `t-dlq-${randomUUID().slice(0, 8)}` }))).QueueUrl as string;
  queues.push(sharedDlq);
  return {
    endpoint: connection.endpoint,
    connection,
    client,
    async queue(options = {}) {
      const name = `t-${randomUUID().slice(0, 8)}${options.fifo ? ".fifo" : ""}`;
      const attributes = { ...(options.fifo ? { FifoQueue: "true" } : {}), ...options.attributes };
      const out = await client.send(new CreateQueueCommand({ QueueName: name, Attributes: attributes }));
      queues.push(out.QueueUrl as string);
      return out.QueueUrl as string;
    },
    transport(options) {
      const t = new SqsTransport({ ...connection, deadLetterQueueUrl: sharedDlq, ...options });
      transports.push(t as SqsTransport<unknown>);
      return t;
    },
    async count(queueUrl) {
      const out = await client.send(new GetQueueAttributesCommand({ QueueUrl: queueUrl, AttributeNames: ["All"] }));
      const a = out.Attributes ?? {};
      return {
        visible: Number(a.ApproximateNumberOfMessages),
        inFlight: Number(a.ApproximateNumberOfMessagesNotVisible),
        delayed: Number(a.ApproximateNumberOfMessagesDelayed),
      };
    },
    async stop() {
      await Promise.all(transports.map((t) => t.close()));
      if (external) await Promise.all(queues.map((q) => client.send(new DeleteQueueCommand({ QueueUrl: q })).catch(() => {})));
      client.destroy();
      await emulator?.stop();
    },
  };
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Receives until `n` deliveries arrived or `timeout` ms passed. */
export async function receiveAll<T>(transport: SqsTransport<T>, n: number, timeout = 15_000) {
  const out: Awaited<ReturnType<SqsTransport<T>["receive"]>> = [];
  const end = Date.now() + timeout;
  while (out.length < n && Date.now() < end) {
    out.push(...(await transport.receive(n - out.length, AbortSignal.timeout(Math.max(1, end - Date.now())))));
  }
  return out;
}

/** A TCP port on 127.0.0.1 that nothing listens on (free when asked). */
export function closedPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.on("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

/** Short polls and leases for tests that wait on SQS: receive waits 1 s, a lease lasts 1 s. */
export const quick = { waitTimeSeconds: 1, visibilityTimeout: 1_000 } as const;

/**
 * The endpoint of the calling test file: opened before its tests (`openSqs(options)`), stopped
 * after them. Use it inside tests only.
 */
export function useSqs(options: { own?: boolean } = {}): TestSqs {
  let opened: TestSqs | undefined;
  beforeAll(async () => {
    opened = await openSqs(options);
  });
  afterAll(async () => {
    await opened?.stop();
  });
  const sqs = (): TestSqs => {
    if (opened === undefined) throw new Error("useSqs(): the endpoint is open inside tests only");
    return opened;
  };
  return {
    get endpoint() {
      return sqs().endpoint;
    },
    get connection() {
      return sqs().connection;
    },
    get client() {
      return sqs().client;
    },
    queue: (o) => sqs().queue(o),
    transport: (o) => sqs().transport(o),
    count: (queueUrl) => sqs().count(queueUrl),
    stop: () => sqs().stop(),
  };
}

import { ReceiveMessageCommand, SendMessageCommand } from "@aws-sdk/client-sqs";
import { describeTransportConformance } from "@tranche/conformance";
import { afterAll } from "vitest";
import { SQS_ATTRIBUTES } from "../src/index.js";
import { openSqs, type TestSqs } from "./support/sqs.js";

let sqs: TestSqs | undefined;
afterAll(() => sqs?.stop());

const open = async () => (sqs ??= await openSqs());

describeTransportConformance({
  name: "SqsTransport (fauxqs, or SQS_ENDPOINT)",
  timeScale: 2, // SQS visibility is whole seconds: the suite's 1 s lease becomes 2 s
  async server() {
    const { hostname, port } = new URL((await open()).endpoint);
    return { host: hostname, port: Number(port) };
  },
  async create({ lease, wait, endpoint }) {
    const sqs = await open();
    const [queueUrl, deadLetterQueueUrl] = [await sqs.queue(), await sqs.queue()];
    const options = {
      queueUrl,
      deadLetterQueueUrl,
      visibilityTimeout: lease,
      waitTimeSeconds: Math.min(20, Math.ceil(wait / 1000)),
      ...(endpoint === undefined ? {} : { endpoint: `http://${endpoint.host}:${endpoint.port}` }),
    };
    const letters: { id: string; reason: string; attempt: number; retries?: number }[] = [];
    return {
      connect: async () => sqs.transport(options),
      sendRaw: async (raw) => void (await sqs.client.send(new SendMessageCommand({ QueueUrl: queueUrl, MessageBody: String(raw) }))),
      async deadLetters() {
        for (;;) {
          const out = await sqs.client.send(new ReceiveMessageCommand({ QueueUrl: deadLetterQueueUrl, MaxNumberOfMessages: 10, MessageAttributeNames: ["All"] }));
          if ((out.Messages ?? []).length === 0) return letters;
          for (const m of out.Messages ?? []) {
            const a = m.MessageAttributes ?? {};
            const retries = a[SQS_ATTRIBUTES.retries]?.StringValue;
            letters.push({
              id: a[SQS_ATTRIBUTES.id]?.StringValue ?? "",
              reason: a[SQS_ATTRIBUTES.reason]?.StringValue ?? "",
              attempt: Number(a[SQS_ATTRIBUTES.attempt]?.StringValue),
              ...(retries === undefined ? {} : { retries: Number(retries) }),
            });
          }
        }
      },
      close: async () => {},
    };
  },
});

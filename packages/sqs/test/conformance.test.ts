import { ReceiveMessageCommand, SendMessageCommand } from "@aws-sdk/client-sqs";
import { describeTransportConformance } from "@tranche/conformance";
import { afterAll } from "vitest";
import { SQS_ATTRIBUTES } from "../src/index.js";
import { openSqs, type TestSqs } from "./support/sqs.js";

let sqs: TestSqs | undefined;
afterAll(() => sqs?.stop());

describeTransportConformance({
  name: "SqsTransport (fauxqs, or SQS_ENDPOINT)",
  timeScale: 2, // SQS visibility is whole seconds: the suite's 1 s lease becomes 2 s
  async create({ lease, wait }) {
    sqs ??= await openSqs();
    const [queueUrl, deadLetterQueueUrl] = [await sqs.queue(), await sqs.queue()];
    const options = { queueUrl, deadLetterQueueUrl, visibilityTimeout: lease, waitTimeSeconds: Math.min(20, Math.ceil(wait / 1000)) };
    const letters: { id: string; reason: string }[] = [];
    return {
      connect: async () => sqs!.transport(options),
      sendRaw: async (raw) => void (await sqs!.client.send(new SendMessageCommand({ QueueUrl: queueUrl, MessageBody: String(raw) }))),
      async deadLetters() {
        const out = await sqs!.client.send(new ReceiveMessageCommand({ QueueUrl: deadLetterQueueUrl, MaxNumberOfMessages: 10, MessageAttributeNames: ["All"] }));
        for (const m of out.Messages ?? []) {
          letters.push({ id: m.MessageAttributes?.[SQS_ATTRIBUTES.id]?.StringValue ?? "", reason: m.MessageAttributes?.[SQS_ATTRIBUTES.reason]?.StringValue ?? "" });
        }
        return letters;
      },
      close: async () => {},
    };
  },
});

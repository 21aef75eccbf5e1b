import { SendMessageCommand } from "@aws-sdk/client-sqs";
import { describeTransportConformance } from "@tranche/conformance";
import { afterAll } from "vitest";
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
    return {
      connect: async () => sqs.transport(options),
      sendRaw: async (raw) => void (await sqs.client.send(new SendMessageCommand({ QueueUrl: queueUrl, MessageBody: String(raw) }))),
      close: async () => {},
    };
  },
});

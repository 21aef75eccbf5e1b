// Headers (`SendOptions.headers`) travel as one `tranche.headers` attribute: within SQS's 10
// attributes whatever their number, counted in the message size, and kept by copies.
import { type MessageAttributeValue, ReceiveMessageCommand, SendMessageCommand } from "@aws-sdk/client-sqs";
import { OversizeError, TransportError } from "@tranche/core";
import { describe, expect, it } from "vitest";
import { SQS_ATTRIBUTES } from "../src/index.js";
import { quick, receiveAll, useSqs } from "./support/sqs.js";

const sqs = useSqs();

const HEADERS = Object.fromEntries(Array.from({ length: 12 }, (_, i) => [`h${i}`, `v${i}`]));

async function peek(queueUrl: string) {
  const out = await sqs.client.send(new ReceiveMessageCommand({ QueueUrl: queueUrl, WaitTimeSeconds: 1, MessageAttributeNames: ["All"], VisibilityTimeout: 30 }));
  return out.Messages?.[0];
}

describe("SqsTransport headers", () => {
  it("sends any number of headers as one JSON attribute", async () => {
    const queueUrl = await sqs.queue();
    const t = sqs.transport<string>({ queueUrl, ...quick });
    await t.send("x", { id: "many", headers: HEADERS });
    const message = await peek(queueUrl);
    const attributes = message?.MessageAttributes ?? {};
    expect(Object.keys(attributes).sort()).toEqual([SQS_ATTRIBUTES.headers, SQS_ATTRIBUTES.id]);
    expect(JSON.parse(attributes[SQS_ATTRIBUTES.headers]?.StringValue ?? "null")).toEqual(HEADERS);
  });

  it("counts the headers in the message size, and refuses characters SQS refuses", async () => {
    const queueUrl = await sqs.queue();
    const t = sqs.transport<string>({ queueUrl, ...quick, maxMessageBytes: 1024 });
    await expect(t.send("x", { headers: { big: "b".repeat(1000) } })).rejects.toBeInstanceOf(OversizeError);
    const refused = await t.send("x", { headers: { bad: "\uFFFE" } }).catch((e: unknown) => e);
    expect(TransportError.isInstance(refused) && !(refused as TransportError).retryable, String(refused)).toBe(true);
    expect((refused as Error).message).toContain("U+FFFE");
    expect(await sqs.count(queueUrl)).toEqual({ visible: 0, inFlight: 0, delayed: 0 });
  });

  it("keeps the headers in a dead letter", async () => {
    const queueUrl = await sqs.queue();
    const deadLetterQueueUrl = await sqs.queue();
    const t = sqs.transport<string>({ queueUrl, deadLetterQueueUrl, ...quick });
    await t.send("x", { id: "dead", headers: { traceparent: "00-abc-def-01" } });
    const [d] = await receiveAll(t, 1);
    await t.deadLetter(d!, new Error("gave up"));
    const attributes = (await peek(deadLetterQueueUrl))?.MessageAttributes ?? {};
    expect(attributes[SQS_ATTRIBUTES.headers]?.StringValue).toBe('{"traceparent":"00-abc-def-01"}');
  });

  it("reads another producer's malformed `tranche.headers` as no headers", async () => {
    const queueUrl = await sqs.queue();
    const t = sqs.transport<string>({ queueUrl, ...quick });
    const attributes: Record<string, MessageAttributeValue> = { [SQS_ATTRIBUTES.headers]: { DataType: "String", StringValue: '{"n":1}' } };
    await sqs.client.send(new SendMessageCommand({ QueueUrl: queueUrl, MessageBody: '"theirs"', MessageAttributes: attributes }));
    const [d] = await receiveAll(t, 1);
    expect(d?.payload).toBe("theirs");
    expect(d?.headers).toBeUndefined();
  });
});

// Copies the transport makes of a message — a retry's re-send, an early delivery put back, a dead
// letter — keep within SQS's limits (10 message attributes, the message size), or fail for good
// with an error that says so; no path swallows the failure (issue 13, item 12).
import { type MessageAttributeValue, ReceiveMessageCommand, SendMessageCommand } from "@aws-sdk/client-sqs";
import { TransportError } from "@tranche/core";
import { describe, expect, it } from "vitest";
import { messageBytes, SQS_ATTRIBUTES } from "../src/index.js";
import { quick, receiveAll, sleep, useSqs } from "./support/sqs.js";

const sqs = useSqs();

const SMALL = { MaximumMessageSize: "1024" };

/** `n` attributes of another producer's. */
function foreign(n: number): Record<string, MessageAttributeValue> {
  return Object.fromEntries(Array.from({ length: n }, (_, i) => [`app.a${i}`, { DataType: "String", StringValue: `v${i}` }]));
}

async function sendRaw(queueUrl: string, body: string, attributes: Record<string, MessageAttributeValue>): Promise<void> {
  await sqs.client.send(new SendMessageCommand({ QueueUrl: queueUrl, MessageBody: body, MessageAttributes: attributes }));
}

/** The next message of a queue, read past the transport, with its attributes. */
async function peek(queueUrl: string, wait = 5) {
  const out = await sqs.client.send(new ReceiveMessageCommand({ QueueUrl: queueUrl, WaitTimeSeconds: wait, MessageAttributeNames: ["All"], VisibilityTimeout: 30 }));
  return out.Messages?.[0];
}

describe("re-sent copies keep within SQS's limits", () => {
  it("an early delivery put back keeps to 10 attributes, dropping other producers' first", async () => {
    const queueUrl = await sqs.queue();
    const t = sqs.transport<string>({ queueUrl, ...quick });
    const notBefore = Date.now() + 3_000;
    await sendRaw(queueUrl, '"early"', { ...foreign(9), [SQS_ATTRIBUTES.notBefore]: { DataType: "Number", StringValue: String(notBefore) } });
    expect(await t.receive(10, AbortSignal.timeout(5_000))).toEqual([]); // put back
    const copy = await peek(queueUrl);
    expect(Date.now()).toBeGreaterThanOrEqual(notBefore - 1_000);
    const names = Object.keys(copy?.MessageAttributes ?? {});
    expect(names.length).toBeLessThanOrEqual(10);
    expect(names).toEqual(expect.arrayContaining([SQS_ATTRIBUTES.id, SQS_ATTRIBUTES.notBefore]));
    expect(copy?.MessageAttributes?.[SQS_ATTRIBUTES.notBefore]?.StringValue).toBe(String(notBefore));
  });

  it("a retry's copy keeps to 10 attributes and carries retries", async () => {
    const queueUrl = await sqs.queue();
    const t = sqs.transport<string>({ queueUrl, ...quick });
    await sendRaw(queueUrl, '"x"', { ...foreign(9), [SQS_ATTRIBUTES.id]: { DataType: "String", StringValue: "r" } });
    const [d] = await receiveAll(t, 1);
    await t.retry(d!, Date.now() + 1_500);
    const copy = await peek(queueUrl);
    const attributes = copy?.MessageAttributes ?? {};
    expect(Object.keys(attributes).length).toBeLessThanOrEqual(10);
    expect(attributes[SQS_ATTRIBUTES.id]?.StringValue).toBe("r");
    expect(attributes[SQS_ATTRIBUTES.retries]?.StringValue).toBe("1");
    expect(attributes[SQS_ATTRIBUTES.attempt]?.StringValue).toBe("1");
  });

  it("an early delivery whose copy would exceed the size limit goes to the worker, and the next receive reports why", async () => {
    const queueUrl = await sqs.queue({ attributes: SMALL });
    const t = sqs.transport<string>({ queueUrl, ...quick, maxMessageBytes: 1024 });
    const notBefore = Date.now() + 3_600_000;
    const attributes = { [SQS_ATTRIBUTES.id]: { DataType: "String", StringValue: "full" }, [SQS_ATTRIBUTES.notBefore]: { DataType: "Number", StringValue: String(notBefore) } };
    const body = JSON.stringify("x".repeat(1024 - messageBytes('""', attributes)));
    expect(messageBytes(body, attributes)).toBe(1024);
    await sendRaw(queueUrl, body, attributes);
    // One receive that ends without an outcome: the copy would have to carry that attempt.
    await sqs.client.send(new ReceiveMessageCommand({ QueueUrl: queueUrl, VisibilityTimeout: 0, WaitTimeSeconds: 1 }));
    const [held] = await receiveAll(t, 1, 5_000);
    expect(held).toMatchObject({ id: "full", attempt: 2, notBefore });
    const error = await t.receive(10, AbortSignal.timeout(5_000)).catch((e: unknown) => e);
    expect(TransportError.isInstance(error), String(error)).toBe(true);
    expect(error).toMatchObject({ retryable: true });
    expect((error as Error).message).toMatch(/^\[tranche\/sqs\] receive: putting an early delivery back failed \(nothing was lost\): put back: item "full" cannot be re-sent.*maxMessageBytes 1024/);
    expect(await sqs.count(queueUrl)).toEqual({ visible: 0, inFlight: 1, delayed: 0 });
  });
});

describe("dead letters keep within the size limit", () => {
  it("the reason is cut to what fits", async () => {
    const queueUrl = await sqs.queue();
    const deadLetterQueueUrl = await sqs.queue({ attributes: SMALL });
    const t = sqs.transport<string>({ queueUrl, deadLetterQueueUrl, ...quick, maxMessageBytes: 1024 });
    await t.send("y".repeat(800), { id: "big" });
    const [d] = await receiveAll(t, 1);
    await t.deadLetter(d!, new Error("z".repeat(1_000)));
    const letter = await peek(deadLetterQueueUrl, 1);
    const attributes = letter?.MessageAttributes ?? {};
    expect(messageBytes(letter?.Body ?? "", attributes)).toBeLessThanOrEqual(1024);
    expect(attributes[SQS_ATTRIBUTES.reason]?.StringValue).toMatch(/^z+…$/);
    expect(attributes[SQS_ATTRIBUTES.id]?.StringValue).toBe("big");
    expect(attributes[SQS_ATTRIBUTES.attempt]?.StringValue).toBe("1");
    await sleep(1_200);
    expect(await sqs.count(queueUrl)).toEqual({ visible: 0, inFlight: 0, delayed: 0 });
  });

  it("a dead letter that cannot fit even without its reason fails for good and leaves the message", async () => {
    const queueUrl = await sqs.queue();
    const deadLetterQueueUrl = await sqs.queue({ attributes: SMALL });
    const t = sqs.transport<string>({ queueUrl, deadLetterQueueUrl, ...quick, maxMessageBytes: 1024 });
    await sendRaw(queueUrl, JSON.stringify("w".repeat(990)), { [SQS_ATTRIBUTES.id]: { DataType: "String", StringValue: "huge" } });
    const [d] = await receiveAll(t, 1);
    const error = await t.deadLetter(d!, new Error("no")).catch((e: unknown) => e);
    expect(TransportError.isInstance(error), String(error)).toBe(true);
    expect(error).toMatchObject({ retryable: false });
    expect((error as Error).message).toMatch(/"huge" is \d+ bytes as a dead letter, over maxMessageBytes 1024/);
    expect((await sqs.count(queueUrl)).inFlight).toBe(1);
  });

  it("record the attempt and the retries", async () => {
    const queueUrl = await sqs.queue();
    const deadLetterQueueUrl = await sqs.queue();
    const t = sqs.transport<string>({ queueUrl, deadLetterQueueUrl, ...quick });
    await t.send("x", { id: "twice" });
    const [d1] = await receiveAll(t, 1);
    await t.retry(d1!, Date.now());
    const [d2] = await receiveAll(t, 1);
    expect(d2).toMatchObject({ id: "twice", attempt: 2, retries: 1 });
    await t.deadLetter(d2!, new Error("gave up"));
    const attributes = (await peek(deadLetterQueueUrl, 1))?.MessageAttributes ?? {};
    expect(attributes[SQS_ATTRIBUTES.attempt]?.StringValue).toBe("2");
    expect(attributes[SQS_ATTRIBUTES.retries]?.StringValue).toBe("1");
  });
});

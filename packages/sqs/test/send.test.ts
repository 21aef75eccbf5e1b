// send / sendMany under faults: FIFO order per message group (issue 13, item 10) and the ids
// sent and not sent when a call stops part-way (item 11).
import { DeleteMessageCommand, ReceiveMessageCommand } from "@aws-sdk/client-sqs";
import { TransportError } from "@tranche/core";
import { describe, expect, it } from "vitest";
import { SQS_ATTRIBUTES, type SqsSendError } from "../src/index.js";
import { FaultyClient } from "./support/faulty-client.js";
import { useSqs } from "./support/sqs.js";

const sqs = useSqs();

/** The item ids of every message of a queue, in the order SQS hands them out, each deleted once read. */
async function drain(queueUrl: string): Promise<string[]> {
  const ids: string[] = [];
  for (let empty = 0; empty < 2; ) {
    const out = await sqs.client.send(new ReceiveMessageCommand({ QueueUrl: queueUrl, MaxNumberOfMessages: 10, WaitTimeSeconds: 0, MessageAttributeNames: ["All"] }));
    const messages = out.Messages ?? [];
    empty = messages.length === 0 ? empty + 1 : 0;
    for (const m of messages) {
      ids.push(m.MessageAttributes?.[SQS_ATTRIBUTES.id]?.StringValue ?? "");
      await sqs.client.send(new DeleteMessageCommand({ QueueUrl: queueUrl, ReceiptHandle: m.ReceiptHandle }));
    }
  }
  return ids;
}

/** The error `call` rejected with, checked to be an `SqsSendError`. */
async function sendError(call: Promise<unknown>): Promise<SqsSendError> {
  const error = await call.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(TransportError.isInstance(error), String(error)).toBe(true);
  expect((error as Error).name).toBe("SqsSendError");
  return error as SqsSendError;
}

const ofGroup = (ids: readonly string[], group: string) => ids.filter((id) => id.startsWith(`${group}-`));

describe("FIFO sendMany keeps the order of each message group (item 10)", () => {
  it("200 items to one group arrive in the order given", async () => {
    const queueUrl = await sqs.queue({ fifo: true });
    const t = sqs.transport<number>({ queueUrl });
    const ids = Array.from({ length: 200 }, (_, n) => `o-${n}`);
    await t.sendMany(ids.map((_, n) => n), { ids, messageGroupId: "one" });
    expect(await drain(queueUrl)).toEqual(ids);
  });

  it("a failed request stops its group's later items; other groups go on", async () => {
    const queueUrl = await sqs.queue({ fifo: true });
    const faults = new FaultyClient(sqs.client);
    const t = sqs.transport<{ g: string; n: number }>({ queueUrl, client: faults.client, messageGroupId: (p) => p.g });
    const payloads = [...Array.from({ length: 30 }, (_, n) => ({ g: "a", n })), { g: "b", n: 0 }];
    const ids = payloads.map((p) => `${p.g}-${p.n}`);
    // Requests: a-0..a-9 and b-0 first; then a-10..a-19, which fails.
    faults.fail("SendMessageBatch", "before", { skip: 2 });
    const error = await sendError(t.sendMany(payloads, { ids }));
    expect(error.retryable).toBe(true);
    expect(error.ids).toEqual(ids);
    expect(error.sent).toEqual([...ids.slice(0, 10), "b-0"]);
    expect(error.unsent).toEqual(ids.slice(10, 30));
    expect(error.message).toMatch(/^\[tranche\/sqs\] SendMessageBatch failed: .*ECONNRESET.*; 20 of 31 items not sent \(11 sent, 10 held back/);
    const arrived = await drain(queueUrl);
    expect(ofGroup(arrived, "a")).toEqual(ids.slice(0, 10));
    expect(ofGroup(arrived, "b")).toEqual(["b-0"]);
  });
});

describe("a send that stops part-way says which ids were sent (item 11)", () => {
  it("sent and unsent ids; sending the unsent again under the same ids completes the set", async () => {
    const queueUrl = await sqs.queue();
    const faults = new FaultyClient(sqs.client);
    const t = sqs.transport<number>({ queueUrl, client: faults.client });
    const ids = Array.from({ length: 25 }, (_, n) => `s-${n}`);
    const payloads = ids.map((_, n) => n);
    faults.fail("SendMessageBatch", "before", { skip: 1 });
    const error = await sendError(t.sendMany(payloads, { ids }));
    expect(error.sent).toEqual([...ids.slice(0, 10), ...ids.slice(20)]);
    expect(error.unsent).toEqual(ids.slice(10, 20));
    const rest = new Set(error.unsent);
    await t.sendMany(
      payloads.filter((_, i) => rest.has(ids[i]!)),
      { ids: error.unsent },
    );
    expect((await drain(queueUrl)).sort()).toEqual([...ids].sort());
  });

  it("a body SQS would refuse is refused before anything is sent, not retryable", async () => {
    const queueUrl = await sqs.queue();
    const t = sqs.transport<string>({ queueUrl, codec: { encode: (p) => p, decode: (raw) => String(raw) } });
    const error = await t.sendMany(["fine", "bad \u0001 byte", "fine too"]).catch((e: unknown) => e);
    expect(error).toMatchObject({ retryable: false });
    expect((error as Error).message).toMatch(/^\[tranche\/sqs\] item ".+" cannot be sent: its body holds U\+0001/);
    expect(await sqs.count(queueUrl)).toEqual({ visible: 0, inFlight: 0, delayed: 0 });
  });

  it("sendMany checks `ids`", async () => {
    const t = sqs.transport<number>({ queueUrl: await sqs.queue() });
    await expect(t.sendMany([1, 2], { ids: ["x"] })).rejects.toThrow(/Expected `ids` to be an array of 2 item ids, got an array of 1/);
  });
});

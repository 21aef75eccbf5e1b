import type { Delivery } from "@tranche/core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { SqsTransport } from "../src/index.js";
import { FaultyClient } from "./support/faulty-client.js";
import { openSqs, type TestSqs } from "./support/sqs.js";

let sqs: TestSqs;
beforeAll(async () => {
  sqs = await openSqs();
});
afterAll(() => sqs?.stop());

const never = new AbortController().signal;

async function receiveAll<T>(t: SqsTransport<T>, count: number, within = 10_000): Promise<Delivery<T>[]> {
  const got: Delivery<T>[] = [];
  const deadline = Date.now() + within;
  while (got.length < count && Date.now() < deadline) got.push(...(await t.receive(count - got.length, never)));
  return got;
}

/** A queue and its own dead-letter queue, the transport through a client that faults on demand, and one dead letter "x". */
async function oneLetter(fifo: boolean): Promise<{ t: SqsTransport<string>; faults: FaultyClient }> {
  const [queueUrl, deadLetterQueueUrl] = [await sqs.queue({ fifo }), await sqs.queue({ fifo })];
  const faults = new FaultyClient(sqs.client);
  const t = sqs.transport<string>({ queueUrl, deadLetterQueueUrl, client: faults.client, waitTimeSeconds: 1, visibilityTimeout: 30_000 });
  await t.send("x", { id: "x" });
  const [d] = await receiveAll(t, 1);
  await t.deadLetter(d!, new Error("dead"));
  return { t, faults };
}

describe("SqsTransport redrive, cut between its steps", () => {
  it("a delete that fails after the copy was sent: the letter shows again at once and a repeat sends it back once more (a standard queue delivers at least once)", async () => {
    const { t, faults } = await oneLetter(false);
    faults.fail("DeleteMessageBatch", "before");
    await expect(t.redrive(["x"])).rejects.toThrow(/some letters were not deleted from the dead-letter queue/);
    expect((await t.deadLetters()).map((l) => l.id), "still a dead letter, visible").toEqual(["x"]);
    expect(await t.redrive(["x"])).toBe(1);
    expect(await t.deadLetters()).toEqual([]);
    const copies = await receiveAll(t, 2);
    expect(copies.map((d) => [d.id, d.attempt, d.retries])).toEqual([
      ["x", 1, 0],
      ["x", 1, 0],
    ]);
  });

  it("on a FIFO queue the repeat's copy of the same letter is dropped as a duplicate: the item runs once", async () => {
    const { t, faults } = await oneLetter(true);
    faults.fail("DeleteMessageBatch", "before");
    await expect(t.redrive("all")).rejects.toThrow(/redrive/);
    expect(await t.redrive("all"), "the repeat sends the letter again").toBe(1);
    const [first] = await receiveAll(t, 1);
    expect(first).toMatchObject({ id: "x", attempt: 1 });
    await t.ack([first!]);
    expect(await receiveAll(t, 1, 2_500)).toEqual([]);
  });

  it("a copy whose reply was lost: the letter shows again at once, not hidden until its scan's visibility runs out", async () => {
    const { t, faults } = await oneLetter(false);
    faults.fail("SendMessageBatch", "after");
    await expect(t.redrive(["x"])).rejects.toThrow();
    expect((await t.deadLetters()).map((l) => l.id)).toEqual(["x"]);
    expect(await t.depth()).toMatchObject({ ready: 1, deadLettered: 1 });
  });
});

// The one SQSClient double of this package. fauxqs never answers a batch call with `Failed[]`
// entries and never hands out two messages of one FIFO group at once; real SQS does both.
import type { SQSClient } from "@aws-sdk/client-sqs";
import { describe, expect, it } from "vitest";
import { type SqsSendError, SqsTransport, SqsTransportError } from "../src/index.js";

type Call = { action: string; input: Record<string, any> };
type Script = (call: Call, calls: Call[]) => unknown;

/** A `send` that records each command and answers with `script`. */
function double(script: Script): { client: SQSClient; calls: Call[] } {
  const calls: Call[] = [];
  const client = {
    async send(command: { constructor: { name: string }; input: Record<string, any> }) {
      const call = { action: command.constructor.name.replace(/Command$/, ""), input: command.input };
      calls.push(call);
      return script(call, calls);
    },
    destroy() {},
  };
  return { client: client as unknown as SQSClient, calls };
}

const queueUrl = "https://sqs.us-east-1.amazonaws.com/000000000000/q";
const fifoUrl = `${queueUrl}.fifo`;
// A transport that receives must be able to dead-letter (see "a consumer without a dead-letter queue").
const deadLetters = { deadLetterQueueUrl: `${queueUrl}-dlq` };
const fifoDeadLetters = { deadLetterQueueUrl: `${queueUrl}-dlq.fifo` };

function message(n: number, group?: string) {
  return {
    MessageId: `m${n}`,
    ReceiptHandle: `h${n}`,
    Body: JSON.stringify(n),
    MessageAttributes: { "tranche.id": { DataType: "String", StringValue: `i${n}` } },
    Attributes: { ApproximateReceiveCount: "1", ...(group ? { MessageGroupId: group, SequenceNumber: String(1000 + n) } : {}) },
  };
}

async function received(transport: SqsTransport<number>) {
  return transport.receive(10, new AbortController().signal);
}

describe("DeleteMessageBatch Failed[] entries (sqs-consumer #193)", () => {
  it("retries entries refused with a server fault until they succeed", async () => {
    let refusals = 2;
    const { client, calls } = double(({ action, input }) => {
      if (action === "ReceiveMessage") return { Messages: Array.from({ length: 3 }, (_, i) => message(i)) };
      if (action === "DeleteMessageBatch") {
        const h1 = input.Entries.find((e: { ReceiptHandle: string }) => e.ReceiptHandle === "h1");
        const failed = refusals-- > 0 ? [{ Id: h1.Id, Code: "InternalError", SenderFault: false, Message: "try again" }] : [];
        return { Successful: input.Entries.filter((e: { Id: string }) => !failed.some((f) => f.Id === e.Id)), Failed: failed };
      }
      throw new Error(`unexpected ${action}`);
    });
    const t = new SqsTransport<number>({ queueUrl, ...deadLetters, client });
    await t.ack(await received(t));
    const deletes = calls.filter((c) => c.action === "DeleteMessageBatch");
    expect(deletes.map((c) => c.input.Entries.map((e: { ReceiptHandle: string }) => e.ReceiptHandle))).toEqual([["h0", "h1", "h2"], ["h1"], ["h1"]]);
  });

  it("surfaces entries still refused — sender faults at once, server faults after entryAttempts — listing each item", async () => {
    const { client, calls } = double(({ action, input }) => {
      if (action === "ReceiveMessage") return { Messages: Array.from({ length: 10 }, (_, i) => message(i)) };
      if (action === "DeleteMessageBatch") {
        const failed = input.Entries.filter((e: { ReceiptHandle: string }) => e.ReceiptHandle === "h3" || e.ReceiptHandle === "h7").map(
          (e: { Id: string; ReceiptHandle: string }) =>
            e.ReceiptHandle === "h3"
              ? { Id: e.Id, Code: "ReceiptHandleIsInvalid", SenderFault: true, Message: "bad handle" }
              : { Id: e.Id, Code: "InternalError", SenderFault: false, Message: "busy" },
        );
        return { Successful: [], Failed: failed };
      }
      throw new Error(`unexpected ${action}`);
    });
    const t = new SqsTransport<number>({ queueUrl, ...deadLetters, client, entryAttempts: 2 });
    const error = (await t.ack(await received(t)).catch((e: unknown) => e)) as SqsTransportError;
    expect(SqsTransportError.isInstance(error)).toBe(true);
    expect(error.operation).toBe("DeleteMessageBatch");
    expect(error.message).toMatch(/^\[tranche\/sqs\] DeleteMessageBatch: 2 entries refused/);
    expect([...error.failures].sort((a, b) => a.id.localeCompare(b.id))).toEqual([
      { id: "i3", code: "ReceiptHandleIsInvalid", message: "bad handle", senderFault: true },
      { id: "i7", code: "InternalError", message: "busy", senderFault: false },
    ]);
    // h7 was tried twice (entryAttempts), h3 once.
    const tried = calls.filter((c) => c.action === "DeleteMessageBatch").flatMap((c) => c.input.Entries.map((e: { ReceiptHandle: string }) => e.ReceiptHandle));
    expect(tried.filter((h: string) => h === "h7")).toHaveLength(2);
    expect(tried.filter((h: string) => h === "h3")).toHaveLength(1);
  });

  it("a refused SendMessageBatch entry is surfaced, not dropped", async () => {
    const { client } = double(({ input }) => ({
      Successful: input.Entries.slice(1).map((e: { Id: string }) => ({ Id: e.Id, MessageId: "x" })),
      Failed: [{ Id: input.Entries[0].Id, Code: "InvalidMessageContents", SenderFault: true, Message: "bad chars" }],
    }));
    const t = new SqsTransport<number>({ queueUrl, ...deadLetters, client });
    await expect(t.sendMany([1, 2, 3])).rejects.toMatchObject({ operation: "SendMessageBatch", failures: [{ code: "InvalidMessageContents" }] });
  });
});

describe("FIFO siblings received together (real SQS returns several messages of one group)", () => {
  function fifo() {
    return double(({ action }) => {
      if (action === "ReceiveMessage") return { Messages: [message(1, "g"), message(2, "g"), message(3, "g"), message(4, "other")] };
      return { Successful: [], Failed: [] };
    });
  }

  it("an ack waits behind an unsettled earlier sibling and is deleted once it is acked", async () => {
    const { client, calls } = fifo();
    const t = new SqsTransport<number>({ queueUrl: fifoUrl, ...fifoDeadLetters, client });
    const [d1, d2, d3, d4] = await received(t);
    await t.ack([d2!, d3!, d4!]);
    const deleted = () => calls.filter((c) => c.action === "DeleteMessageBatch").flatMap((c) => c.input.Entries.map((e: { ReceiptHandle: string }) => e.ReceiptHandle));
    expect(deleted()).toEqual(["h4"]);
    await t.ack([d1!]);
    expect(deleted().sort()).toEqual(["h1", "h2", "h3", "h4"]);
  });

  it("a retried item's later siblings are released in reverse order, not deleted, even if already acked", async () => {
    const { client, calls } = fifo();
    const t = new SqsTransport<number>({ queueUrl: fifoUrl, ...fifoDeadLetters, client });
    const [d1, d2, d3] = await received(t);
    await t.ack([d3!]);
    await t.retry(d1!, Date.now() + 5_000);
    await t.ack([d2!]); // already released: a no-op
    const actions = calls.filter((c) => c.action !== "ReceiveMessage");
    expect(actions.map((c) => c.action)).toEqual(["ChangeMessageVisibility", "ChangeMessageVisibilityBatch"]);
    expect(actions[0]!.input).toMatchObject({ ReceiptHandle: "h1", VisibilityTimeout: 5 });
    expect(actions[1]!.input.Entries.map((e: { ReceiptHandle: string; VisibilityTimeout: number }) => [e.ReceiptHandle, e.VisibilityTimeout])).toEqual([
      ["h3", 0],
      ["h2", 0],
    ]);
  });

  it("releasing an item releases its later siblings too", async () => {
    const { client, calls } = fifo();
    const t = new SqsTransport<number>({ queueUrl: fifoUrl, ...fifoDeadLetters, client });
    const [, d2] = await received(t);
    await t.release([d2!]);
    const batch = calls.find((c) => c.action === "ChangeMessageVisibilityBatch")!;
    expect(batch.input.Entries.map((e: { ReceiptHandle: string }) => e.ReceiptHandle)).toEqual(["h3", "h2"]);
  });
});

describe("receive: one long poll, or every call at once while the queue is deep", () => {
  /** A queue of `depth` messages; records, per ReceiveMessage, its wait and how many were in flight when it was sent. */
  function queue(depth: number, fail = () => false) {
    let next = 0;
    let inFlight = 0;
    const polls: { wait: number; inFlight: number }[] = [];
    const { client } = double(async ({ action, input }) => {
      if (action !== "ReceiveMessage") throw new Error(`unexpected ${action}`);
      polls.push({ wait: input.WaitTimeSeconds, inFlight: inFlight++ });
      await Promise.resolve();
      inFlight--;
      if (fail()) throw new Error("connect ECONNREFUSED");
      const n = Math.max(0, Math.min(input.MaxNumberOfMessages, depth - next));
      return { Messages: Array.from({ length: n }, () => message(next++)) };
    });
    return { client, polls, take: () => polls.splice(0) };
  }

  it("long-polls first; after a full receive, the next asks for all of max at once with short polls", async () => {
    const { client, take } = queue(75);
    const t = new SqsTransport<number>({ queueUrl, ...deadLetters, client });
    const signal = new AbortController().signal;
    expect(await t.receive(30, signal)).toHaveLength(30);
    // The long poll alone, then the rest in parallel.
    expect(take()).toEqual([{ wait: 20, inFlight: 0 }, { wait: 0, inFlight: 0 }, { wait: 0, inFlight: 1 }]);
    expect(await t.receive(30, signal)).toHaveLength(30);
    // Deep: three short polls in one round trip.
    expect(take()).toEqual([{ wait: 0, inFlight: 0 }, { wait: 0, inFlight: 1 }, { wait: 0, inFlight: 2 }]);
    expect(await t.receive(30, signal)).toHaveLength(15);
    expect(take().map((p) => p.wait)).toEqual([0, 0, 0]);
    // The queue ran dry: back to one long poll, which finds nothing.
    expect(await t.receive(30, signal)).toEqual([]);
    expect(take()).toEqual([{ wait: 20, inFlight: 0 }]);
  });

  it("a deep receive whose short polls all fail rejects: an outage, not an empty queue", async () => {
    let down = false;
    const { client } = queue(1_000, () => down);
    const t = new SqsTransport<number>({ queueUrl, ...deadLetters, client });
    const signal = new AbortController().signal;
    expect(await t.receive(20, signal)).toHaveLength(20);
    down = true;
    const error = await t.receive(20, signal).catch((e: unknown) => e);
    expect(SqsTransportError.isInstance(error)).toBe(true);
    expect((error as SqsTransportError).operation).toBe("ReceiveMessage");
    expect((error as Error).message).toMatch(/ECONNREFUSED/);
  });
});

describe("the system attributes a receive asks for", () => {
  it("the attempt on a standard queue; the group order too on a FIFO queue", async () => {
    const { client, calls } = double(({ action }) => {
      if (action === "ReceiveMessage") return { Messages: [] };
      throw new Error(`unexpected ${action}`);
    });
    const signal = new AbortController().signal;
    await new SqsTransport<number>({ queueUrl, ...deadLetters, client, waitTimeSeconds: 0 }).receive(10, signal);
    await new SqsTransport<number>({ queueUrl: fifoUrl, ...fifoDeadLetters, client, waitTimeSeconds: 0 }).receive(10, signal);
    expect(calls.map((c) => c.input.MessageSystemAttributeNames)).toEqual([
      ["ApproximateReceiveCount"],
      ["ApproximateReceiveCount", "MessageGroupId", "SequenceNumber"],
    ]);
  });
});

describe("FIFO sendMany: a refused entry never lands behind a later item of its group (issue 13, item 10)", () => {
  /** A FIFO queue that refuses, with a server fault, the entries whose body is listed, once each. */
  function refusing(bodies: string[]) {
    const left = new Set(bodies);
    return double(({ action, input }) => {
      if (action !== "SendMessageBatch") throw new Error(`unexpected ${action}`);
      const failed = input.Entries.filter((e: { MessageBody: string }) => left.delete(e.MessageBody)).map((e: { Id: string }) => ({
        Id: e.Id,
        Code: "InternalError",
        SenderFault: false,
        Message: "busy",
      }));
      return { Successful: [], Failed: failed };
    });
  }
  const bodies = (calls: Call[]) => calls.map((c) => c.input.Entries.map((e: { MessageBody: string }) => Number(e.MessageBody)));

  it("refused with later siblings of the same request accepted: reported, not sent again, the group stopped", async () => {
    const { client, calls } = refusing(["3"]);
    const t = new SqsTransport<number>({ queueUrl: fifoUrl, client });
    const ids = Array.from({ length: 15 }, (_, n) => `i${n}`);
    const error = (await t.sendMany(Array.from({ length: 15 }, (_, n) => n), { ids }).catch((e: unknown) => e)) as SqsSendError;
    expect(bodies(calls)).toEqual([[0, 1, 2, 3, 4, 5, 6, 7, 8, 9]]);
    expect(error.name).toBe("SqsSendError");
    expect(error.retryable).toBe(true);
    expect(error.sent).toEqual(["i0", "i1", "i2", "i4", "i5", "i6", "i7", "i8", "i9"]);
    expect(error.unsent).toEqual(["i3", "i10", "i11", "i12", "i13", "i14"]);
    expect(error.failures).toEqual([{ id: "i3", code: "InternalError", message: "busy", senderFault: false }]);
  });

  it("refused at the end of a request: tried again ahead of the rest of its group", async () => {
    const { client, calls } = refusing(["8", "9"]);
    const t = new SqsTransport<number>({ queueUrl: fifoUrl, client });
    await t.sendMany(Array.from({ length: 15 }, (_, n) => n));
    expect(bodies(calls)).toEqual([
      [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
      [8, 9, 10, 11, 12, 13, 14],
    ]);
  });
});

describe("FIFO retry repeated after its siblings' release failed (issue 13, item 9)", () => {
  it("the repeat releases the siblings and does not change the retried message's visibility again", async () => {
    let failRelease = true;
    const { client, calls } = double(({ action }) => {
      if (action === "ReceiveMessage") return { Messages: [message(1, "g"), message(2, "g"), message(3, "g")] };
      if (action === "ChangeMessageVisibilityBatch" && failRelease) {
        failRelease = false;
        throw Object.assign(new Error("read ECONNRESET"), { code: "ECONNRESET" });
      }
      return { Successful: [], Failed: [] };
    });
    const t = new SqsTransport<number>({ queueUrl: fifoUrl, ...fifoDeadLetters, client });
    const [d1] = await received(t);
    const notBefore = Date.now() + 5_000;
    await expect(t.retry(d1!, notBefore)).rejects.toThrow(/ECONNRESET/);
    await t.retry(d1!, notBefore);
    await t.retry(d1!, notBefore); // settled: a no-op
    const actions = calls.filter((c) => c.action !== "ReceiveMessage");
    expect(actions.map((c) => c.action)).toEqual(["ChangeMessageVisibility", "ChangeMessageVisibilityBatch", "ChangeMessageVisibilityBatch"]);
    expect(actions[2]!.input.Entries.map((e: { ReceiptHandle: string }) => e.ReceiptHandle)).toEqual(["h3", "h2"]);
  });
});

// `tranche` against SQS, on the fauxqs emulator (started in this process; the command reaches it over HTTP).
import { GetQueueAttributesCommand, ReceiveMessageCommand, SendMessageCommand } from "@aws-sdk/client-sqs";
import { randomUUID } from "node:crypto";
import { SqsTransport } from "@tranche/sqs";
import { type SqsEmulator, startSqsEmulator } from "@tranche/sqs/testing";
import { freePort } from "@tranche/redis/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { json, tranche } from "./support/run.js";

let sqs: SqsEmulator;
const opened: SqsTransport<unknown>[] = [];
beforeAll(async () => {
  sqs = await startSqsEmulator();
});
afterAll(async () => {
  await Promise.all(opened.map((t) => t.close()));
  await sqs?.stop();
});

const never = new AbortController().signal;
const env = { AWS_ACCESS_KEY_ID: "test", AWS_SECRET_ACCESS_KEY: "test", AWS_REGION: "us-east-1" };

/** A queue whose RedrivePolicy names its dead-letter queue, so the command finds that one by itself. */
async function queues(maxReceiveCount = 5): Promise<{ queueUrl: string; dlqUrl: string; flags: string[] }> {
  const name = `cli-${randomUUID().slice(0, 8)}`;
  const dlqUrl = await sqs.createQueue(`${name}-dlq`);
  const client = sqs.client();
  const arn = (await client.send(new GetQueueAttributesCommand({ QueueUrl: dlqUrl, AttributeNames: ["QueueArn"] }))).Attributes?.QueueArn;
  const queueUrl = await sqs.createQueue(name, { RedrivePolicy: JSON.stringify({ deadLetterTargetArn: arn, maxReceiveCount }), VisibilityTimeout: "30" });
  client.destroy();
  return { queueUrl, dlqUrl, flags: ["--queue-url", queueUrl, "--endpoint", sqs.endpoint] };
}

function transport(queueUrl: string, dlqUrl: string): SqsTransport<unknown> {
  const t = new SqsTransport<unknown>({ ...sqs.connection, queueUrl, deadLetterQueueUrl: dlqUrl, waitTimeSeconds: 1, visibilityTimeout: 30_000 });
  opened.push(t);
  return t;
}

describe("tranche on SQS", () => {
  it("depth, dlq ls, show, redrive and purge, the dead-letter queue found through the RedrivePolicy", async () => {
    const { queueUrl, dlqUrl, flags } = await queues();
    const t = transport(queueUrl, dlqUrl);
    const ids = await t.sendMany([{ n: 1 }, { n: 2 }]);
    const got: Awaited<ReturnType<SqsTransport<unknown>["receive"]>> = [];
    while (got.length < 2) got.push(...(await t.receive(2, never)));
    for (const d of got) await t.deadLetter(d, new Error(`failed ${String((d.payload as { n: number }).n)}`));
    await t.sendMany([{ n: 3 }]);
    await t.send({ n: 4 }, { delay: 600_000 });

    const depth = await tranche(["depth", ...flags], { env });
    expect(depth.code, depth.stderr).toBe(0);
    expect(depth.stdout).toMatch(/^sqs queue http:\/\/.+ \(approximate, as SQS counts\)\n\s+ready\s+1\n\s+delayed\s+1\n\s+in flight\s+0\n\s+dead-lettered\s+2\n$/);

    const listed = json(await tranche(["dlq", "ls", "--json", ...flags], { env }));
    expect(listed.letters.map((l: { id: string }) => l.id).sort()).toEqual([...ids].sort());
    expect(listed.letters[0]).toMatchObject({ attempt: 1, retries: 0, reason: { name: "Error" } });
    // A listing gives the letters back at once: a second one right after sees them all.
    expect(json(await tranche(["dlq", "ls", "--json", ...flags], { env })).letters).toHaveLength(2);

    const show = await tranche(["dlq", "show", ids[0]!, ...flags], { env });
    expect(show.stdout).toMatch(/reason\s+Error: failed 1\n\s+payload\s+\{\n\s+"n": 1\n\s+\}\n/);

    expect(json(await tranche(["dlq", "redrive", ids[0]!, "--json", ...flags], { env }))).toEqual({ redriven: 1, requested: 1 });
    const back: Awaited<ReturnType<SqsTransport<unknown>["receive"]>> = [];
    while (!back.some((d) => d.id === ids[0])) back.push(...(await t.receive(10, never)));
    expect(back.find((d) => d.id === ids[0])).toMatchObject({ payload: { n: 1 }, attempt: 1, retries: 0 });

    expect(json(await tranche(["dlq", "purge", "--all", "--yes", "--json", ...flags], { env }))).toEqual({ purged: 1 });
    expect(json(await tranche(["depth", "--json", ...flags], { env }))).toMatchObject({ deadLettered: 0 });
  });

  it("lists a message SQS moved by itself (maxReceiveCount) with that reason", async () => {
    const { queueUrl, flags } = await queues(1);
    const client = sqs.client();
    await client.send(new SendMessageCommand({ QueueUrl: queueUrl, MessageBody: '{"n":9}' }));
    // Received and given back twice: the second receive is past maxReceiveCount 1.
    for (let i = 0; i < 3; i++) await client.send(new ReceiveMessageCommand({ QueueUrl: queueUrl, VisibilityTimeout: 0, WaitTimeSeconds: 1 }));
    client.destroy();
    const [letter] = json(await tranche(["dlq", "ls", "--json", ...flags], { env })).letters;
    expect(letter).toMatchObject({ payload: { n: 9 }, attempt: 1, reason: { name: "MaxReceiveCountExceeded", message: "moved by the queue's RedrivePolicy after 1 receives" } });
  });

  it("an endpoint nobody answers on: exit 1 within seconds, one line naming it", async () => {
    const port = await freePort();
    const down = await tranche(["depth", "--queue-url", `http://127.0.0.1:${port}/000000000000/q`, "--endpoint", `http://127.0.0.1:${port}`], { env });
    expect(down.code).toBe(1);
    expect(down.stderr).toMatch(new RegExp(`^tranche: \\[tranche/sqs\\] GetQueueAttributes failed: .*ECONNREFUSED.*127\\.0\\.0\\.1:${port}.*\\n$`));
    expect(down.stderr.trimEnd().split("\n")).toHaveLength(1);
    expect(down.took).toBeLessThan(15_000);
  });
});

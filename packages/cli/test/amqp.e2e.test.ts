// `tranche` against RabbitMQ: the shared broker at AMQP_URL (else 127.0.0.1:5672), on queues of
// this file's own, deleted after.
import { AmqpTransport } from "@tranche/amqp";
import { deleteQueues } from "@tranche/amqp/testing";
import { freePort } from "@tranche/redis/testing";
import { afterAll, describe, expect, it } from "vitest";
import { json, tranche } from "./support/run.js";

const AMQP_URL = process.env.AMQP_URL || "amqp://guest:guest@127.0.0.1:5672";
const opened: AmqpTransport<unknown>[] = [];
const made = new Set<string>();
afterAll(async () => {
  await Promise.all(opened.map((t) => t.close()));
  for (const t of opened) for (const q of t.queues()) made.add(q);
  await deleteQueues(AMQP_URL, made);
});

const never = new AbortController().signal;

async function worker(queue = `tranche.test.cli${process.pid}.${Date.now().toString(36)}.${opened.length}`): Promise<{ transport: AmqpTransport<unknown>; flags: string[] }> {
  made.add(queue).add(`${queue}.dead`).add(`${queue}.delays`);
  const transport = new AmqpTransport<unknown>({ url: AMQP_URL, queue, wait: 300 });
  opened.push(transport);
  await transport.ready();
  return { transport, flags: ["--amqp-url", AMQP_URL, "--queue", queue] };
}

describe("tranche on RabbitMQ", () => {
  it("depth, dlq ls, show, redrive and purge", async () => {
    const { transport, flags } = await worker();
    const ids = await transport.sendMany([{ n: 1 }, { n: 2 }, { n: 3 }]);
    const got: Awaited<ReturnType<AmqpTransport<unknown>["receive"]>> = [];
    while (got.length < 3) got.push(...(await transport.receive(3 - got.length, never)));
    await transport.retry(got[2]!, Date.now() + 600_000);
    for (const d of got.slice(0, 2)) await transport.deadLetter(d, new Error(`failed ${String((d.payload as { n: number }).n)}`));
    // A consuming channel takes what arrives into its prefetch (unacked, not ready): stop consuming first.
    await transport.close();
    const queue = flags[flags.indexOf("--queue") + 1]!;
    const { transport: again } = await worker(queue);
    await again.send({ n: 4 });

    const depth = await tranche(["depth", ...flags]);
    expect(depth.code, depth.stderr).toBe(0);
    expect(depth.stdout).toMatch(/^rabbitmq queue \S+ at \S+ \(ready messages as RabbitMQ counts them; AMQP does not count unacknowledged ones\)\n\s+ready\s+1\n\s+delayed\s+1\n\s+in flight\s+n\/a\n\s+dead-lettered\s+2\n$/);
    expect(json(await tranche(["depth", "--json", ...flags]))).toMatchObject({ transport: "amqp", ready: 1, delayed: 1, inFlight: null, deadLettered: 2 });

    const ls = await tranche(["dlq", "ls", ...flags]);
    expect(ls.stdout.split("\n").slice(2, 4)).toEqual([expect.stringMatching(new RegExp(`^${ids[0]}\\s.*Error: failed 1$`)), expect.stringMatching(new RegExp(`^${ids[1]}\\s.*Error: failed 2$`))]);
    expect(json(await tranche(["dlq", "show", ids[1]!, "--json", ...flags]))).toMatchObject({ id: ids[1], payload: { n: 2 }, attempt: 1, retries: 0 });

    expect((await tranche(["dlq", "redrive", ids[0]!, ...flags])).stdout).toMatch(/^sent 1 dead letter back to rabbitmq queue/);
    const back: typeof got = [];
    while (!back.some((d) => d.id === ids[0])) back.push(...(await again.receive(10, never)));
    expect(back.find((d) => d.id === ids[0])).toMatchObject({ payload: { n: 1 }, attempt: 1, retries: 0 });

    expect(json(await tranche(["dlq", "purge", ids[1]!, "--yes", "--json", ...flags]))).toEqual({ purged: 1 });
    expect(json(await tranche(["depth", "--json", ...flags]))).toMatchObject({ deadLettered: 0 });
  });

  it("a broker nobody answers on: exit 1 within seconds, one line naming it", async () => {
    const port = await freePort();
    const down = await tranche(["depth", "--amqp-url", `amqp://127.0.0.1:${port}`, "--queue", "q"]);
    expect(down.code).toBe(1);
    expect(down.stderr).toMatch(new RegExp(`^tranche: \\[tranche/amqp\\] depth failed: .*ECONNREFUSED.*127\\.0\\.0\\.1:${port}.*\\n$`));
    expect(down.took).toBeLessThan(15_000);
  });
});

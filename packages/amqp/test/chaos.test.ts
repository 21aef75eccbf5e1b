import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { analyseChaos, formatChaos, readEvents } from "@tranche/conformance/chaos";
import { connect } from "amqplib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AmqpTransport } from "../src/index.js";
import { queueDepths, readDeadLetters, startRabbitNode, type RabbitNode } from "../src/testing.js";
import { uniqueQueue } from "./support/server.js";
import { eventually, WorkerProcess } from "./support/worker-process.js";

// The chaos run of SPEC §10 on RabbitMQ: its own node, which the test restarts.
const ITEMS = 20_000;
const RETRY_ONCE = 200;
const GARBAGE = 20;
const RETRY_DELAY = 1_500;

let node: RabbitNode;
let dir: string;
const workers: WorkerProcess[] = [];

beforeAll(async () => {
  node = await startRabbitNode();
  dir = mkdtempSync(join(tmpdir(), "tranche-amqp-chaos-"));
}, 120_000);
afterAll(async () => {
  await Promise.all(workers.map((w) => w.stop()));
  await node?.close();
  rmSync(dir, { recursive: true, force: true });
}, 60_000);

/** Sends the items (every 100th retried once by its handler) and the undecodable messages among them. */
async function fill(queue: string): Promise<{ sent: string[]; retryOnce: string[]; garbage: string[] }> {
  const producer = new AmqpTransport<{ n: number; retry: boolean }>({ url: node.url, queue });
  const raw = await connect(node.url);
  try {
    await producer.ready();
    const payloads = Array.from({ length: ITEMS }, (_, n) => ({ n, retry: n % (ITEMS / RETRY_ONCE) === 7 }));
    const sent: string[] = [];
    const garbage: string[] = [];
    const channel = await raw.createConfirmChannel();
    const chunk = ITEMS / GARBAGE;
    for (let start = 0; start < ITEMS; start += chunk) {
      sent.push(...(await producer.sendMany(payloads.slice(start, start + chunk))));
      const id = `garbage-${garbage.length}`;
      channel.sendToQueue(queue, Buffer.from(`{not json ${id}`), { persistent: true, messageId: id });
      garbage.push(id);
    }
    await channel.waitForConfirms();
    return { sent, retryOnce: sent.filter((_, n) => payloads[n]?.retry), garbage };
  } finally {
    await producer.close();
    await raw.close();
  }
}

/** Messages on the broker in the work queue and every delay queue a 1.5 s retry can use. */
async function remaining(queue: string): Promise<number> {
  const delayQueues = Array.from({ length: 6 }, (_, i) => `${queue}.delay.${1_000 + i * 100}`);
  const depths = await queueDepths(node.url, [queue, ...delayQueues]);
  return [...depths.values()].reduce((a, b) => a + b, 0);
}

describe("AmqpTransport chaos", () => {
  it("3 workers, a SIGKILL at ~30 %, a broker restart at ~60 %: nothing lost, duplicates only in doubt, no early retry", { timeout: 300_000 }, async () => {
    const queue = uniqueQueue("X");
    const { sent, retryOnce, garbage } = await fill(queue);
    const total = sent.length + garbage.length;
    const events = [0, 1, 2].map((i) => join(dir, `events-${i}.jsonl`));
    const env = { AMQP_URL: node.url, QUEUE: queue, HANDLER_MS: "40", FLUSH_EVERY: "20", CONCURRENCY: "1", PREFETCH: "40", RETRY_DELAY: String(RETRY_DELAY) };
    const [victim, ...others] = events.map((path) => new WorkerProcess({ ...env, EVENTS: path }));
    workers.push(victim!, ...others);
    const progress = async (): Promise<number> => 1 - ((await queueDepths(node.url, [queue])).get(queue) ?? total) / total;

    await eventually(async () => (await progress()) >= 0.3, 120_000, "30 % of the items taken");
    // Mid-batch: its next handler stalls; the settlements of the batch before it are let land.
    victim!.kill("SIGUSR2");
    await victim!.until((p) => p.stalled, 10_000, "the victim inside a batch");
    await new Promise((r) => setTimeout(r, 300));
    victim!.kill("SIGKILL");
    await victim!.exited;

    await eventually(async () => (await progress()) >= 0.6, 120_000, "60 % of the items taken");
    await node.stop();
    await node.start();

    const unsettled = (): string[] => {
      const done = new Set<string>();
      for (const event of readEvents(events)) {
        if (event.e === "ack") for (const id of event.ids) done.add(id);
        else if (event.e === "deadLetter") done.add(event.id);
      }
      return [...sent, ...garbage].filter((id) => !done.has(id));
    };
    await eventually(async () => unsettled().length === 0 && (await remaining(queue)) === 0, 180_000, "every item settled").catch(async (error: Error) => {
      const left = unsettled();
      const history = readEvents(events).filter((e) => ("ids" in e ? e.ids.some((id) => left.includes(id)) : left.includes(e.id)));
      console.log(`unsettled: ${left.map((id) => `${id}${retryOnce.includes(id) ? " (retry once)" : ""}`).join(", ")}\n${history.map((e) => JSON.stringify({ ...e, ids: undefined })).join("\n")}`);
      const errors = others.map((w) => w.errors.slice(-3).join(" | ")).join("\n");
      throw new Error(`${error.message}: ${left.length} unsettled (${left.slice(0, 5).join(", ")}), ${await remaining(queue)} on the broker; last worker errors:\n${errors}`);
    });
    await Promise.all(others.map((w) => w.stop()));

    const letters = await readDeadLetters(node.url, `${queue}.dead`);
    const { figures, violations } = analyseChaos({
      sent,
      retryOnce,
      garbage,
      events: readEvents(events),
      deadLetters: letters.map((letter) => ({ id: letter.id, reason: `${letter.errorName}: ${letter.reason}` })),
      remaining: await remaining(queue),
    });
    // A letter is confirmed before its delivery is acked: if the ack is lost (the connection
    // dropped in between), the deadLetter call fails, the message comes back and is dead-lettered
    // again. Each extra letter of an item must follow such a failed call.
    const perItem = new Map<string, number>();
    for (const letter of letters) perItem.set(letter.id, (perItem.get(letter.id) ?? 0) + 1);
    const failed = workers.flatMap((w) => w.deadFailed);
    for (const [id, n] of perItem) expect(n - 1, `extra dead letters of ${id}`).toBeLessThanOrEqual(failed.filter((f) => f === id).length);
    console.log(`${formatChaos("amqp", figures)}\n  dead-letter messages ${letters.length} for ${perItem.size} items (extra ones each after a failed deadLetter call)`);
    expect(violations).toEqual([]);
    expect(figures.retried).toBe(RETRY_ONCE);
  });
});

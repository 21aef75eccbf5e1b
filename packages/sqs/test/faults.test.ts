// Fault tests with real worker processes (test/fixtures/worker.mjs) on an emulator this file owns:
// it must outlive a killed worker and, for the outage, sit behind a proxy this file cuts.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { GetQueueAttributesCommand, ReceiveMessageCommand, SendMessageCommand } from "@aws-sdk/client-sqs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SQS_ATTRIBUTES, SqsTransport } from "../src/index.js";
import { type SqsEmulator, startSqsEmulator } from "../src/testing.js";
import { CuttableProxy, killAll, records, WorkerProcess } from "./support/processes.js";
import { sleep } from "./support/sqs.js";

let emulator: SqsEmulator;
let dir: string;
let queues = 0;
beforeAll(async () => {
  emulator = await startSqsEmulator();
  dir = mkdtempSync(join(tmpdir(), "tranche-sqs-faults-"));
});
afterAll(async () => {
  killAll();
  await emulator?.stop();
  rmSync(dir, { recursive: true, force: true });
});

/** A queue and its dead-letter queue: a worker's transport must have somewhere to dead-letter. */
async function queueWithDlq(name: string, fifo = false) {
  const attributes = fifo ? { FifoQueue: "true" } : undefined;
  const suffix = fifo ? ".fifo" : "";
  const n = queues++;
  return {
    queueUrl: await emulator.createQueue(`${name}-${n}${suffix}`, attributes),
    deadLetterQueueUrl: await emulator.createQueue(`${name}-dlq-${n}${suffix}`, attributes),
  };
}

function producer<T>(queueUrl: string) {
  return new SqsTransport<T>({ queueUrl, ...emulator.connection });
}

/** Polls until every id in `ids` was handled ("run") by some worker and the queue is empty; returns all records. */
async function untilAllRan(files: string[], ids: string[], timeout: number, queueUrl: string) {
  const end = Date.now() + timeout;
  const client = emulator.client();
  for (;;) {
    const all = files.flatMap((f) => records(f).map((r) => ({ ...r, file: f })));
    const ran = new Set(all.filter((r) => r.outcome === "run").map((r) => r.id));
    if (ids.every((id) => ran.has(id))) {
      const out = await client.send(new GetQueueAttributesCommand({ QueueUrl: queueUrl, AttributeNames: ["All"] }));
      const a = out.Attributes ?? {};
      if (a.ApproximateNumberOfMessages === "0" && a.ApproximateNumberOfMessagesNotVisible === "0" && a.ApproximateNumberOfMessagesDelayed === "0") {
        client.destroy();
        return files.flatMap((f) => records(f).map((r) => ({ ...r, file: f })));
      }
    }
    if (Date.now() > end) throw new Error(`${ids.filter((id) => !ran.has(id)).length} of ${ids.length} items never ran`);
    await sleep(200);
  }
}

function duplicates(all: { id: string }[]): Map<string, number> {
  const counts = new Map<string, number>();
  for (const r of all) counts.set(r.id, (counts.get(r.id) ?? 0) + 1);
  return new Map([...counts].filter(([, n]) => n > 1));
}

describe("SqsTransport fault tests (worker processes, fauxqs)", () => {
  it("(a) three workers share a queue; one is SIGKILLed mid-batch; its items come back to the others; none lost", async () => {
    const { queueUrl, deadLetterQueueUrl } = await queueWithDlq("crash");
    const ids = await producer<{ n: number }>(queueUrl).sendMany(Array.from({ length: 5_000 }, (_, n) => ({ n })));
    const files = [0, 1, 2].map((i) => join(dir, `crash-w${i}`));
    const common = { endpoint: emulator.endpoint, queueUrl, deadLetterQueueUrl, visibilityTimeout: 6_000, lease: 6_000, handlerDelay: 150 };
    const [victim, ...others] = files.map((out, i) => new WorkerProcess({ ...common, out, ...(i === 0 ? { hangInBatch: 4 } : {}) }));
    // Kill it inside its fourth batch: the batch's items recorded as run, not acked.
    const line = await victim!.waitFor((l) => l.startsWith("hung "), 60_000);
    victim!.child.kill("SIGKILL");
    const killedAt = Date.now();
    await victim!.exited;
    const midBatch = line.slice("hung ".length).split(",");

    const all = await untilAllRan(files, ids, 120_000, queueUrl);
    const byOthers = all.filter((r) => r.file !== files[0]);
    // The batch it died in was picked up by the others, after the visibility timeout, as a redelivery.
    for (const id of midBatch) {
      const runs = all.filter((r) => r.id === id).map((r) => `${r.file.slice(-8)} attempt ${r.attempt} at kill${r.t >= killedAt ? "+" : ""}${Math.round(r.t - killedAt)} ms`);
      expect(byOthers.some((r) => r.id === id && r.attempt >= 2 && r.t >= killedAt), `${id}: ${runs.join("; ")}`).toBe(true);
    }
    // Duplicates only among what the killed worker held (at most its maxBuffered: 10 × 100).
    const victimIds = new Set(records(files[0]!).map((r) => r.id));
    const dupes = duplicates(all);
    expect(dupes.size).toBeGreaterThanOrEqual(midBatch.length);
    expect(dupes.size).toBeLessThanOrEqual(1_000);
    for (const [id, n] of dupes) {
      expect(victimIds.has(id), `duplicate ${id} was never with the killed worker`).toBe(true);
      expect(n).toBe(2);
    }
    await Promise.all(others.map((w) => w.stop()));
    expect(await Promise.all(others.map((w) => w.exited))).toEqual([0, 0]);
  }, 180_000);

  it("(b) the endpoint is unreachable for a while: error events, backoff, recovery, nothing lost", async () => {
    const { queueUrl, deadLetterQueueUrl } = await queueWithDlq("outage");
    const ids = await producer<{ n: number }>(queueUrl).sendMany(Array.from({ length: 2_000 }, (_, n) => ({ n })));
    const proxy = await new CuttableProxy({ host: "127.0.0.1", port: emulator.port }).start();
    const files = [0, 1].map((i) => join(dir, `outage-w${i}`));
    const workers = files.map(
      (out) => new WorkerProcess({ endpoint: proxy.endpoint, queueUrl, deadLetterQueueUrl, out, visibilityTimeout: 8_000, lease: 8_000, handlerDelay: 100, concurrency: 1 }),
    );
    const seen = () => files.reduce((n, f) => n + records(f).length, 0);
    await Promise.all(workers.map((w) => w.waitFor((l) => l === "ready")));
    for (const end = Date.now() + 60_000; seen() < 300; await sleep(50)) {
      if (Date.now() > end) throw new Error(`only ${seen()} items ran before the outage`);
    }
    await proxy.cut();
    const cutAt = seen();
    await Promise.all(workers.map((w) => w.waitFor((l) => l.startsWith("error "), 20_000)));
    await sleep(3_000);
    const errorsDuringOutage = workers.map((w) => w.errors().length);
    await proxy.restore();
    const all = await untilAllRan(files, ids, 120_000, queueUrl);
    expect(all.length).toBeGreaterThan(cutAt); // it recovered
    // Backoff (100 ms doubling to 1 s, plus the SDK's own retries): a handful of errors per second, not a hot loop.
    for (const n of errorsDuringOutage) {
      expect(n).toBeGreaterThanOrEqual(1);
      expect(n).toBeLessThan(300);
    }
    expect(workers.every((w) => w.errors().some((e) => /\[tranche\/sqs\]|ECONNREFUSED|connect/i.test(e)))).toBe(true);
    await Promise.all(workers.map((w) => w.stop()));
    expect(await Promise.all(workers.map((w) => w.exited))).toEqual([0, 0]);
    await proxy.cut();
  }, 180_000);

  it("(c) undecodable bodies are dead-lettered with their reason while good ones flow", async () => {
    const { queueUrl, deadLetterQueueUrl } = await queueWithDlq("garbage");
    const client = emulator.client();
    const good: string[] = [];
    const raw = new Set<string>();
    const p = producer<{ n: number }>(queueUrl);
    for (let i = 0; i < 10; i++) {
      good.push(...(await p.sendMany(Array.from({ length: 30 }, (_, n) => ({ n: i * 30 + n })))));
      for (let j = 0; j < 3; j++) {
        const body = `{garbage ${i}-${j}`;
        raw.add(body);
        await client.send(new SendMessageCommand({ QueueUrl: queueUrl, MessageBody: body }));
      }
    }
    const out = join(dir, "garbage-w0");
    const worker = new WorkerProcess({ endpoint: emulator.endpoint, queueUrl, deadLetterQueueUrl, out, visibilityTimeout: 5_000, flushEvery: 50 });
    const all = await untilAllRan([out], good, 60_000, queueUrl);
    const dead: { body: string; reason: string; error: string; id: string }[] = [];
    const end = Date.now() + 30_000;
    while (dead.length < raw.size && Date.now() < end) {
      const got = await client.send(
        new ReceiveMessageCommand({ QueueUrl: deadLetterQueueUrl, MaxNumberOfMessages: 10, WaitTimeSeconds: 1, MessageAttributeNames: ["All"] }),
      );
      for (const m of got.Messages ?? []) {
        const a = m.MessageAttributes ?? {};
        dead.push({
          body: m.Body ?? "",
          reason: a[SQS_ATTRIBUTES.reason]?.StringValue ?? "",
          error: a[SQS_ATTRIBUTES.error]?.StringValue ?? "",
          id: a[SQS_ATTRIBUTES.id]?.StringValue ?? "",
        });
      }
    }
    expect(new Set(dead.map((d) => d.body))).toEqual(raw);
    for (const d of dead) {
      expect(d.error).toBe("DecodeError");
      expect(d.reason).toMatch(/cannot decode payload/);
    }
    // Garbage never reached the handler.
    const handled = new Set(all.map((r) => r.id));
    expect(dead.some((d) => handled.has(d.id))).toBe(false);
    expect(handled).toEqual(new Set(good));
    expect(await worker.stop()).toBe(0);
    client.destroy();
  }, 120_000);

  it("(d) FIFO: order per message group holds with retries, across two workers", async () => {
    const { queueUrl, deadLetterQueueUrl } = await queueWithDlq("order", true);
    const p = producer<{ g: string; n: number }>(queueUrl);
    const groups = ["a", "b", "c", "d"];
    const ids: string[] = [];
    for (let n = 0; n < 30; n++) {
      for (const g of groups) ids.push(await p.send({ g, n }, { id: `${g}-${n}`, messageGroupId: g }));
    }
    const files = [0, 1].map((i) => join(dir, `order-w${i}`));
    const retryWhen = { every: 7, rest: 3, delay: 300 };
    const workers = files.map(
      (out) => new WorkerProcess({ endpoint: emulator.endpoint, queueUrl, deadLetterQueueUrl, out, visibilityTimeout: 5_000, flushEvery: 10, retryWhen }),
    );
    const all = await untilAllRan(files, ids, 120_000, queueUrl);
    await Promise.all(workers.map((w) => w.stop()));
    const timeline = files.flatMap((f) => records(f)).sort((x, y) => x.t - y.t);
    for (const g of groups) {
      const mine = timeline.filter((r) => r.id.startsWith(`${g}-`)).map((r) => ({ ...r, n: Number(r.id.split("-")[1]) }));
      // Handed over strictly in order: each item, retried or not, before the next one of its group.
      const ns = mine.map((r) => r.n);
      expect(ns).toEqual([...ns].sort((x, y) => x - y));
      expect(mine.filter((r) => r.outcome === "run").map((r) => r.n)).toEqual(Array.from({ length: 30 }, (_, n) => n));
      const retried = mine.filter((r) => r.outcome === "retry");
      expect(retried.map((r) => r.n)).toEqual([3, 10, 17, 24]);
      for (const r of retried) expect(mine.find((x) => x.n === r.n && x.outcome === "run")?.attempt).toBe(2);
    }
    expect(all.length).toBe(ids.length + 4 * groups.length);
  }, 180_000);
});

// Fault tests with real worker processes (test/fixtures/worker.mjs) on an emulator this file owns:
// it must outlive a killed worker and sit behind a proxy this file cuts.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { GetQueueAttributesCommand, ReceiveMessageCommand, SendMessageCommand } from "@aws-sdk/client-sqs";
import { analyseChaos, formatChaos, readEvents } from "@tranche/conformance/chaos";
import { TcpProxy } from "@tranche/conformance/net";
import { RedisResultStore } from "@tranche/redis";
import { startRedisServer } from "@tranche/redis/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SQS_ATTRIBUTES, SqsTransport } from "../src/index.js";
import { type SqsEmulator, startSqsEmulator } from "../src/testing.js";
import { killAll, records, WorkerProcess } from "./support/processes.js";
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

/** Messages of a queue: ready, in flight and delayed. */
async function left(queueUrl: string): Promise<number> {
  const client = emulator.client();
  try {
    const a = (await client.send(new GetQueueAttributesCommand({ QueueUrl: queueUrl, AttributeNames: ["All"] }))).Attributes ?? {};
    return Number(a.ApproximateNumberOfMessages) + Number(a.ApproximateNumberOfMessagesNotVisible) + Number(a.ApproximateNumberOfMessagesDelayed);
  } finally {
    client.destroy();
  }
}

/** Polls until every id in `ids` was handled ("run") by some worker and the queue is empty; returns all records. */
async function untilAllRan(files: string[], ids: string[], timeout: number, queueUrl: string) {
  const end = Date.now() + timeout;
  for (;;) {
    const all = files.flatMap((f) => records(f).map((r) => ({ ...r, file: f })));
    const ran = new Set(all.filter((r) => r.outcome === "run").map((r) => r.id));
    if (ids.every((id) => ran.has(id)) && (await left(queueUrl)) === 0) return files.flatMap((f) => records(f).map((r) => ({ ...r, file: f })));
    if (Date.now() > end) throw new Error(`${ids.filter((id) => !ran.has(id)).length} of ${ids.length} items never ran`);
    await sleep(200);
  }
}

/** Polls `test` (every 250 ms: reading the workers' files costs the event loop the emulator and the proxy share) until it holds. */
async function until(test: () => boolean, what: string, timeout: number, detail: () => string): Promise<void> {
  for (const end = Date.now() + timeout; !test(); await sleep(250)) {
    if (Date.now() > end) throw new Error(`${what}: not within ${timeout} ms\n${detail()}`);
  }
}

/** Ids with a confirmed outcome (ack or dead letter) in the chaos events of `files`. */
function settledIds(files: string[]): Set<string> {
  const done = new Set<string>();
  for (const e of readEvents(files)) {
    if (e.e === "ack") for (const id of e.ids) done.add(id);
    else if (e.e === "deadLetter") done.add(e.id);
  }
  return done;
}

/** The dead letters of a queue, read (and taken) past the transport. */
async function readDeadLetters(deadLetterQueueUrl: string): Promise<{ id: string; reason: string }[]> {
  const client = emulator.client();
  const letters: { id: string; reason: string }[] = [];
  try {
    for (;;) {
      const got = await client.send(new ReceiveMessageCommand({ QueueUrl: deadLetterQueueUrl, MaxNumberOfMessages: 10, MessageAttributeNames: ["All"] }));
      if ((got.Messages ?? []).length === 0) return letters;
      for (const m of got.Messages ?? []) {
        const a = m.MessageAttributes ?? {};
        letters.push({ id: a[SQS_ATTRIBUTES.id]?.StringValue ?? "", reason: `${a[SQS_ATTRIBUTES.error]?.StringValue}: ${a[SQS_ATTRIBUTES.reason]?.StringValue}` });
      }
    }
  } finally {
    client.destroy();
  }
}

describe("SqsTransport fault tests (worker processes, fauxqs)", () => {
  it("(a) undecodable bodies are dead-lettered with their reason while good ones flow", async () => {
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

  it("(b) FIFO: order per message group holds with retries, across two workers", async () => {
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

  it("(c) chaos: 3 workers, 5,000 items (200 retried once, 20 undecodable); one SIGKILLed mid-batch at ~30 %; the connection cut for 5 s at ~60 %", async () => {
    const { queueUrl, deadLetterQueueUrl } = await queueWithDlq("chaos");
    const proxy = await TcpProxy.start({ host: "127.0.0.1", port: emulator.port });
    const client = emulator.client();
    // SQS keeps no results: the workers store them in Redis, where a producer awaits them.
    const redis = await startRedisServer();
    const results = new RedisResultStore({ url: redis.url, prefix: "chaos:" });
    try {
      const sent = Array.from({ length: 5_000 }, (_, n) => `c-${n}`);
      const retryOnce = sent.filter((_, n) => n % 25 === 7);
      const retrying = new Set(retryOnce);
      const garbage = Array.from({ length: 20 }, (_, n) => `garbage-${n}`);
      const p = producer<{ n: number; retryOnce: boolean }>(queueUrl);
      await p.sendMany(
        sent.map((id, n) => ({ n, retryOnce: retrying.has(id) })),
        { ids: sent },
      );
      for (const id of garbage) {
        await client.send(new SendMessageCommand({ QueueUrl: queueUrl, MessageBody: "{garbage", MessageAttributes: { [SQS_ATTRIBUTES.id]: { DataType: "String", StringValue: id } } }));
      }
      await p.close();
      const awaited = sent.filter((_, n) => n % 20 === 3);
      const waits = awaited.map((id) =>
        results.wait(id, { timeout: 170_000 }).then(
          () => true,
          () => false,
        ),
      );

      const files = [0, 1, 2].map((i) => join(dir, `chaos-w${i}.jsonl`));
      // The lease outlasts the cut: what a worker holds through it is settled after, not redelivered.
      const common = {
        endpoint: `http://${proxy.address}`,
        queueUrl,
        deadLetterQueueUrl,
        visibilityTimeout: 15_000,
        lease: 15_000,
        handlerDelay: 20,
        flushEvery: 25,
        retryDelay: 1_500,
        redisUrl: redis.url,
        resultPrefix: "chaos:",
      };
      const [victim, ...others] = files.map((events) => new WorkerProcess({ ...common, events }));
      const detail = () => {
        const done = settledIds(files);
        const open = [...sent, ...garbage].filter((id) => !done.has(id));
        const tails = others.map((w, i) => `worker ${i + 1}: ${w.lines.filter((l) => !l.startsWith("batch ")).slice(-3).join(" | ")}`);
        return `${done.size} settled; open: ${open.slice(0, 5).join(", ")}\n${tails.join("\n")}`;
      };

      await until(() => settledIds(files).size >= 1_500, "30 % settled", 60_000, detail);
      // Its next batch hangs mid-way; the kill comes once no call to SQS is in flight (an ack SQS
      // applied that the worker had no time to record would count as lost).
      victim!.child.kill("SIGUSR2");
      const hung = new Set((await victim!.waitFor((l) => l.startsWith("hung "), 20_000)).slice("hung ".length).split(","));
      victim!.child.kill("SIGKILL");
      await victim!.exited;

      await until(() => settledIds(files).size >= 3_000, "60 % settled", 60_000, detail);
      const errorsBefore = others.map((w) => w.errors().length);
      proxy.cut();
      await sleep(5_000);
      const errorsDuringCut = others.map((w, i) => w.errors().length - (errorsBefore[i] as number));
      proxy.heal();

      const all = [...sent, ...garbage];
      await until(
        () => {
          const done = settledIds(files);
          return all.every((id) => done.has(id));
        },
        "every item settled",
        120_000,
        detail,
      );
      // Then the queue drains: retried copies ran, leases of the killed worker ran out.
      for (const end = Date.now() + 30_000; (await left(queueUrl)) > 0 && Date.now() < end; ) await sleep(250);
      await Promise.all(others.map((w) => w.stop()));
      expect(await Promise.all(others.map((w) => w.exited))).toEqual([0, 0]);

      const events = readEvents(files);
      const resolved = (await Promise.all(waits)).filter(Boolean).length;
      const { figures, violations } = analyseChaos({
        sent,
        retryOnce,
        garbage,
        events,
        deadLetters: await readDeadLetters(deadLetterQueueUrl),
        remaining: await left(queueUrl),
        results: { awaited: awaited.length, resolved },
      });
      const rerun = new Set(events.filter((e) => e.e === "run" && hung.has(e.id) && e.pid !== victim!.child.pid).map((e) => (e as { id: string }).id));
      console.log(formatChaos("sqs (fauxqs)", figures));
      console.log(`  the killed worker's hung batch: ${hung.size} items, run again by the others: ${rerun.size}`);
      console.log(`  errors reported by the 2 other workers while cut (5 s): ${errorsDuringCut.join(", ")}`);
      expect(violations).toEqual([]);
      expect(figures.retried).toBe(retryOnce.length);
      // The batch it died in came back to the others (after the visibility timeout).
      expect(rerun).toEqual(hung);
      // The cut was reported, with backoff: a handful of errors per second, not a hot loop.
      for (const n of errorsDuringCut) expect(n).toBeGreaterThanOrEqual(1);
      for (const n of errorsDuringCut) expect(n).toBeLessThan(300);
      expect(others.every((w) => w.errors().some((e) => /\[tranche\/sqs\] .*(ECONNREFUSED|ECONNRESET)/.test(e)))).toBe(true);
    } finally {
      client.destroy();
      await proxy.close();
      await results.close();
      await redis.close();
    }
  }, 240_000);
});

import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { analyseChaos, formatChaos, readEvents } from "@tranche/conformance/chaos";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { connect, headers, type NatsConnection } from "@nats-io/transport-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { NatsKvResultStore, NatsTransport } from "../src/index.js";
import { countMessages, readDeadLetters, startNatsServer, type NatsServer } from "../src/testing.js";
import { uniqueQueue } from "./support/server.js";
import { splitByCrash } from "./support/crash-window.js";
import { eventually, WorkerProcess } from "./support/worker-process.js";

// These tests stop and restart the server, so they always start their own (NATS_URL is not used).
let server: NatsServer;
let nc: NatsConnection;
const workers: WorkerProcess[] = [];

beforeAll(async () => {
  server = await startNatsServer();
  nc = await connect({ servers: server.url, maxReconnectAttempts: -1, reconnectTimeWait: 250 });
});
afterAll(async () => {
  await Promise.all(workers.map((w) => w.stop()));
  await nc?.close();
  await server?.close();
});

function spawnWorkers(count: number, q: ReturnType<typeof uniqueQueue>, env: Record<string, string>): WorkerProcess[] {
  const started = Array.from({ length: count }, () => new WorkerProcess({ NATS_URL: server.url, STREAM: q.stream, SUBJECT: q.subject, DURABLE: q.durable, ...env }));
  workers.push(...started);
  return started;
}

async function fill(q: ReturnType<typeof uniqueQueue>, count: number): Promise<string[]> {
  const producer = new NatsTransport<number>({ servers: server.url, ...q, ackWait: 2_000 });
  try {
    return await producer.sendMany(Array.from({ length: count }, (_, i) => i));
  } finally {
    await producer.close();
  }
}

function pendingInStream(stream: string, subject: string): Promise<number> {
  return countMessages(nc, { stream, subject });
}

function counts(processes: WorkerProcess[]): Map<string, number> {
  const seen = new Map<string, number>();
  for (const p of processes) for (const { id } of p.done) seen.set(id, (seen.get(id) ?? 0) + 1);
  return seen;
}

describe("NatsTransport with worker processes", () => {
  it("a SIGKILLed worker's deliveries come back after AckWait to the others: none lost, duplicates only among its in-flight items", { timeout: 120_000 }, async () => {
    const q = uniqueQueue("K");
    const ids = await fill(q, 20_000);
    // AckWait long enough that a survivor's lease renewals keep up while CI loads both cores:
    // a survivor's lease running out would be a duplicate outside the victim's items.
    const ackWait = 8_000;
    const [victim, ...others] = spawnWorkers(3, q, { ACK_WAIT: String(ackWait), HANDLER_MS: "40", FLUSH_EVERY: "100", CONCURRENCY: "2" });
    // Killed inside its fifth batch: the handler has printed "start" and sleeps 40 ms.
    await victim!.until((p) => p.starts >= 5, 60_000, "the victim's fifth batch");
    victim!.kill("SIGKILL");
    await victim!.exited;

    await eventually(async () => counts(workers.slice(-3)).size === ids.length && (await pendingInStream(q.stream, q.subject)) === 0, 90_000, "all 20,000 items processed and acked");
    const seen = counts([victim!, ...others]);
    expect([...seen.keys()].sort()).toEqual([...ids].sort());

    // Duplicates: only items the victim finished but could not ack before it died.
    const victimDone = new Set(victim!.done.map((d) => d.id));
    const duplicates = [...seen].filter(([, n]) => n > 1).map(([id]) => id);
    for (const id of duplicates) expect(victimDone.has(id)).toBe(true);
    expect(Math.max(...seen.values())).toBeLessThanOrEqual(2);
    expect(duplicates.length).toBeLessThanOrEqual(1_000); // the victim's maxBuffered

    // Its unsettled deliveries were redelivered (attempt 2) and processed by the survivors, no
    // sooner than AckWait after it could first have received them (its "ready" line).
    const redelivered = others.flatMap((p) => p.done.filter((d) => d.attempt >= 2));
    expect(redelivered.length).toBeGreaterThan(0);
    expect(Math.min(...redelivered.map((d) => d.at))).toBeGreaterThanOrEqual(victim!.readyAt + ackWait);
    expect(others.every((p) => p.dead.length === 0)).toBe(true);
    console.log(`kill: victim finished ${victimDone.size}, ${duplicates.length} duplicates, ${redelivered.length} redelivered to the survivors`);
    await Promise.all(others.map((w) => w.stop()));
  });

  it("the server is stopped and restarted mid-run: workers reconnect and finish, nothing lost", { timeout: 120_000 }, async () => {
    const q = uniqueQueue("R");
    const ids = await fill(q, 5_000);
    const pair = spawnWorkers(2, q, { ACK_WAIT: "5000", HANDLER_MS: "150", FLUSH_EVERY: "100", CONCURRENCY: "1" });
    await eventually(() => counts(pair).size >= 1_000, 60_000, "1,000 items processed");
    const beforeStop = counts(pair).size;
    await server.stop();
    await new Promise((r) => setTimeout(r, 1_500));
    await server.start();

    await eventually(async () => counts(pair).size === ids.length && (await pendingInStream(q.stream, q.subject)) === 0, 90_000, "all 5,000 items processed after the restart");
    expect(beforeStop).toBeLessThan(ids.length); // the restart happened mid-run
    console.log(`restart: ${beforeStop} done before the stop, ${pair.reduce((n, p) => n + p.done.length, 0) - ids.length} duplicates, ${pair.reduce((n, p) => n + p.errors.length, 0)} worker errors`);
    expect([...counts(pair).keys()].sort()).toEqual([...ids].sort());
    expect(pair.every((p) => p.child.exitCode === null)).toBe(true); // still running: reconnected
    expect(pair.every((p) => p.dead.length === 0)).toBe(true);
    await Promise.all(pair.map((w) => w.stop()));
  });

  it("garbage payloads are dead-lettered with their reason while good ones flow", { timeout: 60_000 }, async () => {
    const q = uniqueQueue("G");
    const producer = new NatsTransport<number>({ servers: server.url, ...q });
    await producer.ready();
    const js = jetstream(nc);
    const good: string[] = [];
    const garbage = new Map<string, string>();
    for (let i = 0; i < 1_000; i++) {
      good.push(await producer.send(i));
      if (i % 20 === 0) {
        const h = headers();
        h.set("Tranche-Id", `garbage-${i}`);
        garbage.set(`garbage-${i}`, `{oops ${i}`);
        await js.publish(q.subject, `{oops ${i}`, { headers: h });
      }
    }
    await producer.close();
    const [worker] = spawnWorkers(1, q, { ACK_WAIT: "5000" });

    await eventually(() => counts([worker!]).size === good.length && worker!.dead.length === garbage.size, 45_000, "good items done and garbage dead-lettered");
    expect([...counts([worker!]).keys()].sort()).toEqual([...good].sort());
    expect(worker!.dead.every((line) => /DecodeError/.test(line))).toBe(true);
    const letters = await readDeadLetters(nc, { stream: q.stream, deadLetterSubject: `${q.subject}.dead` });
    expect(letters.map((l) => l.id).sort()).toEqual([...garbage.keys()].sort());
    for (const letter of letters) {
      expect(new TextDecoder().decode(letter.raw)).toBe(garbage.get(letter.id));
      expect(letter.errorName).toBe("DecodeError");
      expect(letter.reason).toMatch(/cannot decode/);
      expect(letter.subject).toBe(q.subject);
    }
    await eventually(async () => (await pendingInStream(q.stream, q.subject)) === 0, 10_000, "the work subject to drain");
    await worker!.stop();
  });

  it(
    "chaos: 3 workers on 20,000 items (200 retried once, 20 undecodable), one worker SIGKILLed at ~30 %, the server SIGKILLed and restarted at ~60 %: nothing lost, duplicates only in doubt, no early run, 1,000 awaited results",
    { timeout: 240_000 },
    async () => {
      const q = uniqueQueue("X");
      const dir = mkdtempSync(join(tmpdir(), "tranche-nats-chaos-"));
      const bucket = `chaos_${q.stream}`;
      const producer = new NatsTransport<{ n: number; retry?: true }>({ servers: server.url, stream: q.stream, subject: q.subject });
      const results = new NatsKvResultStore({ servers: server.url, bucket });
      try {
        const payloads = Array.from({ length: 20_000 }, (_, n) => (n % 100 === 7 ? { n, retry: true as const } : { n }));
        const sent = await producer.sendMany(payloads);
        const retryOnce = sent.filter((_, n) => n % 100 === 7);
        const garbage = Array.from({ length: 20 }, (_, i) => `garbage-${i}`);
        const js = jetstream(nc);
        for (const id of garbage) {
          const h = headers();
          h.set("Tranche-Id", id);
          await js.publish(q.subject, `{not json ${id}`, { headers: h });
        }
        // A producer awaits 1,000 results, the retried items among them, across both faults.
        const awaited = [...retryOnce, ...sent.filter((_, n) => n % 25 === 3)].slice(0, 1_000);
        const waits = awaited.map((id) => results.wait(id, { timeout: 200_000 }).then(() => true, () => false));

        const logs = [0, 1, 2].map((i) => join(dir, `worker-${i}.jsonl`));
        const started = logs.map(
          (log) =>
            new WorkerProcess({
              NATS_URL: server.url,
              STREAM: q.stream,
              SUBJECT: q.subject,
              DURABLE: q.durable,
              ACK_WAIT: "15000",
              HANDLER_MS: "10",
              FLUSH_EVERY: "50",
              MAX_BUFFERED: "100",
              CONCURRENCY: "2",
              CHAOS_LOG: log,
              RESULTS_BUCKET: bucket,
              RETRY_DELAY: "1500",
            }),
        );
        workers.push(...started);
        const [victim] = started;
        const ran = (): number => started.reduce((n, p) => n + p.done.length, 0);

        await eventually(() => ran() >= 6_000, 120_000, "30 % processed");
        // It SIGKILLs itself inside the next batch its handler is handed.
        victim!.kill("SIGUSR2");
        await victim!.exited;
        const killedWorker = { runs: ran(), at: Date.now() };
        await eventually(() => ran() >= 12_000, 120_000, "60 % processed");
        const killedServer = { runs: ran(), at: Date.now() };
        await server.kill();
        await server.start();
        const restartedAt = Date.now();

        const notRun = (): string[] => {
          const done = new Set(started.flatMap((p) => p.done.map((d) => d.id)));
          return sent.filter((id) => !done.has(id));
        };
        await eventually(async () => notRun().length === 0 && (await pendingInStream(q.stream, q.subject)) === 0, 150_000, "every item run and the stream empty").catch(async (error: unknown) => {
          const jsm = await jetstreamManager(nc);
          const consumer = await jsm.consumers.info(q.stream, q.durable);
          const errors = started.flatMap((p) => p.errors.slice(-3));
          console.log(`not run: ${notRun().length} (${notRun().slice(0, 3).join(" ")}); on the subject: ${await pendingInStream(q.stream, q.subject)}; consumer ${JSON.stringify({ pending: consumer.num_pending, ackPending: consumer.num_ack_pending, redelivered: consumer.num_redelivered, floor: consumer.ack_floor, delivered: consumer.delivered })}\nlast errors: ${errors.join("\n")}`);
          throw error;
        });
        await Promise.all(started.slice(1).map((w) => w.stop()));
        const resolved = (await Promise.all(waits)).filter(Boolean).length;
        const events = readEvents(logs);
        const deadLetters = await readDeadLetters(nc, { stream: q.stream, deadLetterSubject: `${q.subject}.dead` });
        const remaining = await pendingInStream(q.stream, q.subject);
        // The handler retries on attempt 1: an item whose first run came on a redelivery (it was
        // held by the killed worker, or its run there was cut short) is rightly not retried.
        const victimPid = victim!.child.pid;
        const ranFirst = new Set(events.flatMap((e) => (e.e === "run" && e.attempt === 1 && e.pid !== victimPid ? [e.id] : [])));
        const { figures, violations } = analyseChaos({
          sent,
          retryOnce: retryOnce.filter((id) => ranFirst.has(id)),
          garbage,
          events,
          deadLetters: deadLetters.map(({ id, reason }) => ({ id, reason })),
          remaining,
          results: { awaited: awaited.length, resolved },
        });
        const byCrash = splitByCrash(violations, events, { killedAt: killedServer.at, backAt: restartedAt });
        console.log(
          `${formatChaos("NatsTransport", figures)}\n` +
            `  worker killed after ${killedWorker.runs} runs, server killed after ${killedServer.runs} runs and back ${restartedAt - killedServer.at} ms later; ` +
            `runs the server's crash made (re-runs of items it forgot it had handed out): ${byCrash.crash.length}; worker errors: ${started.reduce((n, p) => n + p.errors.length, 0)}`,
        );
        for (const violation of [...byCrash.other, ...byCrash.crash].slice(0, 3)) {
          const id = violation.slice(0, violation.indexOf(":"));
          console.log(`${violation}\n${events.filter((e) => ("id" in e && e.id === id) || ("ids" in e && e.ids.includes(id))).map((e) => `  ${JSON.stringify({ ...e, ids: undefined })}`).join("\n")}`);
        }
        expect(byCrash.other.join("\n")).toBe("");
        // The server's own loss, bounded: a handful of items at most (0 in most runs).
        expect(byCrash.crash.length).toBeLessThanOrEqual(10);
      } finally {
        await producer.close();
        await results.close();
        if (process.env.KEEP_CHAOS === undefined) rmSync(dir, { recursive: true, force: true });
        else console.log(`chaos logs kept in ${dir}`);
      }
    },
  );
});

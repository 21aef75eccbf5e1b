import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { connect, headers, type NatsConnection } from "@nats-io/transport-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { NatsTransport } from "../src/index.js";
import { readDeadLetters, startNatsServer, type NatsServer } from "../src/testing.js";
import { uniqueQueue } from "./support/server.js";
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

async function pendingInStream(stream: string, subject: string): Promise<number> {
  const info = await (await jetstreamManager(nc)).streams.info(stream, { subjects_filter: subject });
  return info.state.subjects?.[subject] ?? 0;
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
    const ackWait = 5_000;
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
});

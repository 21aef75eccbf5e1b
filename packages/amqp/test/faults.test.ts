import { spawn } from "node:child_process";
import { rmSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { Delivery } from "@tranche/core";
import { TcpProxy } from "@tranche/conformance/net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AmqpTransport } from "../src/index.js";
import { queueDepths, startRabbitNode, type RabbitNode } from "../src/testing.js";
import { rejection, uniqueQueue } from "./support/server.js";
import { eventually, WorkerProcess } from "./support/worker-process.js";

// These tests stop, kill and restart the broker, so they start their own node (AMQP_URL is not used).
let node: RabbitNode;
const workers: WorkerProcess[] = [];
const never = (): AbortSignal => new AbortController().signal;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

beforeAll(async () => {
  node = await startRabbitNode();
}, 120_000);
afterAll(async () => {
  await Promise.all(workers.map((w) => w.stop()));
  await node?.close();
}, 60_000);

function spawnWorkers(count: number, queue: string, env: Record<string, string>): WorkerProcess[] {
  const started = Array.from({ length: count }, () => new WorkerProcess({ AMQP_URL: node.url, QUEUE: queue, ...env }));
  workers.push(...started);
  return started;
}

/** Declares the queues and sends `count` numbered items. */
async function fill(queue: string, count: number): Promise<string[]> {
  const producer = new AmqpTransport<number>({ url: node.url, queue });
  try {
    await producer.ready();
    return await producer.sendMany(Array.from({ length: count }, (_, i) => i));
  } finally {
    await producer.close();
  }
}

function counts(processes: WorkerProcess[]): Map<string, number> {
  const seen = new Map<string, number>();
  for (const p of processes) for (const { id } of p.done) seen.set(id, (seen.get(id) ?? 0) + 1);
  return seen;
}

async function ready(queue: string): Promise<number> {
  return (await queueDepths(node.url, [queue])).get(queue) ?? 0;
}


describe("AmqpTransport with worker processes", () => {
  it("a SIGKILLed worker's deliveries go back at once to the others: none lost, duplicates only among its in-flight items", { timeout: 150_000 }, async () => {
    const queue = uniqueQueue("K");
    const ids = await fill(queue, 5_000);
    const [victim, ...others] = spawnWorkers(3, queue, { HANDLER_MS: "40", FLUSH_EVERY: "50", CONCURRENCY: "2", PREFETCH: "200" });
    await victim!.until((p) => p.starts >= 5, 60_000, "the victim's fifth batch");
    victim!.kill("SIGKILL");
    await victim!.exited;
    const killedAt = Date.now();

    await eventually(async () => counts(workers.slice(-3)).size === ids.length && (await ready(queue)) === 0, 120_000, "all 5,000 items processed");
    const seen = counts([victim!, ...others]);
    expect([...seen.keys()].sort()).toEqual([...ids].sort());
    // Duplicates: only items the victim ran but could not ack before it died.
    const victimDone = new Set(victim!.done.map((d) => d.id));
    const duplicates = [...seen].filter(([, n]) => n > 1).map(([id]) => id);
    for (const id of duplicates) expect(victimDone.has(id)).toBe(true);
    expect(duplicates.length).toBeLessThanOrEqual(200); // the victim's prefetch
    // No lease to wait for: the broker hands its deliveries to the others as soon as its connection drops.
    const redelivered = others.flatMap((p) => p.done.filter((d) => d.attempt >= 2));
    expect(redelivered.length).toBeGreaterThan(0);
    expect(Math.min(...redelivered.map((d) => d.at)) - killedAt).toBeLessThan(15_000);
    expect(others.every((p) => p.dead.length === 0)).toBe(true);
    console.log(`kill: victim finished ${victimDone.size}, ${duplicates.length} duplicates, ${redelivered.length} redelivered to the others`);
    await Promise.all(others.map((w) => w.stop()));
  });

  it("the broker is stopped and restarted mid-run: workers report it, reconnect and finish, nothing lost", { timeout: 180_000 }, async () => {
    const queue = uniqueQueue("R");
    const ids = await fill(queue, 3_000);
    const pair = spawnWorkers(2, queue, { HANDLER_MS: "100", FLUSH_EVERY: "50", CONCURRENCY: "1", PREFETCH: "100" });
    await eventually(() => counts(pair).size >= 600, 60_000, "600 items processed");
    const beforeStop = counts(pair).size;
    const errorsBefore = pair.map((p) => p.errors.length);
    await node.stop();
    const stoppedAt = Date.now();
    // Each worker reports the fault, naming the broker's address, within 5 s.
    await eventually(() => pair.every((p, i) => p.errors.length > (errorsBefore[i] as number)), 5_000, "every worker to report the broker gone");
    expect(Date.now() - stoppedAt).toBeLessThan(5_000);
    expect(pair.every((p) => p.errors.slice(errorsBefore[0]).some((e) => e.includes(`127.0.0.1:${node.port}`)))).toBe(true);
    await sleep(1_000);
    await node.start();

    await eventually(async () => counts(pair).size === ids.length && (await ready(queue)) === 0, 120_000, "all 3,000 items processed after the restart");
    expect(beforeStop).toBeLessThan(ids.length);
    expect([...counts(pair).keys()].sort()).toEqual([...ids].sort());
    expect(pair.every((p) => p.child.exitCode === null)).toBe(true); // still running: reconnected
    expect(pair.every((p) => p.dead.length === 0)).toBe(true);
    const duplicates = pair.reduce((n, p) => n + p.done.length, 0) - ids.length;
    // Only what the workers held when the connection dropped (their prefetch) can run twice.
    expect(duplicates).toBeLessThanOrEqual(200);
    console.log(`restart: ${beforeStop} done before the stop, ${duplicates} duplicates`);
    await Promise.all(pair.map((w) => w.stop()));
  });
});

describe("AmqpTransport against a failing broker", () => {
  it("delayed retries survive a broker crash and never come back before their notBefore", { timeout: 120_000 }, async () => {
    const queue = uniqueQueue("D");
    const t = new AmqpTransport<number>({ url: node.url, queue, wait: 500 });
    await t.ready();
    const ids = await t.sendMany([1, 2, 3, 4, 5]);
    const got: Delivery<number>[] = [];
    while (got.length < ids.length) got.push(...(await t.receive(10, never())));
    const notBefore = Date.now() + 20_000;
    for (const d of got) await t.retry(d, notBefore);
    // A quorum queue of RabbitMQ 3.10 can lose what it confirmed in the last second before its
    // node is killed (see the README): the crash comes once the copies are settled on disk.
    await sleep(3_000);
    await node.kill();
    await node.start();
    const again: Delivery<number>[] = [];
    const deadline = Date.now() + 60_000;
    while (again.length < ids.length && Date.now() < deadline) {
      for (const d of await t.receive(10, never()).catch(() => [])) {
        // Delivered early, a delivery must say so, for the worker to hold it.
        if (Date.now() < notBefore) expect(d.notBefore).toBe(notBefore);
        again.push(d);
      }
    }
    expect(again.map((d) => d.id).sort()).toEqual([...ids].sort());
    expect(again.every((d) => d.retries === 1)).toBe(true);
    await t.ack(again);
    await t.close();
  });

  it("a broker that comes back without its data: the worker declares its queues again", { timeout: 120_000 }, async () => {
    const queue = uniqueQueue("W");
    const t = new AmqpTransport<number>({ url: node.url, queue, wait: 500 });
    await t.ready();
    await node.stop();
    rmSync(join(node.dir, "mnesia"), { recursive: true, force: true });
    await node.start();
    expect(await queueDepths(node.url, [queue]).then((d) => d.get(queue))).toBe(0);
    // The first call after the restart may meet the dropped connection; the next succeeds.
    await t.receive(1, never()).catch(() => []);
    const id = await t.send(7);
    const got: Delivery<number>[] = [];
    const deadline = Date.now() + 20_000;
    while (got.length === 0 && Date.now() < deadline) got.push(...(await t.receive(1, never()).catch(() => [])));
    expect(got.map((d) => d.id)).toEqual([id]);
    await t.ack(got);
    await t.close();
  });

  it("a silent network (black hole): calls fail within `timeout`, the connection is dropped, and it heals", { timeout: 60_000 }, async () => {
    const queue = uniqueQueue("B");
    const proxy = await TcpProxy.start({ host: "127.0.0.1", port: node.port });
    const t = new AmqpTransport<number>({ url: `amqp://guest:guest@127.0.0.1:${proxy.port}`, queue, wait: 500, timeout: 2_000, connectTimeout: 2_000 });
    try {
      await t.ready();
      await t.send(1);
      proxy.blackhole();
      let started = Date.now();
      let error = await rejection(t.send(2));
      expect(error.retryable).toBe(true);
      expect(Date.now() - started).toBeLessThan(4_000);
      expect(error.message).toMatch(/within 2000 ms/);
      // New connections are held silent too: the handshake times out.
      await sleep(300);
      started = Date.now();
      error = await rejection(t.receive(1, never()));
      expect(error.retryable).toBe(true);
      expect(Date.now() - started).toBeLessThan(4_000);
      proxy.heal();
      await sleep(300);
      const got: Delivery<number>[] = [];
      const deadline = Date.now() + 20_000;
      while (got.length === 0 && Date.now() < deadline) got.push(...(await t.receive(10, never()).catch(() => [])));
      expect(got.map((d) => d.payload)).toEqual([1]);
      await t.ack(got);
    } finally {
      await t.close();
      await proxy.close();
    }
  });

  it("with the broker down, calls fail fast and close() resolves quickly; the process can exit", { timeout: 60_000 }, async () => {
    await node.stop();
    try {
      const started = Date.now();
      const child = spawn(process.execPath, [fileURLToPath(new URL("./fixtures/unreachable.mjs", import.meta.url))], {
        env: { ...process.env, AMQP_URL: node.url, QUEUE: uniqueQueue("U") },
        stdio: ["ignore", "pipe", "pipe"],
      });
      let out = "";
      child.stdout.on("data", (chunk: Buffer) => (out += chunk.toString()));
      child.stderr.on("data", (chunk: Buffer) => (out += chunk.toString()));
      const code = await new Promise<number | null>((resolve) => child.once("exit", resolve));
      const report = JSON.parse(out.trim().split("\n").pop() ?? "{}") as Record<string, { ms: number; retryable: boolean; message: string }> & { close: number };
      expect(code, out).toBe(0);
      for (const call of ["send", "receive", "ready"]) {
        expect(report[call]?.retryable, call).toBe(true);
        expect(report[call]?.ms, call).toBeLessThan(5_000);
        expect(report[call]?.message, call).toContain(`127.0.0.1:${node.port}`);
      }
      expect(report.close).toBeLessThan(2_000);
      // Exited on its own: nothing left keeping it alive.
      expect(Date.now() - started).toBeLessThan(15_000);
    } finally {
      await node.start();
    }
  });
});

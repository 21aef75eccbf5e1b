import { TransportError } from "@tranche/core";
import { Worker } from "@tranche/worker";
import { afterEach, describe, expect, it } from "vitest";
import { RedisResultStore, RedisStreamsTransport } from "../src/index.js";
import { freePort } from "../src/testing.js";
import { spawnWorker, stopWorker } from "./support/processes.js";
import type { WorkerProcess } from "./support/processes.js";
import { settleWithin, sleep } from "./support/redis.js";

// Redis that is not there: a port nobody listens on, or a server of the test's own that it kills.

const never = new AbortController().signal;
const closers: (() => Promise<unknown>)[] = [];
const children: WorkerProcess[] = [];
afterEach(async () => {
  await Promise.all(children.splice(0).map(stopWorker));
  await Promise.all(closers.splice(0).map((close) => close().catch(() => {})));
});

async function closedPort(): Promise<{ url: string; address: string }> {
  const port = await freePort();
  return { url: `redis://127.0.0.1:${port}`, address: `127.0.0.1:${port}` };
}

function open(url: string) {
  const transport = new RedisStreamsTransport<number>({ url, stream: "unreachable", blockMs: 20_000 });
  const results = new RedisResultStore<number>({ url });
  closers.push(() => transport.close(), () => results.close());
  return { transport, results };
}

/** Asserts that `call` rejected within `ms` with a retryable TransportError of `operation` that names ECONNREFUSED and `address`. */
async function expectRefused(operation: string, call: Promise<unknown>, address: string, ms = 5000): Promise<void> {
  const start = Date.now();
  const outcome = await settleWithin(ms + 5000, call);
  expect(outcome, `${operation} did not settle`).not.toBe("pending");
  expect(Date.now() - start, `${operation} took too long`).toBeLessThan(ms);
  const error = (outcome as { error?: TransportError }).error;
  expect(TransportError.isInstance(error), `${operation} rejected with ${String(error)}`).toBe(true);
  expect(error!.retryable).toBe(true);
  expect(error!.message).toMatch(new RegExp(`^\\[tranche/redis\\] ${operation} failed: .*ECONNREFUSED ${address.replace(/\./g, "\\.")}`));
}

describe("with Redis unreachable", () => {
  it("send, receive, get, set and wait reject within 5 s with a retryable TransportError naming ECONNREFUSED and the address, every time", async () => {
    const { url, address } = await closedPort();
    const { transport, results } = open(url);
    for (let round = 0; round < 2; round++) {
      await expectRefused("send", transport.send(1), address);
      await expectRefused("sendMany", transport.sendMany([1, 2]), address);
      await expectRefused("receive", transport.receive(10, never), address);
      await expectRefused("get", results.get("x"), address);
      await expectRefused("set", results.set("x", { ok: true, value: 1 }), address);
      await expectRefused("wait", results.wait("x"), address);
    }
  }, 90_000);

  it("a Worker's first error comes within 5 s and names the cause and the address", async () => {
    const { url, address } = await closedPort();
    const { transport } = open(url);
    const worker = new Worker(transport, async () => {}, {});
    closers.unshift(() => worker.close({ drain: false, timeout: 1000 }));
    const first = new Promise<Error>((resolve) => worker.once("error", resolve));
    const start = Date.now();
    await worker.start();
    const outcome = await settleWithin(10_000, first);
    expect(outcome, "no error within 10 s").not.toBe("pending");
    expect(Date.now() - start).toBeLessThan(5000);
    expect((outcome as { value: Error }).value.message).toContain(`ECONNREFUSED ${address}`);
  }, 30_000);

  it("close() resolves promptly with calls in flight, and the process then exits by itself", async () => {
    const { url } = await closedPort();
    const child = spawnWorker({ REDIS_URL: url }, "unreachable.mjs");
    children.push(child);
    await child.said("ready");
    await sleep(500);
    await expectClosedAndExited(child);
  }, 60_000);
});

/** Signals the fixture to close, then requires "closed" within 5 s and an exit of its own within 5 s after that. */
async function expectClosedAndExited(child: WorkerProcess): Promise<void> {
  child.child.kill("SIGUSR2");
  await child.said("closed", 10_000);
  const closedIn = Number(child.lines.find((line) => line.startsWith("closed "))!.slice(7));
  expect(closedIn).toBeLessThan(5000);
  const exit = await settleWithin(5000, child.exited);
  expect(exit, `the process did not exit by itself; it said: ${child.lines.join(" | ")}`).toEqual({ value: 0 });
}

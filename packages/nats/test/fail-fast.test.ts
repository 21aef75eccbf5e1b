import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { TransportError } from "@tranche/core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { NatsKvResultStore, NatsTransport } from "../src/index.js";
import { freePort, startNatsServer, type NatsServer } from "../src/testing.js";
import { uniqueQueue } from "./support/server.js";

// These tests stop the server, so they start their own (NATS_URL is not used).
let server: NatsServer;

beforeAll(async () => {
  server = await startNatsServer();
});
afterAll(async () => {
  await server?.close();
});

const never = new AbortController().signal;

/** What `call` rejected with and how long it took; fails when it resolves. */
async function rejection(call: () => Promise<unknown>): Promise<{ error: unknown; ms: number }> {
  const started = Date.now();
  try {
    await call();
  } catch (error) {
    return { error, ms: Date.now() - started };
  }
  throw new Error("the call resolved");
}

function expectRetryable(error: unknown, pattern: RegExp): void {
  expect(TransportError.isInstance(error), `${String(error)} is a TransportError`).toBe(true);
  expect(error).toMatchObject({ retryable: true, message: expect.stringMatching(pattern) });
  expect((error as Error).message).toMatch(/^\[tranche\/nats\] /);
}

describe("fail fast", () => {
  it("with no server at the address, every call rejects at once with a retryable TransportError naming the cause and the address", async () => {
    const port = await freePort();
    const where = new RegExp(`ECONNREFUSED 127\\.0\\.0\\.1:${port}`);
    const t = new NatsTransport<number>({ servers: `nats://127.0.0.1:${port}` });
    const store = new NatsKvResultStore({ servers: `nats://127.0.0.1:${port}` });
    for (const call of [() => t.send(1), () => t.sendMany([1, 2]), () => t.receive(1, never), () => t.ready(), () => store.get("x"), () => store.set("x", { ok: true, value: 1 })]) {
      const { error, ms } = await rejection(call);
      expectRetryable(error, where);
      expect(ms).toBeLessThan(3_000);
    }
    const closing = Date.now();
    await t.close();
    await store.close();
    expect(Date.now() - closing).toBeLessThan(1_000);
  });

  it("while the server is down, calls reject within their timeout, close resolves, and all work again once it is back", { timeout: 60_000 }, async () => {
    const q = uniqueQueue("F");
    const url = server.url;
    const t = new NatsTransport<number>({ servers: url, ...q, wait: 1_000, timeout: 2_000 });
    const store = new NatsKvResultStore({ servers: url, bucket: `ff_${q.stream}`, timeout: 2_000 });
    await t.send(1, { id: "one" });
    const [delivery] = await t.receive(1, never);
    await store.set("ready", { ok: true, value: 1 });
    await server.stop();
    const where = new RegExp(`127\\.0\\.0\\.1:${server.port}`);
    const calls: (() => Promise<unknown>)[] = [
      () => t.send(2),
      () => t.receive(1, never),
      () => t.ack([delivery!]),
      () => t.retry(delivery!, Date.now()),
      () => t.extend([delivery!], Date.now() + 1_000),
      () => store.get("ready"),
      () => store.set("x", { ok: true, value: 1 }),
    ];
    for (const call of calls) {
      const { error, ms } = await rejection(call);
      expectRetryable(error, where);
      expect(ms).toBeLessThan(3_000);
    }
    await server.start();
    const other = new NatsTransport<number>({ servers: url, ...q, wait: 1_000 });
    try {
      await expect.poll(() => other.send(3).then(() => true, () => false), { timeout: 20_000, interval: 250 }).toBe(true);
    } finally {
      await other.close();
    }
    await server.stop();
    const closing = Date.now();
    await t.close();
    await store.close();
    expect(Date.now() - closing).toBeLessThan(3_000);
    await server.start();
  });

  it("a process whose server went away exits once its transport and result store are closed", { timeout: 60_000 }, async () => {
    const script = fileURLToPath(new URL("./fixtures/goes-away.mjs", import.meta.url));
    const child = spawn(process.execPath, [script], { env: { ...process.env, NATS_URL: server.url }, stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    child.stdout.on("data", (chunk: Buffer) => {
      out += chunk.toString();
      if (out.includes("connected\n") && !out.includes("stopping")) {
        out += "stopping\n";
        void server.stop();
      }
    });
    child.stderr.on("data", (chunk: Buffer) => (out += chunk.toString()));
    const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
    const timer = setTimeout(() => child.kill("SIGKILL"), 30_000);
    const code = await exited;
    clearTimeout(timer);
    await server.start();
    expect(out).toMatch(/closed in \d+ ms/);
    expect(code, out).toBe(0);
  });
});

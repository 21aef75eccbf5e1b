// SPEC §10 "retry-safe operations" and "fail fast" for SqsTransport: a call repeated after an
// error reaches SQS again (or is a proven no-op), and an unreachable SQS is reported at once.
// Faults come from a TCP proxy in front of an emulator this file owns, or from a client whose
// chosen actions fail before reaching SQS or after it applied them.
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { ReceiveMessageCommand } from "@aws-sdk/client-sqs";
import { TcpProxy } from "@tranche/conformance/net";
import { ClosedError, TransportError } from "@tranche/core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SQS_ATTRIBUTES, type SqsTransport } from "../src/index.js";
import { FaultyClient } from "./support/faulty-client.js";
import { closedPort, quick, receiveAll, sleep, useSqs } from "./support/sqs.js";

const sqs = useSqs({ own: true });
let proxy: TcpProxy;
beforeAll(async () => {
  proxy = await TcpProxy.start({ host: "127.0.0.1", port: Number(new URL(sqs.endpoint).port) });
});
afterAll(async () => {
  await proxy?.close();
});

/** A transport whose calls go through the proxy. */
function viaProxy<T>(queueUrl: string, options: Record<string, unknown> = {}): SqsTransport<T> {
  return sqs.transport<T>({ queueUrl, ...quick, ...options, endpoint: `http://${proxy.address}` });
}

/** A transport on a client whose chosen actions fail. */
function withFaults<T>(queueUrl: string, options: Record<string, unknown> = {}): { t: SqsTransport<T>; faults: FaultyClient } {
  const faults = new FaultyClient(sqs.client);
  return { t: sqs.transport<T>({ queueUrl, ...quick, ...options, client: faults.client }), faults };
}

/** Runs `call` while the proxy is cut; expects it to reject (how it is classified: see "fail fast"). */
async function failsWhileCut(call: () => Promise<unknown>): Promise<void> {
  proxy.cut();
  try {
    await expect(call()).rejects.toThrow(/^\[tranche\/sqs\] .*(ECONNREFUSED|ECONNRESET|socket hang up)/);
  } finally {
    proxy.heal();
  }
}

async function deadLetters(queueUrl: string) {
  const out = await sqs.client.send(new ReceiveMessageCommand({ QueueUrl: queueUrl, MaxNumberOfMessages: 10, WaitTimeSeconds: 1, MessageAttributeNames: ["All"] }));
  return out.Messages ?? [];
}

describe("a call repeated after it failed reaches SQS (issue 13, item 9)", () => {
  it("ack: the repeat after a cut connection deletes the message", async () => {
    const queueUrl = await sqs.queue();
    const t = viaProxy<string>(queueUrl);
    await t.sendMany(["a", "b", "c"]);
    const got = await receiveAll(t, 3);
    await failsWhileCut(() => t.ack(got));
    await t.ack(got);
    await sleep(1_500); // past the visibility timeout: an undeleted message would be back
    expect(await sqs.count(queueUrl)).toEqual({ visible: 0, inFlight: 0, delayed: 0 });
  });

  it("ack: after a lost reply the repeat is a no-op that resolves", async () => {
    const queueUrl = await sqs.queue();
    const { t, faults } = withFaults<string>(queueUrl);
    await t.send("x");
    const got = await receiveAll(t, 1);
    faults.fail("DeleteMessageBatch", "after");
    await expect(t.ack(got)).rejects.toThrow(/ECONNRESET/);
    await t.ack(got);
    await sleep(1_500);
    expect(await sqs.count(queueUrl)).toEqual({ visible: 0, inFlight: 0, delayed: 0 });
  });

  it("retry: the repeat after a cut connection schedules it, and it does not run before notBefore", async () => {
    const queueUrl = await sqs.queue();
    const t = viaProxy<string>(queueUrl);
    await t.send("x", { id: "later" });
    const [d] = await receiveAll(t, 1);
    const notBefore = Date.now() + 4_000;
    await failsWhileCut(() => t.retry(d!, notBefore));
    await t.retry(d!, notBefore);
    // The lease was 1 s: a retry that never reached SQS would let it come back at once.
    const [again] = await receiveAll(t, 1, 10_000);
    expect(Date.now()).toBeGreaterThanOrEqual(notBefore);
    expect(again).toMatchObject({ id: "later", attempt: 2, retries: 1, notBefore });
  });

  it("retry: a copy confirmed before the delete failed is not sent again by the repeat", async () => {
    const queueUrl = await sqs.queue();
    const { t, faults } = withFaults<string>(queueUrl);
    await t.send("x", { id: "once" });
    const [d] = await receiveAll(t, 1);
    faults.fail("DeleteMessageBatch", "before");
    const notBefore = Date.now() + 1_500;
    await expect(t.retry(d!, notBefore)).rejects.toThrow(/ECONNRESET/);
    faults.actions.length = 0;
    await t.retry(d!, notBefore);
    expect(faults.actions).toEqual(["DeleteMessageBatch"]);
    // A second copy would arrive with the first; each stays with the receiver for 10 s.
    const got = await receiveAll(sqs.transport<string>({ queueUrl, ...quick, visibilityTimeout: 10_000 }), 2, 5_000);
    expect(got.map((g) => [g.id, g.attempt, g.retries])).toEqual([["once", 2, 1]]);
  });

  it("deadLetter: the repeat after a failed delete removes the message and writes no second dead letter", async () => {
    const queueUrl = await sqs.queue();
    const deadLetterQueueUrl = await sqs.queue();
    const { t, faults } = withFaults<string>(queueUrl, { deadLetterQueueUrl });
    await t.send("x", { id: "poison" });
    const [d] = await receiveAll(t, 1);
    faults.fail("DeleteMessageBatch", "before");
    await expect(t.deadLetter(d!, new Error("gave up"))).rejects.toThrow(/ECONNRESET/);
    await t.deadLetter(d!, new Error("gave up"));
    await sleep(1_500);
    expect(await sqs.count(queueUrl)).toEqual({ visible: 0, inFlight: 0, delayed: 0 });
    const letters = await deadLetters(deadLetterQueueUrl);
    expect(letters.map((m) => m.MessageAttributes?.[SQS_ATTRIBUTES.id]?.StringValue)).toEqual(["poison"]);
  });

  it("release: the repeat after a cut connection hands the message back at once", async () => {
    const queueUrl = await sqs.queue();
    const t = viaProxy<string>(queueUrl, { visibilityTimeout: 30_000 });
    await t.send("x", { id: "back" });
    const [d] = await receiveAll(t, 1);
    await failsWhileCut(() => t.release([d!]));
    await t.release([d!]);
    // Long before its 30 s lease would end.
    const [again] = await receiveAll(sqs.transport<string>({ queueUrl, ...quick }), 1, 5_000);
    expect(again).toMatchObject({ id: "back" });
  });
});

describe("fail fast: an unreachable SQS is reported at once, and close() does not wait for it", () => {
  it("a closed port: every call rejects within a few seconds with a retryable TransportError naming the cause and address", async () => {
    const queueUrl = await sqs.queue();
    const address = `127.0.0.1:${await closedPort()}`;
    const t = sqs.transport<string>({ queueUrl, ...quick, endpoint: `http://${address}` });
    for (const call of [() => t.send("x"), () => t.receive(10, new AbortController().signal)]) {
      const started = Date.now();
      const error = await call().catch((e: unknown) => e);
      expect(Date.now() - started).toBeLessThan(5_000);
      expect(TransportError.isInstance(error), String(error)).toBe(true);
      expect(error).toMatchObject({ retryable: true });
      expect((error as Error).message).toMatch(/^\[tranche\/sqs\] (SendMessageBatch|ReceiveMessage) failed: .*ECONNREFUSED/);
      expect((error as Error).message).toContain(address);
    }
    await t.close();
  });

  it("a silent network: calls reject after requestTimeout; a long poll after its wait on top", async () => {
    const queueUrl = await sqs.queue();
    const silent = await TcpProxy.start({ host: "127.0.0.1", port: Number(new URL(sqs.endpoint).port) });
    silent.blackhole();
    const t = sqs.transport<string>({ queueUrl, ...quick, requestTimeout: 1_000, endpoint: `http://${silent.address}` });
    try {
      for (const [call, bound] of [
        [() => t.send("x"), 4_000],
        [() => t.receive(10, new AbortController().signal), 5_000],
      ] as const) {
        const started = Date.now();
        const error = await call().catch((e: unknown) => e);
        expect(Date.now() - started).toBeLessThan(bound);
        expect(TransportError.isInstance(error), String(error)).toBe(true);
        expect(error).toMatchObject({ retryable: true });
        expect((error as Error).message).toContain(silent.address);
      }
    } finally {
      await t.close();
      await silent.close();
    }
  });

  it("close() resolves while calls hang on a silent network; they reject with ClosedError and the process can exit", async () => {
    const silent = await TcpProxy.start({ host: "127.0.0.1", port: Number(new URL(sqs.endpoint).port) });
    silent.blackhole();
    const queueUrl = await sqs.queue();
    const script = `
      const { SqsTransport } = await import(${JSON.stringify(fileURLToPath(new URL("../dist/index.js", import.meta.url)))});
      const t = new SqsTransport({ queueUrl: ${JSON.stringify(queueUrl)}, deadLetterQueueUrl: ${JSON.stringify(queueUrl)}, endpoint: "http://${silent.address}",
        region: "us-east-1", credentials: { accessKeyId: "test", secretAccessKey: "test" }, requestTimeout: 600000 });
      const pending = [t.send("x"), t.receive(10, new AbortController().signal)].map((p) => p.then((v) => "resolved " + JSON.stringify(v), (e) => e.name));
      setTimeout(async () => {
        const started = Date.now();
        await t.close();
        console.log("closed in " + (Date.now() - started) + " ms; " + (await Promise.all(pending)).join(", "));
      }, 500);
    `;
    const child = spawn(process.execPath, ["--input-type=module", "-e", script], { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, NODE_NO_WARNINGS: "1" } });
    let out = "";
    child.stdout.on("data", (chunk: Buffer) => (out += chunk.toString()));
    child.stderr.on("data", (chunk: Buffer) => (out += chunk.toString()));
    const started = Date.now();
    const code = await new Promise<number | null>((resolve) => child.on("exit", resolve));
    await silent.close();
    expect(out).toMatch(/closed in \d+ ms; ClosedError, resolved \[\]/);
    expect(code).toBe(0);
    expect(Date.now() - started).toBeLessThan(15_000);
  });

  it("close() aborts a call under way with ClosedError", async () => {
    const silent = await TcpProxy.start({ host: "127.0.0.1", port: Number(new URL(sqs.endpoint).port) });
    silent.blackhole();
    const t = sqs.transport<string>({ queueUrl: await sqs.queue(), endpoint: `http://${silent.address}` });
    const sending = t.send("x").catch((e: unknown) => e);
    await sleep(200);
    await t.close();
    expect(ClosedError.isInstance(await sending)).toBe(true);
    await silent.close();
  });
});

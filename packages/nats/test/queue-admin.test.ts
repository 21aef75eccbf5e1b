import type { Delivery } from "@tranche/core";
import { jetstreamManager, type JetStreamManager } from "@nats-io/jetstream";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { NatsTransport, type NatsTransportOptions } from "../src/index.js";
import { countMessages } from "../src/testing.js";
import { testServer, uniqueQueue } from "./support/server.js";

let server: { url: string; close(): Promise<void> };
let nc: NatsConnection;
let jsm: JetStreamManager;
const open: NatsTransport<unknown>[] = [];

beforeAll(async () => {
  server = await testServer();
  nc = await connect({ servers: server.url });
  jsm = await jetstreamManager(nc);
});
afterEach(async () => {
  await Promise.all(open.splice(0).map((t) => t.close()));
});
afterAll(async () => {
  await nc?.close();
  await server?.close();
});

function transport(options: NatsTransportOptions<unknown> = {}): NatsTransport<unknown> {
  const t = new NatsTransport<unknown>({ servers: server.url, ackWait: 30_000, wait: 500, ...uniqueQueue("A"), ...options });
  open.push(t);
  return t;
}

const never = (): AbortSignal => new AbortController().signal;

async function receiveAll(t: NatsTransport<unknown>, count: number, within = 10_000): Promise<Delivery<unknown>[]> {
  const got: Delivery<unknown>[] = [];
  const deadline = Date.now() + within;
  while (got.length < count && Date.now() < deadline) got.push(...(await t.receive(count - got.length, never())));
  return got;
}

describe("NatsTransport depth()", () => {
  it("counts the subject as ready before any consumer exists, and creates none", async () => {
    const q = uniqueQueue("A");
    const producer = transport(q);
    await producer.sendMany(["a", "b", "c"]);
    expect(await producer.depth()).toEqual({ ready: 3, delayed: 0, inFlight: 0, deadLettered: 0 });
    expect(await producer.deadLetters()).toEqual([]);
    const consumers = await (await jsm.consumers.list(q.stream)).next();
    expect(consumers).toEqual([]);
  });

  it("counts a retry waiting out its delay as in flight: JetStream holds it unacknowledged", async () => {
    const t = transport();
    await t.sendMany(["a", "b"]);
    const [a] = await receiveAll(t, 1);
    await t.retry(a!, Date.now() + 60_000);
    expect(await t.depth()).toEqual({ ready: 1, delayed: 0, inFlight: 1, deadLettered: 0 });
  });
});

describe("NatsTransport dead letters", () => {
  it("a redrive cut between its publish and its delete loses nothing, and its repeat publishes nothing twice", async () => {
    const q = uniqueQueue("A");
    // A stream that refuses deletes: every redrive stops after its publish, as if it crashed there.
    const t = transport({ ...q, streamConfig: { deny_delete: true } });
    await t.send("x", { id: "x" });
    const [d] = await receiveAll(t, 1);
    await t.deadLetter(d!, new Error("dead"));
    await expect(t.redrive(["x"])).rejects.toThrow(/redrive failed/);
    await expect(t.redrive(["x"])).rejects.toThrow(/redrive failed/);
    expect((await t.deadLetters()).map((l) => l.id)).toEqual(["x"]);
    expect(await countMessages(nc, { stream: q.stream, subject: q.subject })).toBe(1);
    const [again] = await receiveAll(t, 1);
    expect(again).toMatchObject({ id: "x", payload: "x", attempt: 1, retries: 0 });
  });

  it("keeps the producer's headers through the dead letter and the redrive", async () => {
    const t = transport();
    await t.send("x", { id: "x", headers: { traceparent: "00-abc-def-01" } });
    const [d] = await receiveAll(t, 1);
    await t.deadLetter(d!, new Error("dead"));
    expect(await t.redrive("all")).toBe(1);
    const [again] = await receiveAll(t, 1);
    expect(again).toMatchObject({ id: "x", attempt: 1, headers: { traceparent: "00-abc-def-01" } });
  });
});

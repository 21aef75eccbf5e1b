import { jetstreamManager } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import { TimeoutError, TransportError } from "@tranche/core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { NatsKvResultStore } from "../src/index.js";
import { keyOf } from "../src/nats-kv-result-store.js";
import { testServer } from "./support/server.js";

let server: { url: string; close(): Promise<void> };
const stores: NatsKvResultStore[] = [];
let n = 0;

beforeAll(async () => {
  server = await testServer();
});
afterAll(async () => {
  await Promise.all(stores.map((s) => s.close()));
  await server?.close();
});

function store(bucket = `results_${process.pid}_${n++}`): NatsKvResultStore {
  const s = new NatsKvResultStore({ servers: server.url, bucket });
  stores.push(s);
  return s;
}

/** The max age, in ms, of a bucket's stream (0: none). */
async function bucketMaxAge(bucket: string): Promise<number> {
  const nc = await connect({ servers: server.url });
  try {
    const info = await (await jetstreamManager(nc)).streams.info(`KV_${bucket}`);
    return info.config.max_age / 1_000_000;
  } finally {
    await nc.close();
  }
}

describe("NatsKvResultStore", () => {
  it("creates its bucket keeping outcomes a day by default, for `ttl` ms when given, and for good with `ttl: Infinity`", async () => {
    const made: Record<string, number> = {};
    for (const [name, ttl] of [["day", undefined], ["hour", 3_600_000], ["ever", Infinity]] as const) {
      const bucket = `results_${process.pid}_ttl_${name}`;
      const s = new NatsKvResultStore({ servers: server.url, bucket, ...(ttl === undefined ? {} : { ttl }) });
      stores.push(s);
      await s.set("a", { ok: true, value: 1 }, Infinity);
      made[name] = await bucketMaxAge(bucket);
    }
    expect(made).toEqual({ day: 86_400_000, hour: 3_600_000, ever: 0 });
  });

  it("stores an outcome under its id and reads it back", async () => {
    const s = store();
    expect(await s.get("a")).toBeUndefined();
    await s.set("a", { ok: true, value: { rows: 3 } });
    await s.set("b", { ok: false, error: { name: "RangeError", message: "bad row" } });
    expect(await s.get("a")).toEqual({ ok: true, value: { rows: 3 } });
    expect(await s.get("b")).toEqual({ ok: false, error: { name: "RangeError", message: "bad row" } });
  });

  it("wait resolves when the outcome is stored later, from another connection", async () => {
    const bucket = `results_${process.pid}_shared`;
    const producer = store(bucket);
    const worker = store(bucket);
    const waiting = producer.wait("job-1", { timeout: 20_000 });
    setTimeout(() => void worker.set("job-1", { ok: true, value: 42 }), 300);
    expect(await waiting).toEqual({ ok: true, value: 42 });
  });

  it("wait resolves at once with an outcome stored before it started", async () => {
    const s = store();
    await s.set("done", { ok: true, value: "early" });
    expect(await s.wait("done", { timeout: 10_000 })).toEqual({ ok: true, value: "early" });
  });

  it("wait rejects with TimeoutError after its timeout, and when its signal aborts", async () => {
    const s = store();
    const started = Date.now();
    const timedOut = await s.wait("never", { timeout: 300 }).catch((e: unknown) => e);
    expect(TimeoutError.isInstance(timedOut)).toBe(true);
    expect(Date.now() - started).toBeGreaterThanOrEqual(290);
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 100);
    const aborted = await s.wait("never", { signal: controller.signal }).catch((e: unknown) => e);
    expect(TimeoutError.isInstance(aborted)).toBe(true);
  });

  it("an outcome past its per-call ttl reads as absent", async () => {
    const s = store();
    await s.set("short", { ok: true, value: 1 }, 200);
    expect(await s.get("short")).toEqual({ ok: true, value: 1 });
    await new Promise((r) => setTimeout(r, 300));
    expect(await s.get("short")).toBeUndefined();
  });

  it("keeps ids that are not valid KV keys apart", async () => {
    const s = store();
    const ids = ["with space", "a..b", "ünïcode", "_b64.x", ".lead"];
    for (const [i, id] of ids.entries()) await s.set(id, { ok: true, value: i });
    for (const [i, id] of ids.entries()) expect(await s.get(id)).toEqual({ ok: true, value: i });
    expect(keyOf("plain-id_1")).toBe("plain-id_1");
    expect(new Set(ids.map(keyOf)).size).toBe(ids.length);
  });

  it("set rejects an outcome it cannot serialise with a non-retryable TransportError, and stores nothing", async () => {
    const s = store();
    const error = await s.set("big", { ok: true, value: 1n }).catch((e: unknown) => e);
    expect(TransportError.isInstance(error)).toBe(true);
    expect(error).toMatchObject({ retryable: false, message: expect.stringMatching(/^\[tranche\/nats\] set failed: the outcome of "big" cannot be serialised: .*BigInt/) });
    expect(await s.get("big")).toBeUndefined();
  });

  it("validates options eagerly", () => {
    expect(() => new NatsKvResultStore({ bucket: "a b" })).toThrow(/`bucket`.*got "a b"/);
    expect(() => new NatsKvResultStore({ replicas: 2 })).toThrow("Expected `replicas` to be 1, 3 or 5, got 2");
  });
});

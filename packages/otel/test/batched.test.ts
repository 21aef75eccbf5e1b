import { SpanKind } from "@opentelemetry/api";
import { SimulatedClock } from "@tranche/core/testing";
import { afterEach, describe, expect, it } from "vitest";
import { Otel } from "./support/otel.js";

let otel: Otel;
afterEach(() => otel?.shutdown());

describe("telemetry.batched()", () => {
  it("counts items received, acked, failed and retried, and times each call to its outcome", async () => {
    otel = new Otel();
    const clock = new SimulatedClock(0);
    const telemetry = otel.telemetry({ clock });
    const load = telemetry.batched<string, string>(
      (requests) =>
        requests.map((r) => {
          if (r.payload === "bad") return new RangeError("no");
          if (r.payload === "flaky" && r.attempt === 1) {
            r.retry({ delay: 50 });
            return "";
          }
          return r.payload.toUpperCase();
        }),
      { clock, flushEvery: 2, flushInterval: 100, retry: { attempts: 3 } },
    );
    const calls = ["a", "bad", "flaky"].map((p) => load(p).catch((error: Error) => error.name));
    await clock.advance(0);
    await clock.advance(100);
    await clock.advance(50);
    await clock.advance(100);
    expect(await Promise.all(calls)).toEqual(["A", "RangeError", "FLAKY"]);
    expect(await otel.total("tranche.items.received")).toBe(3);
    expect(await otel.total("tranche.items.acked")).toBe(2);
    expect(await otel.total("tranche.items.failed")).toBe(1);
    expect(await otel.total("tranche.items.retried")).toBe(1);
    const settle = await otel.points("tranche.item.settle.duration");
    expect(settle.map((p) => [p.attributes["tranche.outcome"], p.value]).sort()).toEqual([
      // "a" at 0 s; "flaky" ran at 0.1 s, was retried for 0.05 s, ran again at 0.25 s.
      ["ack", { count: 2, sum: 0.25 }],
      ["fail", { count: 1, sum: 0 }],
    ]);
    expect(settle[0]?.attributes["messaging.system"]).toBe("tranche");
    await load.close();
  });

  it("records the batch metrics and a process span per batch, and feeds the gauges from its stats", async () => {
    otel = new Otel();
    const clock = new SimulatedClock(0);
    const telemetry = otel.telemetry({ clock, system: "orders-app" });
    let release!: () => void;
    const running = new Promise<void>((resolve) => (release = resolve));
    const load = telemetry.batched<number, void>(() => running, { clock, flushEvery: 2, flushInterval: 100, concurrency: 1 });
    const calls = [1, 2, 3].map((n) => load(n));
    await clock.advance(0);
    const gauge = async (name: string) => (await otel.points(name))[0]?.value;
    expect(await gauge("tranche.items.in_flight")).toBe(2);
    expect(await gauge("tranche.batches.in_flight")).toBe(1);
    expect(await gauge("tranche.items.held")).toBe(1);
    expect(load.stats.held).toBe(1);
    release();
    await clock.advance(100);
    await Promise.all(calls);
    const sizes = await otel.points("tranche.batch.size");
    expect(sizes.map((p) => [p.attributes["tranche.flush.reason"], p.value])).toEqual([
      ["count", { count: 1, sum: 2 }],
      ["interval", { count: 1, sum: 1 }],
    ]);
    expect(await otel.total("tranche.batches", { "tranche.flush.reason": "interval" })).toBe(1);
    // Items 1 and 2 waited 0 s; item 3 waited from 0 until its interval batch at 0.1 s.
    expect((await otel.points("tranche.item.wait.duration")).map((p) => p.value)).toEqual([{ count: 3, sum: 0.1 }]);
    const spans = otel.spans("process");
    expect(spans.map((s) => [s.kind, s.attributes["messaging.batch.message_count"], s.attributes["messaging.system"]])).toEqual([
      [SpanKind.CONSUMER, 2, "orders-app"],
      [SpanKind.CONSUMER, 1, "orders-app"],
    ]);
    expect(await otel.total("messaging.process.duration")).toBe(2);
    await load.close();
    expect(await gauge("tranche.items.in_flight")).toBe(0);
  });

  it("with itemDurations: false records no per-item histogram, and the rest still", async () => {
    otel = new Otel();
    const clock = new SimulatedClock(0);
    const load = otel.telemetry({ clock, itemDurations: false }).batched<number, number>((requests) => requests.map((r) => r.payload), { clock, flushEvery: 2 });
    await Promise.all([load(1), load(2)]);
    expect(await otel.points("tranche.item.wait.duration")).toEqual([]);
    expect(await otel.points("tranche.item.settle.duration")).toEqual([]);
    expect(await otel.total("tranche.items.acked")).toBe(2);
    expect(await otel.total("tranche.batch.size")).toBe(1);
    expect(otel.spans("process")).toHaveLength(1);
    await load.close();
  });

  it("keeps flush(), close() and stats", async () => {
    otel = new Otel();
    const load = otel.telemetry().batched<number, number>((requests) => requests.map((r) => r.payload + 1), { flushEvery: 10, flushInterval: 60_000 });
    const pending = load(1);
    expect(load.stats.held).toBe(1);
    await load.flush();
    expect(await pending).toBe(2);
    expect(await otel.total("tranche.batches", { "tranche.flush.reason": "flush" })).toBe(1);
    await load.close();
    await expect(load(2)).rejects.toThrow(/closed/i);
  });
});

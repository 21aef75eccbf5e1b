import { TimeoutError, TransportError } from "@tranche/core";
import type { Outcome } from "@tranche/core";
import { SimulatedClock } from "@tranche/core/testing";
import { describe, expect, it } from "vitest";
import { MemoryResultStore } from "../src/index.js";

const ok = (value: unknown): Outcome => ({ ok: true, value });

function setup() {
  const clock = new SimulatedClock(1_000);
  return { clock, store: new MemoryResultStore({ clock }) };
}

describe("MemoryResultStore", () => {
  it("gets what was set, and undefined for unknown ids", async () => {
    const { store } = setup();
    await store.set("a", ok(1));
    await store.set("b", { ok: false, error: { name: "Error", message: "boom" } });
    expect(await store.get("a")).toEqual(ok(1));
    expect(await store.get("b")).toEqual({ ok: false, error: { name: "Error", message: "boom" } });
    expect(await store.get("c")).toBeUndefined();
  });

  it("drops an entry after its ttl, and frees it without being read", async () => {
    const { clock, store } = setup();
    await store.set("a", ok(1), 500);
    await clock.advance(499);
    expect(await store.get("a")).toEqual(ok(1));
    await clock.advance(1);
    expect(store.size).toBe(0);
    expect(await store.get("a")).toBeUndefined();
    expect(clock.pendingTimers).toBe(0);
  });

  it("a later set replaces the value and its ttl", async () => {
    const { clock, store } = setup();
    await store.set("a", ok(1), 100);
    await store.set("a", ok(2), Infinity);
    await clock.advance(1000);
    expect(await store.get("a")).toEqual(ok(2));
    expect(clock.pendingTimers).toBe(0);
  });

  it("wait resolves when the outcome is set, without advancing time", async () => {
    const { clock, store } = setup();
    const waiting = store.wait("a", { timeout: 10_000 });
    await clock.advance(3000);
    await store.set("a", ok("done"), Infinity);
    expect(await waiting).toEqual(ok("done"));
    expect(clock.pendingTimers).toBe(0);
  });

  it("keeps an outcome set without a ttl for a day by default, as RedisResultStore", async () => {
    const { clock, store } = setup();
    await store.set("a", ok(1));
    await clock.advance(86_400_000 - 1);
    expect(await store.get("a")).toEqual(ok(1));
    await clock.advance(1);
    expect(await store.get("a")).toBeUndefined();
    expect(store.size).toBe(0);
  });

  it("keeps at most maxEntries outcomes: the oldest stored goes first", async () => {
    const store = new MemoryResultStore({ clock: new SimulatedClock(0), maxEntries: 2 });
    await store.set("a", ok(1));
    await store.set("b", ok(2));
    await store.set("a", ok(3));
    await store.set("c", ok(4));
    expect([await store.get("a"), await store.get("b"), await store.get("c")]).toEqual([ok(3), undefined, ok(4)]);
    expect(store.size).toBe(2);
  });

  it("refuses what a networked store could not keep, with a non-retryable TransportError, and keeps copies", async () => {
    const { store } = setup();
    const circular: Record<string, unknown> = {};
    circular.self = circular;
    for (const value of [10n, circular]) {
      const error = await store.set("x", ok(value)).catch((e: unknown) => e);
      expect(TransportError.isInstance(error)).toBe(true);
      expect(error).toMatchObject({ retryable: false, message: expect.stringContaining('[tranche/memory] cannot encode the outcome of "x"') });
    }
    expect(await store.get("x")).toBeUndefined();
    const value = { n: 1 };
    await store.set("y", ok(value));
    value.n = 2;
    expect(await store.get("y")).toEqual(ok({ n: 1 }));
  });

  it("wait resolves at once for a stored outcome", async () => {
    const { store } = setup();
    await store.set("a", ok(1));
    expect(await store.wait("a")).toEqual(ok(1));
  });

  it("wait rejects with TimeoutError after timeout, not before", async () => {
    const { clock, store } = setup();
    let settled: unknown;
    store.wait("a", { timeout: 1000 }).then(
      () => (settled = "resolved"),
      (error: unknown) => (settled = error),
    );
    await clock.advance(999);
    expect(settled).toBeUndefined();
    await clock.advance(1);
    expect(TimeoutError.isInstance(settled)).toBe(true);
    expect((settled as Error).message).toMatch(/^\[tranche\/memory\] no result for "a" after 1000 ms/);
  });

  it("wait rejects with the abort reason", async () => {
    const { clock, store } = setup();
    const controller = new AbortController();
    const waiting = store.wait("a", { timeout: 10_000, signal: controller.signal });
    const reason = new Error("stop");
    controller.abort(reason);
    await expect(waiting).rejects.toBe(reason);
    expect(clock.pendingTimers).toBe(0);
    await expect(store.wait("a", { signal: controller.signal })).rejects.toBe(reason);
  });

  it("several waiters on one id all get the outcome", async () => {
    const { store } = setup();
    const waits = [store.wait("a"), store.wait("a"), store.wait("a", { timeout: 50 })];
    await store.set("a", ok(7));
    expect(await Promise.all(waits)).toEqual([ok(7), ok(7), ok(7)]);
  });

  it("validates eagerly, quoting the value", async () => {
    expect(() => new MemoryResultStore({ clock: 3 as never })).toThrow(/`clock`.*got 3/);
    const { store } = setup();
    await expect(store.set("a", ok(1), -1)).rejects.toThrow(/`ttl`.*got -1/);
    await expect(store.set("", ok(1))).rejects.toThrow(/`id`.*got ""/);
    await expect(store.set("a", 5 as never)).rejects.toThrow(/`outcome`.*got 5/);
    await expect(store.wait("a", { timeout: -2 })).rejects.toThrow(/`timeout`.*got -2/);
  });
});

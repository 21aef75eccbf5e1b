// The celery-batches scenario tranche is built around: with `flushEvery: 100` and
// `flushInterval: 10_000`, a request retried with a 10 s countdown runs again between
// 10 and 20 s later (SPEC I6), while the rest of the traffic flows untouched.
import { describe, expect, it } from "vitest";
import { batched, type BatchRequest } from "../src/index.js";
import { SimulatedClock } from "../src/testing.js";

interface Run {
  at: number;
  attempt: number;
  batch: number;
}

/** `traffic(t)` is how many ordinary items arrive at simulated time t (ms, multiples of 100). */
async function scenario(traffic: (t: number) => number, attempts = 2) {
  const clock = new SimulatedClock();
  const runs = new Map<string, Run[]>();
  const batchSizes: number[] = [];
  let retriedAt: number | undefined;

  const fn = batched<string, string>(
    async (requests: BatchRequest<string, string>[]) => {
      batchSizes.push(requests.length);
      for (const r of requests) {
        const list = runs.get(r.payload) ?? [];
        list.push({ at: clock.now(), attempt: r.attempt, batch: batchSizes.length });
        runs.set(r.payload, list);
      }
      await Promise.resolve(); // an async handler, as a real one would be
      return requests.map((r) => {
        if (r.payload === "flaky" && r.attempt === 1) {
          retriedAt = clock.now();
          r.retry({ delay: 10_000 });
          return "ignored: already retried";
        }
        return `done:${r.payload}:${r.attempt}`;
      });
    },
    { clock, flushEvery: 100, flushInterval: 10_000, retry: { attempts } },
  );

  const results = new Map<string, { value?: string; error?: unknown; sentAt: number }>();
  const send = (payload: string) => {
    const entry: { value?: string; error?: unknown; sentAt: number } = { sentAt: clock.now() };
    results.set(payload, entry);
    fn(payload).then(
      (value) => (entry.value = value),
      (error: unknown) => (entry.error = error),
    );
  };

  let n = 0;
  // Traffic before the flaky item, so it lands in a busy batch.
  for (let t = 0; t < 3000; t += 100) {
    for (let i = traffic(t); i > 0; i--) send(`item-${n++}`);
    await clock.advance(100);
  }
  send("flaky");
  // Keep traffic coming for a minute of simulated time.
  for (let t = 3000; t < 60_000; t += 100) {
    for (let i = traffic(t); i > 0; i--) send(`item-${n++}`);
    await clock.advance(100);
  }
  await Promise.all([fn.close(), clock.advance(30_000)]);
  return { clock, fn, runs, results, retriedAt, batchSizes, sent: n };
}

function expectOthersUnaffected(s: Awaited<ReturnType<typeof scenario>>): void {
  for (let i = 0; i < s.sent; i++) {
    const payload = `item-${i}`;
    const result = s.results.get(payload);
    const runs = s.runs.get(payload);
    expect(result?.error, payload).toBeUndefined();
    expect(result?.value, payload).toBe(`done:${payload}:1`);
    // Exactly one run, on the first attempt, within one flushInterval of arriving.
    expect(runs, payload).toHaveLength(1);
    expect(runs![0]!.attempt).toBe(1);
    expect(runs![0]!.at - result!.sentAt, payload).toBeLessThanOrEqual(10_000);
  }
  for (const size of s.batchSizes) expect(size).toBeLessThanOrEqual(100);
}

function expectRetryWindow(s: Awaited<ReturnType<typeof scenario>>): number {
  const flaky = s.runs.get("flaky");
  expect(flaky?.map((r) => r.attempt)).toEqual([1, 2]);
  expect(s.retriedAt).toBe(flaky![0]!.at);
  const waited = flaky![1]!.at - (s.retriedAt as number);
  expect(waited).toBeGreaterThanOrEqual(10_000);
  expect(waited).toBeLessThanOrEqual(20_000);
  expect(s.results.get("flaky")?.value).toBe("done:flaky:2");
  return waited;
}

describe("seed scenario: request.retry({ delay: 10_000 }) under flushEvery 100, flushInterval 10 s", () => {
  it("with a steady trickle of traffic the retry runs 10–20 s after it was asked for", async () => {
    const s = await scenario((t) => (t % 1000 === 0 ? 3 : 0));
    expectRetryWindow(s);
    expectOthersUnaffected(s);
    expect(s.fn.stats.items).toMatchObject({ retried: 1, failed: 0, acked: s.sent + 1 });
  });

  it("with no traffic after the retry it waits the full countdown plus one interval: 20 s", async () => {
    const s = await scenario((t) => (t < 3000 && t % 500 === 0 ? 1 : 0));
    expect(expectRetryWindow(s)).toBe(20_000);
    expectOthersUnaffected(s);
  });

  it("with heavy traffic count flushes take it along once due, never earlier than 10 s", async () => {
    const s = await scenario(() => 7); // 70 items/s: a count flush every ~1.4 s
    const waited = expectRetryWindow(s);
    expect(waited).toBeLessThan(12_000);
    expectOthersUnaffected(s);
    expect(s.fn.stats.batches.count).toBeGreaterThan(10);
  });

  it("with attempts 3 the same holds, and the retry is not repeated", async () => {
    const s = await scenario((t) => (t % 700 === 0 ? 5 : 0), 3);
    expectRetryWindow(s);
    expectOthersUnaffected(s);
    expect(s.clock.pendingTimers).toBe(0);
    expect(s.fn.stats).toMatchObject({ held: 0, inFlight: 0 });
  });
});

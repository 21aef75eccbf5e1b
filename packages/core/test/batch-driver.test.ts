// BatchDriver and DriverRequest as a driver other than batched() uses them (the Worker's way):
// the handler protocol's outcomes per request, seen through a driver's acked / fail / requeue,
// and the handles of an item's tries.
import { describe, expect, it } from "vitest";
import { type BatchHandler, type BatchRequest, type BatcherOptions, BatchResultError, ClosedError, RetriesExhaustedError, SettledError } from "../src/index.js";
import { BatchDriver, DriverRequest } from "../src/internal.js";

type Outcome = { id: string; how: "ack"; result: unknown } | { id: string; how: "fail"; error: unknown } | { id: string; how: "retry"; notBefore: number };

/** A driver's item that carries headers, as a Worker's delivery does. */
class Item extends DriverRequest<string, string> {
  readonly headers = { trace: "t-1" };
}

/** A driver that records each outcome, with time and polling moved by the test. */
class RecordingDriver extends BatchDriver<string, string, Item> {
  readonly outcomes: Outcome[] = [];
  /** Each `counted` call: the item it names and whether the batch completed. */
  readonly counts: { id: string | undefined; freed: boolean }[] = [];
  readonly batchIds: string[] = [];
  now = 1_000;

  constructor(handler: BatchHandler<string, string>, options?: BatcherOptions<string>) {
    super(handler, { flushInterval: 60_000, ...options, clock: { now: () => this.now, setTimer: () => undefined, clearTimer: () => {} } });
  }

  add(payload: string): Item {
    const item = new Item(this, payload, payload, 1);
    this.batcher._offer(item, this.now, undefined, false);
    return item;
  }

  /** Hands every batch that is due at `now` (or flushed) to the handler. */
  pump(flush = false): void {
    if (flush) this.batcher.flush(this.now);
    for (const batch of this.batcher.poll(this.now)) {
      this.batchIds.push(batch.id);
      this.run(batch, this.now);
    }
  }

  protected acked(item: Item, result: string | undefined): void {
    this.outcomes.push({ id: item.id, how: "ack", result });
  }

  protected counted(item: Item, freed: boolean): void {
    this.counts.push({ id: (item as Item | undefined)?.id, freed });
  }

  /** Takes the batches due at `now` (or flushed) without handing them to the handler. */
  take(flush = false): void {
    if (flush) this.batcher.flush(this.now);
    for (const batch of this.batcher.poll(this.now)) this.batchIds.push(batch.id);
  }

  /** Ends the handler's part of every in-flight batch, failing what it left unsettled. */
  giveUp(): void {
    this.abandonFlights(
      () => new ClosedError("gave up"),
      (item, reason) => this.fail(item, reason),
    );
  }

  fail(item: Item, error: unknown): void {
    this.batcher._fail(item);
    this.outcomes.push({ id: item.id, how: "fail", error });
  }

  protected requeue(item: Item, notBefore: number, now: number): void {
    this.batcher._retry(item, notBefore, now);
    this.outcomes.push({ id: item.id, how: "retry", notBefore });
  }
}

/** Lets the handler's returned promise settle. */
const settle = () => new Promise<void>((resolve) => setImmediate(resolve));

describe("BatchDriver's default outcomes", () => {
  it("a handler that returns nothing acks every request it left unsettled, and only those; its context names the batch", async () => {
    const failure = new Error("bad row");
    const contexts: unknown[] = [];
    const driver = new RecordingDriver((requests, context) => {
      contexts.push({ batchId: context.batchId, reason: context.reason, group: context.group });
      requests[1]?.fail(failure);
    });
    for (const id of ["a", "b", "c"]) driver.add(id);
    driver.pump(true);
    await settle();
    expect(contexts).toEqual([{ batchId: driver.batchIds[0], reason: "flush", group: undefined }]);
    expect(driver.outcomes).toEqual([
      { id: "b", how: "fail", error: failure },
      { id: "a", how: "ack", result: undefined },
      { id: "c", how: "ack", result: undefined },
    ]);
  });

  it("a returned null fails every request with BatchResultError", async () => {
    const driver = new RecordingDriver(() => null as never);
    driver.add("a");
    driver.pump(true);
    await settle();
    expect(driver.outcomes).toEqual([{ id: "a", how: "fail", error: expect.any(BatchResultError) }]);
  });

  it("counts the acks of a run of primitive results once, and an object result's ack on its own", async () => {
    const driver = new RecordingDriver((requests) => {
      requests[0]?.ack("early");
      return [{ ignored: true }, { b: true }, "c", null, "e"] as never;
    });
    for (const id of ["a", "b", "c", "d", "e"]) driver.add(id);
    driver.pump(true);
    await settle();
    expect(driver.outcomes.map((o) => (o.how === "ack" ? [o.id, o.result] : [o.id, o.how]))).toEqual([
      ["a", "early"],
      ["b", { b: true }],
      ["c", "c"],
      ["d", null],
      ["e", "e"],
    ]);
    expect(driver.counts).toEqual([
      { id: "a", freed: false },
      { id: "b", freed: false },
      { id: "e", freed: true },
    ]);
  });

  it("counts no acks for a batch whose handler settled every request itself", async () => {
    const driver = new RecordingDriver((requests) => {
      for (const request of requests) request.ack(`own:${request.id}`);
      return requests[0]?.payload === "a" ? undefined : (["late", { late: true }] as never);
    });
    for (const id of ["a", "b"]) driver.add(id);
    driver.pump(true);
    await settle();
    for (const id of ["c", "d"]) driver.add(id);
    driver.pump(true);
    await settle();
    expect(driver.outcomes.map((o) => o.how === "ack" && o.result)).toEqual(["own:a", "own:b", "own:c", "own:d"]);
    expect(driver.counts).toEqual([
      { id: "a", freed: false },
      { id: "b", freed: true },
      { id: "c", freed: false },
      { id: "d", freed: true },
    ]);
  });

  it("giving up ends only the batches whose handler is running: a batch not handed over yet stays with the driver", async () => {
    const driver = new RecordingDriver(() => new Promise<void>(() => {}), { flushEvery: 1, concurrency: 2 });
    driver.add("running");
    driver.pump(true);
    driver.add("taken");
    driver.take(true);
    expect(driver.batchIds).toHaveLength(2);
    driver.giveUp();
    expect(driver.outcomes).toEqual([{ id: "running", how: "fail", error: new ClosedError("gave up") }]);
    expect(driver.batcher.stats).toMatchObject({ inFlight: 1, inFlightBatches: 1 });
  });

  it("a returned array settles each unsettled request with its element, an Error failing it", async () => {
    const failure = new Error("bad row");
    const driver = new RecordingDriver((requests) => {
      requests[0]?.ack("early");
      return ["ignored", failure, "c-result"];
    });
    for (const id of ["a", "b", "c"]) driver.add(id);
    driver.pump(true);
    await settle();
    expect(driver.outcomes).toEqual([
      { id: "a", how: "ack", result: "early" },
      { id: "b", how: "fail", error: failure },
      { id: "c", how: "ack", result: "c-result" },
    ]);
  });
});

describe("DriverRequest and the handles of later tries", () => {
  it("retry() on the first try's handle requeues after its delay, or the backoff delay without one", async () => {
    const driver = new RecordingDriver(
      (requests) => {
        requests[0]?.retry({ delay: 50 });
        requests[1]?.retry();
      },
      { retry: { attempts: 2, backoff: { type: "fixed", delay: 300 } } },
    );
    driver.add("a");
    driver.add("b");
    driver.pump(true);
    await settle();
    expect(driver.outcomes).toEqual([
      { id: "a", how: "retry", notBefore: 1_050 },
      { id: "b", how: "retry", notBefore: 1_300 },
    ]);
  });

  it("the handler of a first try gets the driver's item itself", async () => {
    const handed: unknown[] = [];
    const driver = new RecordingDriver((requests) => void handed.push(...requests));
    const items = ["a", "b"].map((id) => driver.add(id));
    driver.pump(true);
    await settle();
    expect(handed).toHaveLength(2);
    expect(handed[0]).toBe(items[0]);
    expect(handed[1]).toBe(items[1]);
  });

  it("retry() without options on the last try fails the item with RetriesExhaustedError", async () => {
    const driver = new RecordingDriver((requests) => {
      requests[0]?.retry();
    });
    driver.add("a");
    driver.pump(true);
    await settle();
    expect(driver.outcomes).toEqual([{ id: "a", how: "fail", error: expect.any(RetriesExhaustedError) }]);
  });

  it("a settled request's retry() throws SettledError before it looks at the delay", async () => {
    const thrown: unknown[] = [];
    const driver = new RecordingDriver(
      (requests) => {
        const request = requests[0]!;
        request.ack("done");
        try {
          request.retry({ delay: -1 });
        } catch (error) {
          thrown.push(error);
        }
      },
      { retry: { attempts: 3 } },
    );
    driver.add("a");
    driver.pump(true);
    await settle();
    expect(thrown).toEqual([expect.any(SettledError)]);
    expect(driver.outcomes).toEqual([{ id: "a", how: "ack", result: "done" }]);
  });

  it("a later try's handle shows the item and settles that try; the first try's handle then throws SettledError", async () => {
    const seen: unknown[] = [];
    let firstTry: Item | undefined;
    let secondTry: BatchRequest<string, string> | undefined;
    const driver = new RecordingDriver(
      (requests) => {
        const request = requests[0]!;
        seen.push({
          id: request.id,
          payload: request.payload,
          attempt: request.attempt,
          enqueuedAt: request.enqueuedAt,
          notBefore: (request as { notBefore?: number }).notBefore,
          headers: request.headers,
        });
        if (request.attempt === 1) {
          firstTry = request as Item;
          expect(() => request.retry({ delay: -1 })).toThrow(new TypeError("[tranche/core] Expected `delay` to be a number of ms ≥ 0, got -1"));
          request.retry({ delay: 50 });
        } else if (request.attempt === 2) {
          secondTry = request;
          expect(request).not.toBe(firstTry);
          expect(() => firstTry!.ack("stale")).toThrow(SettledError);
          expect(() => firstTry!.fail(new Error("stale"))).toThrow(SettledError);
          expect(() => firstTry!.retry()).toThrow(SettledError);
          request.retry({ delay: 20 });
        } else {
          expect(() => secondTry!.ack("stale")).toThrow(SettledError);
          request.fail(new Error("third try"));
        }
      },
      { retry: { attempts: 3 } },
    );
    driver.add("a");
    driver.pump(true);
    await settle();
    driver.now = 1_050;
    driver.pump(true);
    await settle();
    driver.now = 1_070;
    driver.pump(true);
    await settle();
    expect(seen).toEqual([
      { id: "a", payload: "a", attempt: 1, enqueuedAt: 1_000, notBefore: 1_000, headers: { trace: "t-1" } },
      { id: "a", payload: "a", attempt: 2, enqueuedAt: 1_000, notBefore: 1_050, headers: { trace: "t-1" } },
      { id: "a", payload: "a", attempt: 3, enqueuedAt: 1_000, notBefore: 1_070, headers: { trace: "t-1" } },
    ]);
    expect(driver.outcomes.map((o) => o.how)).toEqual(["retry", "retry", "fail"]);
    expect(driver.outcomes[1]).toEqual({ id: "a", how: "retry", notBefore: 1_070 });
  });
});

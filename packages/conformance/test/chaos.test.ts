import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { type ChaosEvent, analyseChaos, fileRecorder, readEvents, recordOutcomes, recordRuns } from "../src/chaos.js";

const pid = 1;
const run = (id: string, t: number): ChaosEvent => ({ e: "run", id, attempt: 1, t, pid });
const ack = (t: number, ...ids: string[]): ChaosEvent => ({ e: "ack", ids, t, pid });
const asked = (id: string, t: number, notBefore: number): ChaosEvent => ({ e: "retrying", id, notBefore, t, pid });
const retried = (id: string, t: number, notBefore: number): ChaosEvent => ({ e: "retry", id, notBefore, t, pid });
const base = { retryOnce: [], garbage: [], deadLetters: [], remaining: 0 };
const sent = Array.from({ length: 100 }, (_, i) => `i${i}`);
const clean = sent.flatMap((id, i) => [run(id, i), ack(i + 1, id)]);

describe("analyseChaos", () => {
  it("passes a clean run and counts it", () => {
    const { figures, violations } = analyseChaos({ ...base, sent, events: clean });
    expect(violations).toEqual([]);
    expect(figures).toMatchObject({ sent: 100, runs: 100, lost: 0, duplicates: 0, earlyRuns: 0 });
  });

  it("reports an item never acked as lost", () => {
    const events = clean.filter((e) => !(e.e === "ack" && e.ids.includes("i7")));
    const { figures, violations } = analyseChaos({ ...base, sent, events });
    expect(figures.lost).toBe(1);
    expect(violations.join("\n")).toContain("i7: lost");
  });

  it("counts an item whose handler returned but whose ack was never confirmed as unconfirmed, not lost", () => {
    const events = [...clean.filter((e) => !(e.e === "ack" && e.ids.includes("i7"))), { e: "handled", ids: ["i7"], t: 7.5, pid } as ChaosEvent];
    const { figures, violations } = analyseChaos({ ...base, sent, events });
    expect(violations).toEqual([]);
    expect(figures).toMatchObject({ lost: 0, unconfirmed: 1 });
  });

  it("allows a re-run whose previous outcome was not confirmed, and rejects one after a confirmed ack", () => {
    const inDoubt = analyseChaos({ ...base, sent, events: [...clean, run("i3", 3.5)] });
    expect(inDoubt.figures).toMatchObject({ duplicates: 1, duplicatesInDoubt: 1 });
    expect(inDoubt.violations).toEqual([]);
    const afterAck = analyseChaos({ ...base, sent, events: [...clean, run("i3", 50)] });
    expect(afterAck.figures).toMatchObject({ duplicates: 1, duplicatesInDoubt: 0 });
    expect(afterAck.violations.join("\n")).toContain("i3: ran again");
  });

  it("counts a run after a confirmed retry as expected, and one before its notBefore as early", () => {
    const retry = [run("r", 0), asked("r", 1, 1500), retried("r", 2, 1500)];
    const onTime = analyseChaos({ ...base, sent: ["r"], retryOnce: ["r"], events: [...retry, run("r", 1600), ack(1601, "r")] });
    expect(onTime.violations).toEqual([]);
    expect(onTime.figures).toMatchObject({ retried: 1, duplicates: 0, earlyRuns: 0 });
    const early = analyseChaos({ ...base, sent: ["r"], retryOnce: ["r"], events: [...retry, run("r", 900), ack(901, "r")] });
    expect(early.figures.earlyRuns).toBe(1);
    expect(early.violations.join("\n")).toContain("before the notBefore");
  });

  it("fails more than 2 % duplicates even when each is in doubt", () => {
    const events = [...clean, ...["i1", "i2", "i3"].map((id) => run(id, Number(id.slice(1)) + 0.5))];
    const { violations } = analyseChaos({ ...base, sent, events });
    expect(violations.join("\n")).toContain("exceed 2 %");
  });

  it("wants every undecodable message in the dead letters and nothing else, and an empty broker", () => {
    const deadLetters = [{ id: "g1", reason: "DecodeError" }, { id: "i4", reason: "Error: boom" }];
    const { figures, violations } = analyseChaos({ ...base, sent, events: clean, garbage: ["g1", "g2"], deadLetters, remaining: 3 });
    expect(figures).toMatchObject({ garbageDeadLettered: 1, unexpectedDeadLetters: 1, remaining: 3 });
    const text = violations.join("\n");
    expect(text).toContain("i4: in the dead letters");
    expect(text).toContain("g2: undecodable, but not in the dead letters");
    expect(text).toContain("3 messages left");
  });

  it("wants every awaited result resolved", () => {
    const { violations } = analyseChaos({ ...base, sent, events: clean, results: { awaited: 10, resolved: 9 } });
    expect(violations.join("\n")).toContain("1 of 10 awaited results");
  });
});

describe("recorders", () => {
  it("write JSON lines that survive a torn last line", () => {
    const dir = mkdtempSync(join(tmpdir(), "tranche-chaos-"));
    try {
      const path = join(dir, "events.jsonl");
      fileRecorder(path)(run("a", 1));
      writeFileSync(path, `${JSON.stringify(ack(2, "a"))}\n{"e":"ru`, { flag: "a" });
      expect(readEvents([path, join(dir, "missing")])).toEqual([run("a", 1), ack(2, "a")]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("record an outcome only once the transport call resolved", async () => {
    const events: ChaosEvent[] = [];
    let fail = true;
    const inner = {
      name: "stub",
      capabilities: { maxReceive: 1, nativeDelay: true, lease: false, nativeDeadLetter: false },
      send: async () => "x",
      sendMany: async () => [],
      receive: async () => [],
      ack: async () => {
        if (fail) throw new Error("lost");
      },
      retry: async () => {},
      deadLetter: async () => {},
      release: async () => {},
      close: async () => {},
    };
    const recorded = recordOutcomes(inner, (e) => events.push(e));
    const delivery = { id: "a", payload: 1, attempt: 1 };
    await expect(recorded.ack([delivery])).rejects.toThrow("lost");
    expect(events).toEqual([]);
    fail = false;
    await recorded.ack([delivery]);
    await recorded.retry(delivery, 5);
    expect(events.map((e) => e.e)).toEqual(["ack", "retrying", "retry"]);
  });

  it("record a run when the handler gets an item, and the batch once it returned", async () => {
    const events: ChaosEvent[] = [];
    const handler = recordRuns<number, number>(async (requests) => {
      expect(events.map((e) => e.e)).toEqual(["run", "run"]);
      return requests.map((r) => r.payload);
    }, (e) => events.push(e));
    const request = (id: string) => ({ id, payload: 1, attempt: 1, enqueuedAt: 0, ack() {}, fail() {}, retry() {} });
    await handler([request("a"), request("b")], { batchId: "1", reason: "count", signal: new AbortController().signal });
    expect(events.map((e) => e.e)).toEqual(["run", "run", "handled"]);
    expect(events[2]).toMatchObject({ ids: ["a", "b"] });
  });
});

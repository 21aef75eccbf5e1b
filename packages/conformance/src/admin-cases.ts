import { DecodeError } from "@tranche/core";
import type { DeadLetter, QueueAdmin, QueueDepth, Transport } from "@tranche/core";
import { expect } from "vitest";
import type { ConformanceCase } from "./cases.js";
import { BASE_LEASE } from "./context.js";
import type { CaseContext, Received } from "./context.js";
import { bounded, expectNoDelivery, receiveItem, receiveOnce, rejection, sleepMs } from "./expectations.js";
import { injectFaults } from "./faulty-transport.js";

type Admin = Transport<unknown> & QueueAdmin<unknown>;

const DEPTH_FIELDS = ["ready", "delayed", "inFlight", "deadLettered"] as const;

/** The transport with its `QueueAdmin` methods (the case only runs when it has them). */
function adminOf(transport: Transport<unknown>): Admin {
  return transport as Admin;
}

/** The bytes of a dead letter as text. */
function textOf(raw: string | Uint8Array): string {
  return typeof raw === "string" ? raw : new TextDecoder().decode(raw);
}

/**
 * Polls `depth()` until the fields the transport counts equal `want`: a broker that counts
 * approximately (SQS) or late (a consumer giving back what it was pushed) gets the patience. On a
 * simulated clock, where waiting would move time and expire leases, the first answer counts.
 */
async function expectDepth(context: CaseContext, asked: QueueDepth, what: string, transport = context.transport): Promise<void> {
  const want = context.options.delayedInFlight ? { ...asked, delayed: 0, inFlight: asked.inFlight + asked.delayed } : asked;
  const skipped = new Set(context.options.uncountedDepth ?? []);
  const fields = DEPTH_FIELDS.filter((field) => !skipped.has(field));
  const deadline = Date.now() + context.patience;
  for (;;) {
    const got = await adminOf(transport).depth();
    for (const field of DEPTH_FIELDS) expect(Number.isInteger(got[field]) && got[field] >= 0, `depth().${field} is a count, got ${got[field]}`).toBe(true);
    if (fields.every((field) => got[field] === want[field])) return;
    if (context.simulated || Date.now() >= deadline) {
      const shown = (d: QueueDepth): string => fields.map((field) => `${field} ${d[field]}`).join(", ");
      expect.fail(`depth() ${what}: expected ${shown(want)}, got ${shown(got)}${context.simulated ? "" : ` (waited ${context.patience} ms)`}`);
    }
    await sleepMs(100);
  }
}

/** Sends `n` items, receives them all and dead-letters each in order; resolves with their ids in that order. */
async function deadLettered(context: CaseContext, n: number, label: string, transport = context.transport): Promise<string[]> {
  const ids = await transport.sendMany(Array.from({ length: n }, (_, i) => ({ label, i })));
  const got = await receiveOnce(context, ids, { transport });
  for (const id of ids) await transport.deadLetter((got.get(id) as Received).delivery, new Error(`conformance: ${label}`));
  return ids;
}

/** Every dead letter, a page of `limit` at a time. */
async function allPages(admin: Admin, limit: number): Promise<DeadLetter<unknown>[][]> {
  const pages: DeadLetter<unknown>[][] = [];
  let after: string | undefined;
  for (;;) {
    const page = await admin.deadLetters({ limit, ...(after === undefined ? {} : { after }) });
    expect(page.length, "a page longer than its limit").toBeLessThanOrEqual(limit);
    if (page.length === 0) return pages;
    pages.push(page);
    if (pages.length > 1000) expect.fail("paging did not end after 1000 pages");
    after = page[page.length - 1]?.id;
  }
}

/** The ids among `ids` still in the dead letters. */
async function stillDead(admin: Admin, ids: readonly string[]): Promise<string[]> {
  const letters = new Set((await admin.deadLetters()).map((l) => l.id));
  return ids.filter((id) => letters.has(id));
}

/**
 * Receives until each of `ids` came, then a while longer, acking them: each must come at least
 * once and at most `max` times, every copy a fresh item (`retries` 0, and `attempt` 1 unless
 * `cutsSinceRedrive` connection cuts may have taken copies back from the consumer: a broker
 * that counts such returns as deliveries, as RabbitMQ's `x-delivery-count` does, adds one each).
 */
async function expectBack(context: CaseContext, ids: readonly string[], max: number, cutsSinceRedrive = 0): Promise<void> {
  const seen = new Map<string, number>();
  const each = async ({ delivery }: Received): Promise<void> => {
    if (!ids.includes(delivery.id)) return;
    seen.set(delivery.id, (seen.get(delivery.id) ?? 0) + 1);
    expect(delivery.attempt, `attempt of redriven ${delivery.id}`).toBeGreaterThanOrEqual(1);
    expect(delivery.attempt, `attempt of redriven ${delivery.id}`).toBeLessThanOrEqual(1 + cutsSinceRedrive);
    expect(delivery.retries ?? 0, `retries of redriven ${delivery.id}`).toBe(0);
    await context.transport.ack([delivery]);
  };
  await context.collect(context.transport, { done: () => ids.every((id) => seen.has(id)), each });
  expect(ids.filter((id) => !seen.has(id)), "redriven items never delivered").toEqual([]);
  // A copy a repeated redrive made would come soon after the first.
  await context.collect(context.transport, { done: () => false, budget: context.wait * 2 + context.ms(500), each });
  for (const [id, times] of seen) expect(times, `${id} delivered ${times} times after its redrive`).toBeLessThanOrEqual(max);
}

/**
 * The `QueueAdmin` cases: depth by state, dead letters listed a page at a time, redriven (fresh
 * attempt count, idempotent, nothing lost when interrupted) and purged. Skipped for a transport
 * without `depth`, `deadLetters`, `redrive` and `purgeDeadLetters`.
 */
export const adminCases: readonly ConformanceCase[] = [
  {
    name: "admin: depth() counts ready, delayed, in-flight and dead-lettered messages",
    requires: "admin",
    // Held deliveries must stay in flight while the depth is polled.
    settings: { lease: BASE_LEASE * 30 },
    async run(context) {
      const t = context.transport;
      await expectDepth(context, { ready: 0, delayed: 0, inFlight: 0, deadLettered: 0 }, "of a new queue");
      await t.sendMany(["later 1", "later 2"], { delay: context.ms(600_000) });
      // A transport that delays on the consumer's side sees the delayed items on a receive (AMQP
      // then moves them to a delay queue; one without native delays may hand them out early, to be held).
      const early = await context.collect(t, { done: () => false, budget: context.wait * 2 + context.ms(200) });
      for (const { delivery } of early) expect(delivery.notBefore ?? 0, `${delivery.id} handed out before its delay without its notBefore`).toBeGreaterThan(context.now());
      const held = early.length;
      await t.sendMany(["r1", "r2", "r3", "r4"]);
      const taken: Received[] = [];
      const deadline = context.now() + context.patience;
      while (taken.length < 2 && context.now() < deadline) taken.push(...(await context.receive(t, 1)));
      expect(taken, "two of the four ready items, one receive(1) at a time").toHaveLength(2);
      const [kept, dead] = taken as [Received, Received];
      await t.deadLetter(dead.delivery, new Error("conformance: depth"));
      await expectDepth(context, { ready: 2, delayed: 2 - held, inFlight: 1 + held, deadLettered: 1 }, "with one delivery held and one dead-lettered");
      await t.ack([kept.delivery, ...early.map((r) => r.delivery)]);
      await expectDepth(context, { ready: 2, delayed: 2 - held, inFlight: 0, deadLettered: 1 }, "after the held deliveries' ack");
    },
  },
  {
    name: "admin: a dead letter keeps id, payload, bytes, attempt, retries, reason and time; redriven, it runs again under its id with attempt 1 and retries 0",
    requires: "admin",
    async run(context) {
      const t = adminOf(context.transport);
      const payload = { text: "héllo ✓", n: 7, list: [1, null] };
      const before = context.now();
      const id = await t.send(payload);
      const first = await receiveItem(context, id);
      await t.retry(first.delivery, context.now());
      const second = await receiveItem(context, id);
      await t.deadLetter(second.delivery, new RangeError("conformance: redrive me"));
      const letter = (await t.deadLetters()).find((l) => l.id === id);
      expect(letter, "the dead letter").toBeDefined();
      const l = letter as DeadLetter<unknown>;
      expect(l.payload).toEqual(payload);
      expect(JSON.parse(textOf(l.raw)), "raw holds the bytes sent (JSON)").toEqual(payload);
      expect(l.attempt).toBe(second.delivery.attempt);
      if (l.retries !== undefined) expect(l.retries).toBe(1);
      expect(l.reason).toMatchObject({ name: "RangeError", message: "conformance: redrive me" });
      // A broker's clock may differ a little from the suite's.
      expect(l.at, "dead-lettered at (epoch ms)").toBeGreaterThanOrEqual(before - 60_000);
      expect(l.at).toBeLessThanOrEqual(context.now() + 60_000);

      expect(await t.redrive([id])).toBe(1);
      expect(await stillDead(t, [id]), "still a dead letter after its redrive").toEqual([]);
      const again = await receiveItem(context, id);
      expect(again.delivery).toMatchObject({ id, attempt: 1 });
      expect(again.delivery.retries ?? 0, "retries of the redriven item").toBe(0);
      expect(again.delivery.payload).toEqual(payload);
      await t.ack([again.delivery]);
      await expectDepth(context, { ready: 0, delayed: 0, inFlight: 0, deadLettered: 0 }, "after the redriven item's ack");
    },
  },
  {
    name: "admin: redrive is idempotent (a repeat finds the item gone), skips unknown ids, takes \"all\", and keeps a delay",
    requires: "admin",
    // What came first stays leased while the delayed one is awaited.
    settings: { lease: BASE_LEASE * 30 },
    async run(context) {
      const t = adminOf(context.transport);
      const [a, b, c] = (await deadLettered(context, 3, "redrive twice")) as [string, string, string];
      expect(await t.redrive([a])).toBe(1);
      expect(await t.redrive([a]), "a repeated redrive").toBe(0);
      const delay = context.ms(1500);
      const notBefore = context.now() + delay;
      expect(await t.redrive([b, "conformance-no-such-letter"], { delay })).toBe(1);
      expect(await t.redrive("all")).toBe(1);
      expect(await t.redrive("all"), "a repeated redrive of all").toBe(0);
      expect(await stillDead(t, [a, b, c])).toEqual([]);
      const got = await receiveOnce(context, [a, b, c], { budget: delay + context.patience });
      for (const [id, { delivery }] of got) {
        expect(delivery.attempt, `attempt of ${id}`).toBe(1);
        expect(delivery.retries ?? 0, `retries of ${id}`).toBe(0);
      }
      const { delivery, at } = got.get(b) as Received;
      const heldByWorker = !context.capabilities.nativeDelay && (delivery.notBefore ?? 0) >= notBefore;
      expect(at >= notBefore || heldByWorker, `${b} redriven with a delay came ${notBefore - at} ms early`).toBe(true);
      await t.ack([...got.values()].map((r) => r.delivery));
      // A second copy would come within a receive or two.
      await expectNoDelivery(context, [a, b, c], context.wait * 2 + context.ms(1000), "after a repeated redrive and its ack");
    },
  },
  {
    name: "admin: an interrupted redrive loses nothing: after a lost reply or a call that never returned, the repeat leaves each item in the queue",
    requires: "admin",
    async run(context) {
      const [lost, hung] = (await deadLettered(context, 2, "interrupted redrive")) as [string, string];
      const faulty = injectFaults(context.transport);
      const redrive = faulty.redrive as NonNullable<typeof faulty.redrive>;
      faulty.inject("redrive", "lost-reply", { count: 1 });
      expect(await rejection(() => redrive([lost])), "the injected lost reply").toBeDefined();
      await redrive([lost]);
      // The first call reaches the broker and never returns; the repeat runs meanwhile.
      faulty.inject("redrive", "hang-after", { count: 1 });
      void redrive([hung]);
      await redrive([hung]);
      await expectBack(context, [lost, hung], 2);
      await waitUntilGone(context, [lost, hung]);
    },
  },
  {
    name: "admin: a redrive cut off by a connection fault loses nothing: the repeat after the heal brings every letter back",
    requires: ["admin", "server"],
    // What came back stays leased while the letters are dead-lettered again.
    settings: { lease: BASE_LEASE * 30 },
    async run(context) {
      const t = adminOf(context.transport);
      const proxy = context.proxy as NonNullable<typeof context.proxy>;
      const ids = await deadLettered(context, 20, "cut redrive");
      // A redrive of them uncut, timed, so that the cuts below land early, midway and late in one.
      const started = Date.now();
      expect(await t.redrive("all")).toBe(ids.length);
      const took = Date.now() - started;
      for (const share of [0.2, 0.5, 0.8]) {
        const got = await receiveOnce(context, ids);
        for (const id of ids) await t.deadLetter((got.get(id) as Received).delivery, new Error("conformance: cut redrive"));
        const first = t.redrive("all");
        first.catch(() => {});
        await sleepMs(Math.round(took * share));
        proxy.cut();
        await rejection(() => bounded(first, context.patience, "a redrive cut off"));
        proxy.heal();
        const deadline = Date.now() + context.patience;
        for (;;) {
          const repeat = await rejection(() => t.redrive("all"));
          if (repeat === undefined) break;
          if (Date.now() >= deadline) throw repeat;
          await sleepMs(200);
        }
        await waitUntilGone(context, ids);
      }
      await expectBack(context, ids, 2, 1);
    },
  },
  {
    name: "admin: deadLetters({ limit, after }) pages through every letter once, oldest first",
    requires: "admin",
    async run(context) {
      const t = adminOf(context.transport);
      const ids = await deadLettered(context, 7, "paging");
      const pages = await allPages(t, 3);
      const listed = pages.flat();
      expect(listed.map((l) => l.id).sort(), "every letter, once").toEqual([...ids].sort());
      for (let i = 1; i < listed.length; i++) {
        expect(listed[i]!.at, `letter ${i} of the pages is older than the one before it`).toBeGreaterThanOrEqual(listed[i - 1]!.at);
      }
      expect(pages.slice(0, -1).every((page) => page.length === 3), "pages before the last are full").toBe(true);
      expect((await t.deadLetters()).map((l) => l.id).sort(), "without a limit: all of them").toEqual([...ids].sort());
      expect(await t.deadLetters({ limit: 2 })).toHaveLength(2);
      await expect(t.deadLetters({ limit: 0 }), "limit 0").rejects.toThrow(TypeError);
    },
  },
  {
    name: "admin: purgeDeadLetters deletes the letters named, then all of them, for good",
    requires: "admin",
    async run(context) {
      const t = adminOf(context.transport);
      const [a, b, c] = (await deadLettered(context, 3, "purge")) as [string, string, string];
      expect(await t.purgeDeadLetters([a, "conformance-no-such-letter"])).toBe(1);
      expect(await t.purgeDeadLetters([a]), "a repeated purge").toBe(0);
      expect(await stillDead(t, [a, b, c])).toEqual([b, c]);
      expect(await t.purgeDeadLetters("all")).toBe(2);
      expect(await stillDead(t, [a, b, c])).toEqual([]);
      expect(await t.redrive([a, b, c]), "a purged letter cannot be redriven").toBe(0);
      await expectDepth(context, { ready: 0, delayed: 0, inFlight: 0, deadLettered: 0 }, "after the purge");
      await expectNoDelivery(context, [a, b, c], context.lease + context.ms(500), "after its purge");
      await expect(t.purgeDeadLetters("some" as never), 'ids neither an array nor "all"').rejects.toThrow(TypeError);
    },
  },
  {
    name: "admin: an undecodable dead letter keeps its bytes, and a redrive sends them back as they were",
    requires: "admin",
    async run(context) {
      const t = adminOf(context.transport);
      const bytes = "this is {not json";
      await context.queue.sendRaw(bytes);
      const received = await context.collect(t, { done: (all) => all.some((r) => r.delivery.error !== undefined) });
      const garbage = received.find((r) => r.delivery.error !== undefined)?.delivery;
      expect(garbage, "the undecodable message never arrived").toBeDefined();
      const { id, error } = garbage as NonNullable<typeof garbage>;
      await t.deadLetter(garbage as NonNullable<typeof garbage>, error as Error);
      const letter = (await t.deadLetters()).find((l) => l.id === id);
      expect(letter, "the dead letter").toBeDefined();
      expect(letter?.payload).toBeUndefined();
      expect(textOf(letter?.raw ?? ""), "raw: the bytes as sent").toBe(bytes);
      expect(letter?.reason.name).toBe("DecodeError");
      expect(await t.redrive([id])).toBe(1);
      const again = await receiveItem(context, id);
      expect(DecodeError.isInstance(again.delivery.error), "the redriven bytes arrive undecodable again").toBe(true);
      expect(again.delivery.attempt).toBe(1);
      await t.deadLetter(again.delivery, again.delivery.error as Error);
    },
  },
];

/** Waits until none of `ids` is a dead letter any more (a broker that lists late gets the patience). */
async function waitUntilGone(context: CaseContext, ids: readonly string[]): Promise<void> {
  const deadline = Date.now() + context.patience;
  for (;;) {
    const left = await stillDead(adminOf(context.transport), ids);
    if (left.length === 0) return;
    if (Date.now() >= deadline) expect.fail(`still dead letters after their redrive: ${left.join(", ")}`);
    await sleepMs(200);
  }
}

import { type Delivery, TransportError } from "@tranche/core";
import { expect } from "vitest";
import { BASE_LEASE, LEASE_TOLERANCE } from "./context.js";
import type { CaseContext, Received } from "./context.js";
import type { ConformanceCase } from "./cases.js";
import { deadLettersOf, expectNoDelivery, receiveItem, receiveNotBefore, receiveOnce, rejection } from "./expectations.js";

/** Sends two items and receives them: one for a repeat after the first call, one for a repeat during it. */
async function twoHeld(context: CaseContext, label: string): Promise<[Delivery<unknown>, Delivery<unknown>]> {
  const ids = await context.transport.sendMany([`${label} 1`, `${label} 2`]);
  const got = await receiveOnce(context, ids);
  return ids.map((id) => (got.get(id) as Received).delivery) as [Delivery<unknown>, Delivery<unknown>];
}

/** A window long enough for a second copy of an item, or its expired lease, to be delivered. */
function redeliveryWindow(context: CaseContext): number {
  return context.lease * 2 + context.ms(500);
}

/**
 * Each call repeated as a worker repeats a call whose outcome it did not see: once after the
 * first resolved (its reply was lost) and once while the first is still under way (it timed out).
 */
export const retrySafetyCases: readonly ConformanceCase[] = [
  {
    name: "retry-safe: a repeated ack resolves and removes the item once",
    async run(context) {
      const [after, during] = await twoHeld(context, "ack");
      await context.transport.ack([after]);
      await context.transport.ack([after]);
      await Promise.all([context.transport.ack([during]), context.transport.ack([during])]);
      await expectNoDelivery(context, [after.id, during.id], redeliveryWindow(context), "after a repeated ack");
    },
  },
  {
    name: "retry-safe: a repeated deadLetter resolves and writes one dead letter",
    async run(context) {
      const [after, during] = await twoHeld(context, "dead letter");
      const reason = new Error("conformance: repeated dead letter");
      await context.transport.deadLetter(after, reason);
      await context.transport.deadLetter(after, reason);
      await Promise.all([context.transport.deadLetter(during, reason), context.transport.deadLetter(during, reason)]);
      await expectNoDelivery(context, [after.id, during.id], redeliveryWindow(context), "after a repeated deadLetter");
      const letters = await deadLettersOf(context);
      if (letters !== undefined) {
        for (const id of [after.id, during.id]) {
          const mine = letters.filter((l) => l.id === id);
          expect(mine.length, `dead letters written for ${id}`).toBe(1);
          expect(mine[0]?.reason).toContain("conformance: repeated dead letter");
        }
      }
      // A transport that lists one letter per item still counts every dead-letter message it wrote.
      if (context.transport.depth !== undefined) expect((await context.transport.depth()).deadLettered, "dead-letter messages written").toBe(2);
    },
  },
  {
    name: "retry-safe: a repeated retry redelivers once, not before notBefore, with retries + 1",
    async run(context) {
      const [after, during] = await twoHeld(context, "retry");
      const notBefore = context.now() + context.ms(1000);
      await context.transport.retry(after, notBefore);
      await context.transport.retry(after, notBefore);
      await Promise.all([context.transport.retry(during, notBefore), context.transport.retry(during, notBefore)]);
      const got = await receiveOnce(context, [after.id, during.id], { notBefore, budget: notBefore - context.now() + context.patience });
      for (const first of [after, during]) {
        const again = (got.get(first.id) as Received).delivery;
        expect(again.attempt, `attempt of ${first.id}`).toBe(first.attempt + 1);
        expect(again.retries, `retries of ${first.id}`).toBe((first.retries ?? 0) + 1);
      }
      await context.transport.ack([...got.values()].map((r) => r.delivery));
      await expectNoDelivery(context, [after.id, during.id], redeliveryWindow(context), "after a repeated retry and its ack");
    },
  },
  {
    name: "retry-safe: a repeated release redelivers once, promptly",
    // A long lease: a copy the repeat left behind would come long before it could expire.
    settings: { lease: BASE_LEASE * 20 },
    async run(context) {
      const [after, during] = await twoHeld(context, "release");
      const other = await context.queue.connect();
      await context.transport.release([after]);
      await context.transport.release([after]);
      await Promise.all([context.transport.release([during]), context.transport.release([during])]);
      const got = await receiveOnce(context, [after.id, during.id], { transport: other, budget: context.lease / 2 });
      for (const first of [after, during]) {
        const again = (got.get(first.id) as Received).delivery;
        expect([first.attempt, first.attempt + 1], `attempt of ${first.id}`).toContain(again.attempt);
        expect(again.retries, `retries of ${first.id}`).toBe(first.retries);
      }
      await other.ack([...got.values()].map((r) => r.delivery));
      await expectNoDelivery(context, [after.id, during.id], context.wait * 2 + context.ms(1000), "after a repeated release and its ack", other);
    },
  },
  {
    name: "retries counts retry calls: + 1 on each retry, unchanged by a release or a lease expiry",
    async run(context) {
      const id = await context.transport.send("counted");
      const d1 = (await receiveItem(context, id)).delivery;
      expect(d1.retries).toBe(0);
      await context.transport.retry(d1, context.now());
      const d2 = (await receiveItem(context, id)).delivery;
      expect(d2.retries).toBe(1);
      await context.transport.release([d2]);
      const d3 = (await receiveItem(context, id)).delivery;
      expect(d3.retries, "after a release").toBe(1);
      const notBefore = context.now() + context.ms(300);
      await context.transport.retry(d3, notBefore);
      const r4 = await receiveNotBefore(context, id, notBefore);
      expect(r4.delivery.retries).toBe(2);
      expect(r4.delivery.attempt).toBe(d3.attempt + 1);
      let last = r4.delivery;
      if (context.capabilities.lease) {
        const other = await context.queue.connect();
        const r5 = await receiveNotBefore(context, id, r4.start + context.lease * LEASE_TOLERANCE, other);
        expect(r5.delivery.retries, "after a lease expiry").toBe(2);
        expect(r5.delivery.attempt).toBe(r4.delivery.attempt + 1);
        last = r5.delivery;
        await other.ack([last]);
      } else {
        await context.transport.ack([last]);
      }
    },
  },
  {
    name: "a payload the codec cannot encode: send and sendMany reject at once with a non-retryable TransportError",
    async run(context) {
      const calls: [string, () => Promise<unknown>][] = [
        ["send", () => context.transport.send({ n: 1n })],
        ["sendMany", () => context.transport.sendMany([{ ok: 1 }, { n: 1n }])],
      ];
      for (const [name, call] of calls) {
        const pending = rejection(call);
        expect(await context.settlesWithin(pending, context.ms(5000)), `${name} of an unencodable payload did not settle`).toBe(true);
        const error = await pending;
        expect(TransportError.isInstance(error), `${name} rejected with ${String(error)}`).toBe(true);
        expect((error as TransportError).retryable, `${name}'s error is retryable`).toBe(false);
      }
      // The transport still works.
      const id = await context.transport.send({ ok: 2 });
      const { delivery } = await receiveItem(context, id);
      await context.transport.ack([delivery]);
    },
  },
];

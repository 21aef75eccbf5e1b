import { ClosedError, DecodeError } from "@tranche/core";
import type { Delivery, Transport } from "@tranche/core";
import { expect } from "vitest";
import { connectionCases } from "./connection-cases.js";
import { BASE_LEASE, LEASE_TOLERANCE, idsOf } from "./context.js";
import type { CaseContext, Received } from "./context.js";
import { deadLettersOf, expectNoDelivery, receiveItem, receiveNotBefore, rejection, uniqueId } from "./expectations.js";
import { headerCases } from "./header-cases.js";
import { adminCases } from "./admin-cases.js";
import { retrySafetyCases } from "./retry-safety-cases.js";

/** What a case needs of the transport or the options (see `ConformanceCase.requires`). */
export type Requirement = "lease" | "server" | "admin";

/** One check of the suite. `describeTransportConformance` runs each as its own `it`. */
export interface ConformanceCase {
  readonly name: string;
  /**
   * Skipped unless the transport declares this capability (`"lease"`), has the `QueueAdmin`
   * methods (`"admin"`), or unless the options give its `server` (`"server"`: the case puts a
   * `TcpProxy` between the transport and it). Several: all of them.
   */
  readonly requires?: Requirement | readonly Requirement[];
  /** Suite-ms lease and wait of this case's queue, when not the suite's base ones. */
  readonly settings?: { lease?: number; wait?: number };
  run(context: CaseContext): Promise<void>;
}

const PAYLOAD = { text: "héllo, wörld ✓", n: 42, float: 1.5, list: [1, "two", null, false], nested: { ok: true } };

const basicCases: readonly ConformanceCase[] = [
  {
    name: "declares its capabilities",
    async run(context) {
      const declared = context.transport.capabilities;
      expect(declared).toEqual(context.capabilities);
      expect(declared.maxReceive).toBeGreaterThanOrEqual(1);
      for (const flag of ["nativeDelay", "lease", "nativeDeadLetter"] as const) expect(typeof declared[flag]).toBe("boolean");
      expect(typeof context.transport.name).toBe("string");
    },
  },
  {
    name: "send → receive round trip: same payload, the id send returned, attempt 1",
    async run(context) {
      const id = await context.transport.send(PAYLOAD);
      expect(typeof id).toBe("string");
      const { delivery } = await receiveItem(context, id);
      expect(delivery.payload).toEqual(PAYLOAD);
      expect(delivery.attempt).toBe(1);
      expect(delivery.retries, "a first delivery carries retries 0").toBe(0);
      expect(delivery.error).toBeUndefined();
      await context.transport.ack([delivery]);
    },
  },
  {
    name: "send(p, { id }) keeps the id, and re-sending the id re-enqueues that item",
    async run(context) {
      const id = uniqueId("conformance-item");
      expect(await context.transport.send({ v: 1 }, { id })).toBe(id);
      const first = await receiveItem(context, id);
      expect(first.delivery.payload).toEqual({ v: 1 });
      // celery's retry by re-send: the handler sends its own id again, then acks what it holds.
      expect(await context.transport.send({ v: 2 }, { id })).toBe(id);
      await context.transport.ack([first.delivery]);
      const again = await context.collect(context.transport, { done: (all) => all.some((r) => r.delivery.id === id && r.at >= first.at) });
      const resent = again.find((r) => r.delivery.id === id);
      expect(resent, "the re-sent id was never delivered").toBeDefined();
      expect(resent?.delivery.payload).toEqual({ v: 2 });
      await context.transport.ack(again.map((r) => r.delivery));
    },
  },
  {
    name: "sendMany returns one id per payload, in order",
    async run(context) {
      const payloads = [{ i: 0 }, { i: 1 }, { i: 2 }, { i: 3 }];
      const ids = await context.transport.sendMany(payloads);
      expect(ids).toHaveLength(payloads.length);
      expect(new Set(ids).size).toBe(payloads.length);
      const received = await context.collect(context.transport, { done: (all) => ids.every((id) => idsOf(all).includes(id)) });
      for (const [index, id] of ids.entries()) {
        expect(received.find((r) => r.delivery.id === id)?.delivery.payload, `payload of ids[${index}]`).toEqual(payloads[index]);
      }
      await context.transport.ack(received.map((r) => r.delivery));
    },
  },
  {
    name: "a delayed send is not delivered before its delay, and is after",
    async run(context) {
      const delay = context.ms(1500);
      const notBefore = context.now() + delay;
      const id = await context.transport.send("later", { delay });
      const { delivery } = await receiveNotBefore(context, id, notBefore);
      expect(delivery.payload).toBe("later");
      expect(delivery.attempt).toBe(1);
      await context.transport.ack([delivery]);
    },
  },
  {
    name: "receive returns at most max",
    async run(context) {
      const ids = await context.transport.sendMany([1, 2, 3, 4, 5, 6, 7]);
      const received = await context.collect(context.transport, {
        max: 3,
        done: (all) => ids.every((id) => idsOf(all).includes(id)),
      });
      expect(new Set(idsOf(received))).toEqual(new Set(ids));
      const ones = await context.receive(context.transport, 1);
      expect(ones.length).toBeLessThanOrEqual(1);
      await context.transport.ack([...received, ...ones].map((r) => r.delivery));
    },
  },
  {
    name: "receive on an empty queue resolves [] after its wait",
    async run(context) {
      const start = context.now();
      const received = await context.receive(context.transport, context.max(10));
      expect(received).toEqual([]);
      expect(context.now() - start, "receive returned [] without waiting").toBeGreaterThanOrEqual(context.wait / 2);
      // Generous: the wait plus a margin for a busy machine and a slow server.
      expect(context.now() - start).toBeLessThan(context.wait + context.ms(10_000));
    },
  },
  {
    name: "receive resolves promptly when its signal aborts",
    settings: { wait: 20_000 },
    async run(context) {
      // Prompt: well within the (long) wait; on a simulated clock, with no time passing at all.
      const prompt = context.wait / 4;
      const aborted = new AbortController();
      aborted.abort();
      const early = context.transport.receive(context.max(10), aborted.signal);
      expect(await context.settlesWithin(early, prompt), "receive with an aborted signal did not return").toBe(true);
      expect(await early).toEqual([]);

      const live = new AbortController();
      const pending = context.transport.receive(context.max(10), live.signal);
      await context.sleep(context.ms(100));
      live.abort();
      expect(await context.settlesWithin(pending, prompt), "receive still pending after its signal aborted").toBe(true);
      expect(await pending).toEqual([]);
    },
  },
  {
    name: "ack removes the item, and acking again is harmless",
    async run(context) {
      const ids = await context.transport.sendMany(["a", "b"]);
      const received = await context.collect(context.transport, { done: (all) => ids.every((id) => idsOf(all).includes(id)) });
      const deliveries = received.map((r) => r.delivery);
      await context.transport.ack(deliveries);
      await context.transport.ack(deliveries);
      await context.transport.ack([deliveries[0] as Delivery<unknown>]);
      await context.transport.ack([]);
      await expectNoDelivery(context, ids, context.lease * 2 + context.ms(500), "after its ack");
    },
  },
  {
    name: "retry(d, notBefore) redelivers not before notBefore, with the same id, attempt + 1 and retries + 1",
    async run(context) {
      const id = await context.transport.send({ job: "retry" });
      const first = await receiveItem(context, id);
      const notBefore = context.now() + context.ms(1500);
      await context.transport.retry(first.delivery, notBefore);
      const { delivery } = await receiveNotBefore(context, id, notBefore);
      expect(delivery.id).toBe(id);
      expect(delivery.payload).toEqual({ job: "retry" });
      expect(delivery.attempt).toBe(first.delivery.attempt + 1);
      expect(delivery.retries).toBe((first.delivery.retries ?? 0) + 1);
      await context.transport.ack([delivery]);
    },
  },
  {
    name: "an expired lease is redelivered to a competing consumer, with attempt + 1 and the same retries",
    requires: "lease",
    async run(context) {
      const other = await context.queue.connect();
      const id = await context.transport.send("abandoned");
      const first = await receiveItem(context, id);
      const earliest = first.start + context.lease * LEASE_TOLERANCE;
      const second = await receiveNotBefore(context, id, earliest, other);
      expect(second.delivery.attempt).toBe(first.delivery.attempt + 1);
      expect(second.delivery.retries, "a lease expiry is no retry").toBe(first.delivery.retries);
      expect(second.delivery.payload).toBe("abandoned");
      await other.ack([second.delivery]);
    },
  },
  {
    name: "extend keeps a lease past its expiry",
    requires: "lease",
    async run(context) {
      const extend = context.transport.extend?.bind(context.transport);
      expect(extend, "a transport with the lease capability has extend()").toBeDefined();
      const other = await context.queue.connect();
      const id = await context.transport.send("kept");
      const { delivery } = await receiveItem(context, id);
      const until = context.now() + context.lease * 3;
      while (context.now() < until) {
        await extend?.([delivery], context.now() + context.lease * 2);
        for (const r of await context.receive(other, context.max(10))) {
          expect(r.delivery.id, "delivered to another consumer while its lease was extended").not.toBe(id);
        }
      }
      await context.transport.ack([delivery]);
    },
  },
  {
    name: "release redelivers promptly, long before the lease would expire",
    settings: { lease: BASE_LEASE * 20 },
    async run(context) {
      const other = await context.queue.connect();
      const id = await context.transport.send("released");
      const first = await receiveItem(context, id);
      const releasedAt = context.now();
      await context.transport.release([first.delivery]);
      const received = await context.collect(other, { done: (all) => idsOf(all).includes(id), budget: context.lease / 2 });
      const again = received.find((r) => r.delivery.id === id);
      expect(again, `not redelivered within ${context.lease / 2} ms of its release`).toBeDefined();
      expect((again as Received).at - releasedAt).toBeLessThan(context.lease / 2);
      // Where the broker allows, a release does not count as a delivery.
      expect([first.delivery.attempt, first.delivery.attempt + 1]).toContain(again?.delivery.attempt);
      expect(again?.delivery.retries, "a release is no retry").toBe(first.delivery.retries);
      await other.ack(received.map((r) => r.delivery));
    },
  },
  {
    name: "deadLetter is never redelivered and keeps its reason, attempt and retries",
    async run(context) {
      const id = await context.transport.send("poison");
      const first = await receiveItem(context, id);
      await context.transport.retry(first.delivery, context.now());
      const { delivery } = await receiveItem(context, id);
      await context.transport.deadLetter(delivery, new Error("conformance: poison pill"));
      await expectNoDelivery(context, [id], context.lease * 2 + context.ms(500), "after deadLetter");
      const letters = await deadLettersOf(context);
      if (letters !== undefined) {
        const letter = letters.find((l) => l.id === id);
        expect(letter, "dead-lettered item missing from deadLetters()").toBeDefined();
        expect(letter?.reason).toContain("conformance: poison pill");
        if (letter?.attempt !== undefined) expect(letter.attempt, "the dead letter's attempt").toBe(delivery.attempt);
        if (letter?.retries !== undefined) expect(letter.retries, "the dead letter's retries").toBe(1);
      }
    },
  },
  {
    name: "an undecodable message arrives with a DecodeError and can be dead-lettered",
    async run(context) {
      await context.queue.sendRaw("this is {not json");
      const received = await context.collect(context.transport, { done: (all) => all.some((r) => r.delivery.error !== undefined) });
      const garbage = received.find((r) => r.delivery.error !== undefined)?.delivery;
      expect(garbage, "the undecodable message never arrived").toBeDefined();
      const { id, error } = garbage as Delivery<unknown>;
      expect(DecodeError.isInstance(error)).toBe(true);
      await context.transport.deadLetter(garbage as Delivery<unknown>, error as Error);
      await expectNoDelivery(context, [id], context.lease * 2 + context.ms(500), "after deadLetter");
      const letters = await deadLettersOf(context);
      if (letters !== undefined) expect(letters.map((l) => l.id)).toContain(id);
    },
  },
  {
    name: "every call after close throws ClosedError",
    async run(context) {
      const transport = await context.queue.connect();
      const id = await transport.send("before close");
      const { delivery } = await receiveItem(context, id, transport);
      await transport.close();
      await transport.close();
      const signal = new AbortController().signal;
      const calls: [string, () => Promise<unknown>][] = [
        ["send", () => transport.send("after")],
        ["sendMany", () => transport.sendMany(["after"])],
        ["receive", () => transport.receive(1, signal)],
        ["ack", () => transport.ack([delivery])],
        ["retry", () => transport.retry(delivery, context.now())],
        ["deadLetter", () => transport.deadLetter(delivery, new Error("after close"))],
        ["release", () => transport.release([delivery])],
      ];
      if (transport.extend !== undefined) calls.push(["extend", () => (transport.extend as NonNullable<typeof transport.extend>)([delivery], context.now() + 1000)]);
      for (const [name, call] of calls) {
        const error = await rejection(call);
        expect(ClosedError.isInstance(error), `${name} after close threw ${String(error)}`).toBe(true);
      }
    },
  },
  {
    name: "two consumers never hold the same message at once",
    async run(context) {
      const other = await context.queue.connect();
      const ids = await context.transport.sendMany(Array.from({ length: 40 }, (_, i) => ({ i })));
      const held = new Map<string, Received>();
      const acked = new Set<string>();
      const consume = async (transport: Transport<unknown>): Promise<void> => {
        const deadline = context.now() + context.patience;
        while (acked.size < ids.length && context.now() < deadline) {
          const received = await context.receive(transport, context.max(5));
          for (const r of received) {
            const holder = held.get(r.delivery.id);
            // Held by the other consumer and its lease cannot have expired yet: a double lease.
            if (holder !== undefined) expect(r.at, `${r.delivery.id} held by two consumers`).toBeGreaterThanOrEqual(holder.start + context.lease * LEASE_TOLERANCE);
            expect(acked.has(r.delivery.id), `${r.delivery.id} delivered after its ack`).toBe(false);
            held.set(r.delivery.id, r);
          }
          if (received.length === 0) continue;
          await context.sleep(context.ms(20));
          await transport.ack(received.map((r) => r.delivery));
          for (const r of received) {
            acked.add(r.delivery.id);
            held.delete(r.delivery.id);
          }
        }
      };
      await Promise.all([consume(context.transport), consume(other)]);
      expect([...acked].sort()).toEqual([...ids].sort());
    },
  },
];

/** Every case of the suite, in the order they run. */
export const conformanceCases: readonly ConformanceCase[] = [...basicCases, ...headerCases, ...retrySafetyCases, ...adminCases, ...connectionCases];

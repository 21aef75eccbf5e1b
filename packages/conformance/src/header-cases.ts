import type { Delivery } from "@tranche/core";
import { expect } from "vitest";
import type { ConformanceCase } from "./cases.js";
import { idsOf } from "./context.js";
import { receiveItem, receiveNotBefore } from "./expectations.js";

/** A W3C trace context and a header of the application's own, as a traced producer sends them. */
const HEADERS = { traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "x-tenant": "acme ✓" };

/** The cases of `SendOptions.headers`: sent with an item, on every delivery of it. */
export const headerCases: readonly ConformanceCase[] = [
  {
    name: "headers sent with an item arrive on its delivery, and survive a retry and a release",
    async run(context) {
      const { transport } = context;
      const id = await transport.send({ job: "traced" }, { headers: HEADERS });
      const plain = await transport.send({ job: "plain" });
      const received = await context.collect(transport, { done: (all) => [id, plain].every((each) => idsOf(all).includes(each)) });
      const first = received.find((r) => r.delivery.id === id)?.delivery as Delivery<unknown>;
      expect(first.headers, "the headers of the first delivery").toEqual(HEADERS);
      expect(received.find((r) => r.delivery.id === plain)?.delivery.headers, "an item sent without headers has none").toBeUndefined();
      await transport.ack(received.filter((r) => r.delivery.id !== id).map((r) => r.delivery));

      const notBefore = context.now() + context.ms(500);
      await transport.retry(first, notBefore);
      const retried = (await receiveNotBefore(context, id, notBefore)).delivery;
      expect(retried.retries, "the delivery after the retry").toBe((first.retries ?? 0) + 1);
      expect(retried.headers, "the headers after a retry").toEqual(HEADERS);

      await transport.release([retried]);
      const released = (await receiveItem(context, id)).delivery;
      expect(released.headers, "the headers after a release").toEqual(HEADERS);
      await transport.ack([released]);
    },
  },
  {
    name: "sendMany and a delayed send carry their headers to each item",
    async run(context) {
      const { transport } = context;
      const ids = await transport.sendMany([1, 2], { headers: HEADERS });
      const delay = context.ms(500);
      const later = await transport.send(3, { delay, headers: { traceparent: HEADERS.traceparent } });
      const received = await context.collect(transport, { done: (all) => [...ids, later].every((each) => idsOf(all).includes(each)) });
      for (const id of ids) expect(received.find((r) => r.delivery.id === id)?.delivery.headers, `the headers of ${id}`).toEqual(HEADERS);
      expect(received.find((r) => r.delivery.id === later)?.delivery.headers, "the headers of the delayed send").toEqual({ traceparent: HEADERS.traceparent });
      await transport.ack(received.map((r) => r.delivery));
    },
  },
  {
    name: "send rejects headers that are not an object of strings",
    async run(context) {
      await expect(context.transport.send("bad", { headers: { n: 1 } as never })).rejects.toThrow(TypeError);
      await expect(context.transport.sendMany(["bad"], { headers: "traceparent" as never })).rejects.toThrow(TypeError);
    },
  },
];

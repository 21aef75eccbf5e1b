import type { Delivery } from "@tranche/core";
import { MemoryTransport } from "@tranche/memory";
import { type TransportBench, type TransportBenchSettings, type TransportContenders, fill, handler, timeWorker } from "../transport-suite.js";

async function filled(items: number): Promise<MemoryTransport<number>> {
  const transport = new MemoryTransport<number>();
  await fill(transport, items, 10_000);
  return transport;
}

/**
 * Suite "memory": a `Worker` against a hand-written receive → handler → ack loop over the
 * same `MemoryTransport` (system clock). The worker has one batch in flight (the default),
 * `flushInterval: 0` and `maxBuffered: batchSize`, so it holds what the raw loop holds: 100
 * leased messages. Each round fills a fresh transport (not timed) and times draining it.
 *
 * Why not a deeper prefetch (the default is 10 × flushEvery): an in-process transport has no
 * latency for prefetch to hide, and its ack and lease bookkeeping grows with the number of
 * leased messages (heap operations), so more held messages measure the transport more than
 * the worker. Rounds take well under a second and vary by ±20 % with the garbage collector,
 * hence 15 of them.
 */
export const memoryBench: TransportBench = {
  suite: "memory",
  rounds: { full: 15, quick: 5 },
  async open({ items, batchSize }: TransportBenchSettings): Promise<TransportContenders> {
    return {
      async worker() {
        const transport = await filled(items);
        // Timed to the last ack, like the raw loop: the worker's close is not timed.
        const ms = await timeWorker(transport, items, { flushEvery: batchSize, flushInterval: 0, maxBuffered: batchSize }, { closeTimed: false });
        await transport.close();
        return ms;
      },
      async raw() {
        const transport = await filled(items);
        const signal = new AbortController().signal;
        const start = performance.now();
        for (let acked = 0; acked < items; ) {
          const deliveries: Delivery<number>[] = await transport.receive(batchSize, signal);
          await handler(deliveries.map((d) => d.payload));
          await transport.ack(deliveries);
          acked += deliveries.length;
        }
        const ms = performance.now() - start;
        await transport.close();
        return ms;
      },
      async close() {},
    };
  },
};

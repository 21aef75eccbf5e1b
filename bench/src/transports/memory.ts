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
 * `flushInterval: 0` and `maxBuffered: 2 × batchSize` (it receives the next batch while the
 * handler runs); the raw loop receives `batchSize` at a time. Each round fills a fresh
 * transport (not timed) and times draining it.
 *
 * Why not the default maxBuffered (10 × flushEvery): a MemoryTransport's ack and lease
 * bookkeeping cost grows with the number of leased messages (heap operations), so a deeper
 * prefetch measures the transport more than the worker.
 */
export const memoryBench: TransportBench = {
  suite: "memory",
  async open({ items, batchSize }: TransportBenchSettings): Promise<TransportContenders> {
    return {
      async worker() {
        const transport = await filled(items);
        // Timed to the last ack, like the raw loop: the worker's close is not timed.
        const ms = await timeWorker(transport, items, { flushEvery: batchSize, flushInterval: 0, maxBuffered: 2 * batchSize }, { closeTimed: false });
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

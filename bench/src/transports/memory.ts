import type { Delivery } from "@tranche/core";
import { MemoryTransport } from "@tranche/memory";
import { Worker } from "@tranche/worker";
import type { TransportBench, TransportBenchSettings, TransportContenders } from "../transport-suite.js";

/** The work both contenders do per batch: nothing but being async, so the figure is the consuming machinery's own cost. */
const handle = async (_payloads: readonly unknown[]): Promise<void> => {};

async function filled(items: number): Promise<MemoryTransport<number>> {
  const transport = new MemoryTransport<number>();
  const payloads = Array.from({ length: items }, (_, i) => i);
  for (let i = 0; i < items; i += 10_000) await transport.sendMany(payloads.slice(i, i + 10_000));
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
        let acked = 0;
        let done!: () => void;
        const finished = new Promise<void>((resolve) => (done = resolve));
        const worker = new Worker<number>(transport, async (requests) => handle(requests.map((r) => r.payload)), {
          flushEvery: batchSize,
          flushInterval: 0,
          maxBuffered: 2 * batchSize,
        });
        worker.on("settled", (event) => {
          acked += event.acked;
          if (acked >= items) done();
        });
        const start = performance.now();
        await worker.start();
        await finished;
        const ms = performance.now() - start;
        await worker.close();
        await transport.close();
        return ms;
      },
      async raw() {
        const transport = await filled(items);
        const signal = new AbortController().signal;
        const start = performance.now();
        for (let acked = 0; acked < items; ) {
          const deliveries: Delivery<number>[] = await transport.receive(batchSize, signal);
          await handle(deliveries.map((d) => d.payload));
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

// A Worker wired to SIGTERM and SIGINT. On the signal it stops receiving, finishes what it
// holds (drain, bounded by a timeout) and exits its loop; what is still queued stays in the
// queue for the next worker. This process sends itself SIGTERM mid-run to show it, then
// starts a second worker (the "restarted" process) and checks that nothing was lost or run twice.
import { Worker } from "@tranche/worker";
import { MemoryTransport } from "@tranche/memory";

const started = Date.now();
const elapsed = () => `${String(Date.now() - started).padStart(5)} ms`;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

const transport = new MemoryTransport<number>();
const handled = new Map<string, number>();

function startWorker(name: string): Worker<number> {
  const worker = new Worker<number>(
    transport,
    async (requests) => {
      await sleep(20); // one round trip per batch to a database, say
      for (const r of requests) handled.set(r.id, (handled.get(r.id) ?? 0) + 1);
      console.log(`${elapsed()}  ${name}: batch of ${requests.length}`);
    },
    { flushEvery: 25, flushInterval: 50, maxBuffered: 100 },
  );
  void worker.start();
  return worker;
}

// The producer: 1000 jobs, 50 every 10 ms.
let sent = 0;
let producing = true;
const producer = (async () => {
  while (producing && sent < 1000) {
    await transport.sendMany(Array.from({ length: 50 }, (_, i) => sent + i));
    sent += 50;
    await sleep(10);
  }
})();

const worker = startWorker("worker 1");

// The wiring a real service needs: one close per process, drain with a timeout, then exit the loop.
let stopping: Promise<void> | undefined;
const shutdown = (signal: NodeJS.Signals) => {
  console.log(`${elapsed()}  ${signal}: draining (at most 5 s)…`);
  stopping ??= worker.close({ drain: true, timeout: 5000 });
};
process.once("SIGTERM", shutdown);
process.once("SIGINT", shutdown);

await sleep(120);
process.kill(process.pid, "SIGTERM");
while (stopping === undefined) await sleep(1);
await stopping;
producing = false;
await producer;
const stats = transport.stats;
console.log(
  `${elapsed()}  worker 1 closed: ${handled.size} jobs done, ${stats.ready} still queued, ${stats.leased} leased, of ${sent} sent`,
);

// The next process starts and takes over what is still queued.
const next = startWorker("worker 2");
while (handled.size < sent) await sleep(10);
await next.close();
await transport.close();

const twice = [...handled.values()].filter((count) => count > 1).length;
console.log(`\n${handled.size} of ${sent} jobs done across both workers, ${twice} run twice, ${transport.stats.ready} left in the queue`);
if (handled.size !== sent || twice > 0 || stats.leased > 0) {
  console.error("unexpected: the drained worker should have let go of everything it held");
  process.exitCode = 1;
}

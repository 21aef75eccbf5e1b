// celery-batches' `flaky_task` on a Worker: a batch handler whose calls to a flaky
// service fail now and then. A temporary failure retries that one item later with the
// same id (celery's `apply_async(countdown=…, task_id=request.id)`); an item that keeps
// failing is dead-lettered after `retry.attempts`; producers await each result by id.
import { Worker } from "@tranche/worker";
import { MemoryResultStore, MemoryTransport } from "@tranche/memory";

interface Job {
  n: number;
}

class TemporaryError extends Error {
  override readonly name = "TemporaryError";
}

// A seeded generator, so every run tells the same story.
let seed = 42;
const random = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);

/** The flaky service: about one call in three fails temporarily; job 13 always does. */
function mightFail(job: Job): number {
  if (job.n === 13 || random() < 0.3) throw new TemporaryError(`service unavailable for job ${job.n}`);
  return job.n * job.n;
}

const ATTEMPTS = 4;
const started = Date.now();
const elapsed = () => `${String(Date.now() - started).padStart(5)} ms`;

const transport = new MemoryTransport<Job>();
const results = new MemoryResultStore<number>();

const worker = new Worker<Job, number>(
  transport,
  async (requests) => {
    console.log(`${elapsed()}  batch of ${requests.length}: ${requests.map((r) => `${r.payload.n}${r.attempt > 1 ? `(try ${r.attempt})` : ""}`).join(" ")}`);
    for (const request of requests) {
      try {
        request.ack(mightFail(request.payload));
      } catch (error) {
        if (!(error instanceof TemporaryError)) throw error;
        // Retry this one item 200 ms from now with the same id; on its last try, dead-letter it
        // with the real reason (a retry() past `attempts` would say RetriesExhaustedError).
        if (request.attempt < ATTEMPTS) request.retry({ delay: 200 });
        else request.fail(error);
      }
    }
  },
  { flushEvery: 10, flushInterval: 100, retry: { attempts: ATTEMPTS }, results },
);
worker.on("deadLetter", ({ id, attempt, reason }) => console.log(`${elapsed()}  dead letter ${id.slice(0, 8)} after ${attempt} tries: ${reason.message}`));
await worker.start();

// The producer: send 30 jobs and wait for each one's own outcome.
const jobs = Array.from({ length: 30 }, (_, n) => ({ n }));
const outcomes = await Promise.all(
  jobs.map(async (job) => {
    const id = await transport.send(job);
    return { job, id, outcome: await results.wait(id, { timeout: 10_000 }) };
  }),
);

await worker.close();
const retried = worker.stats.transport.retried;
await transport.close();

const ok = outcomes.filter((o) => o.outcome.ok);
const failed = outcomes.filter((o) => !o.outcome.ok);
console.log(`\n${ok.length} jobs done, ${failed.length} dead-lettered, ${retried} retries on the way`);
for (const { job, outcome } of failed) if (!outcome.ok) console.log(`job ${job.n}: ${outcome.error.name}: ${outcome.error.message}`);
console.log(`dead letters kept by the transport: ${(await transport.deadLetters()).map((d) => `job ${d.payload?.n} (attempt ${d.attempt})`).join(", ")}`);
if (ok.length + failed.length !== jobs.length || failed.length === 0 || retried === 0) {
  console.error("unexpected: every job should end once, some after a retry, job 13 dead-lettered");
  process.exitCode = 1;
}

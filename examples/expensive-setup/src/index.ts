// One costly setup per batch instead of per item. Each tenant's jobs call a partner API with
// that tenant's own access token, and getting a token is slow and rate-limited (here 150 ms and
// a counter). `groupBy: job => job.tenant` makes every batch one tenant's, so the handler gets
// the token once (context.group tells whose) and spends it on the whole batch. The same shape
// fits a connection pool per database shard or a model loaded per language.
import { MemoryResultStore, MemoryTransport } from "@tranche/memory";
import { Worker } from "@tranche/worker";

interface Job {
  tenant: string;
  invoice: number;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const started = Date.now();
const elapsed = () => `${String(Date.now() - started).padStart(5)} ms`;

/** The costly setup: a fresh access token for one tenant. */
let tokensIssued = 0;
async function accessToken(tenant: string): Promise<string> {
  tokensIssued++;
  await sleep(150);
  return `${tenant}-token-${tokensIssued}`;
}

const transport = new MemoryTransport<Job>();
const results = new MemoryResultStore<string>();
const mixed: string[] = [];

const worker = new Worker<Job, string>(
  transport,
  async (requests, { group, reason }) => {
    const tenant = group!;
    if (requests.some((r) => r.payload.tenant !== tenant)) mixed.push(tenant);
    const token = await accessToken(tenant); // once per batch
    console.log(`${elapsed()}  ${tenant}: batch of ${requests.length} (${reason}) with ${token}`);
    await sleep(20); // one bulk call to the partner API with that token
    return requests.map((r) => `invoice ${r.payload.invoice} sent for ${tenant}`);
  },
  // Two batches at a time, so one tenant's slow token does not hold the others up.
  { flushEvery: 25, flushInterval: 200, concurrency: 2, groupBy: (job) => job.tenant, results },
);
await worker.start();

// 150 jobs from three tenants of different sizes, arriving interleaved.
const tenants = ["acme", "acme", "acme", "globex", "globex", "initech"];
const jobs: Job[] = Array.from({ length: 150 }, (_, i) => ({ tenant: tenants[i % tenants.length]!, invoice: 1000 + i }));
const ids = await transport.sendMany(jobs);
const outcomes = await Promise.all(ids.map((id) => results.wait(id, { timeout: 30_000 })));

await worker.close();
await transport.close();

const done = outcomes.filter((o) => o.ok).length;
console.log(`\n${done} of ${jobs.length} jobs done with ${tokensIssued} access tokens instead of ${jobs.length}; batches mixing tenants: ${mixed.length}`);
if (done !== jobs.length || mixed.length > 0 || tokensIssued >= jobs.length / 10) {
  console.error("unexpected: every job should be done, in one-tenant batches, with a token per batch");
  process.exitCode = 1;
}

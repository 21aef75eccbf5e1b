// Bulk-insert rows into an in-memory "table" through batched(): callers insert
// one row each and await its id; the handler writes whole batches at once.
import { batched } from "@tranche/core";

interface Row {
  user: string;
  amount: number;
}

const table: (Row & { id: number })[] = [];
const started = Date.now();
const elapsed = () => `${String(Date.now() - started).padStart(4)} ms`;

const insert = batched<Row, number>(
  async (requests, { reason }) => {
    console.log(`${elapsed()}  batch of ${requests.length} (${reason})`);
    await new Promise((resolve) => setTimeout(resolve, 5)); // one round trip per batch, not per row
    for (const request of requests) {
      const { user, amount } = request.payload;
      if (amount < 0) {
        // Fails this row alone: the rest of the batch is inserted.
        request.fail(new RangeError(`negative amount for ${user}`));
      } else if (user === "flaky" && request.attempt === 1) {
        // Retried on its own, not before 300 ms from now.
        console.log(`${elapsed()}  flaky row: retry in 300 ms`);
        request.retry({ delay: 300 });
      } else {
        table.push({ id: table.length + 1, user, amount });
        request.ack(table.length);
      }
    }
  },
  { flushEvery: 50, flushInterval: 100, concurrency: 2, retry: { attempts: 3 } },
);

const rows: Row[] = Array.from({ length: 120 }, (_, i) => ({ user: `user${i}`, amount: i }));
rows[7] = { user: "flaky", amount: 7 };
rows[42] = { user: "mallory", amount: -1 };

// 120 rows at once: two full batches ("count") and the rest after 100 ms ("interval").
const outcomes = await Promise.allSettled(rows.map((row) => insert(row)));

// A late row alone waits at most flushInterval.
const late = await insert({ user: "late", amount: 1 });
await insert.close();

const failed = outcomes.flatMap((outcome, i) => (outcome.status === "rejected" ? [`${rows[i]?.user}: ${String(outcome.reason)}`] : []));
console.log(`\ninserted ${table.length} rows (late row got id ${late}); failed: ${failed.join("; ")}`);
const flaky = outcomes[7];
console.log(`flaky row got id ${flaky?.status === "fulfilled" ? flaky.value : "none"} on its second attempt`);
console.log("stats:", JSON.stringify(insert.stats));

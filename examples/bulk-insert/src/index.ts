// Sign-ups inserted into PostgreSQL in one statement per batch, each caller getting its own row's
// id or its own error. The batch is one `INSERT … SELECT FROM unnest(…) ON CONFLICT DO NOTHING
// RETURNING`: a row the table refuses (its email is taken) is simply not returned, so it fails
// alone while the rest of the batch is inserted; rows that could never be inserted are failed
// before the statement; a statement that fails as a whole (the connection dropped) is retried.
//
// DATABASE_URL points it at a server (default postgres://postgres@127.0.0.1:5432/postgres, the
// local server with trust auth). It creates a table of its own and drops it when it ends.
import { batched } from "@tranche/core";
import pg from "pg";

interface SignUp {
  email: string;
  name: string;
}

class DuplicateEmailError extends Error {
  override readonly name = "DuplicateEmailError";
}

const url = process.env.DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/postgres";
const where = new URL(url).host;
const pool = new pg.Pool({ connectionString: url, max: 2, connectionTimeoutMillis: 5000 });
try {
  await pool.query("SELECT 1");
} catch (error) {
  console.error(`no PostgreSQL at ${where} (${(error as Error).message}): run \`docker compose up -d postgres\` from the repository root, or set DATABASE_URL`);
  await pool.end();
  process.exit(1);
}

const table = `tranche_example_signups_${process.pid}`;
await pool.query(`CREATE TABLE ${table} (id bigserial PRIMARY KEY, email text NOT NULL UNIQUE, name text NOT NULL)`);

let statements = 0;
const signUp = batched<SignUp, number>(
  async (requests, { reason }) => {
    // Rows that would break the statement, or that would hide behind a twin in the same batch,
    // fail here, one by one; only the rest go to the database.
    const rows: typeof requests = [];
    const inBatch = new Set<string>();
    for (const request of requests) {
      const { email } = request.payload;
      if (!/^[^@\s]+@[^@\s]+$/.test(email)) request.fail(new RangeError(`not an email address: ${JSON.stringify(email)}`));
      else if (inBatch.has(email)) request.fail(new DuplicateEmailError(`${email} is already registered`));
      else {
        inBatch.add(email);
        rows.push(request);
      }
    }
    // One statement for the whole batch. If it throws, the unsettled requests are retried (below).
    const { rows: inserted } = await pool.query<{ id: string; email: string }>(
      `INSERT INTO ${table} (email, name) SELECT * FROM unnest($1::text[], $2::text[])
       ON CONFLICT (email) DO NOTHING RETURNING id, email`,
      [rows.map((r) => r.payload.email), rows.map((r) => r.payload.name)],
    );
    statements++;
    const ids = new Map(inserted.map((row) => [row.email, Number(row.id)]));
    for (const request of rows) {
      const id = ids.get(request.payload.email);
      if (id !== undefined) request.ack(id);
      else request.fail(new DuplicateEmailError(`${request.payload.email} is already registered`));
    }
    console.log(`batch of ${requests.length} (${reason}): ${inserted.length} inserted in one INSERT, ${requests.length - inserted.length} refused`);
  },
  { flushEvery: 500, flushInterval: 50, concurrency: 2, retry: { attempts: 3, backoff: { type: "exponential", delay: 200 } } },
);

try {
  // 2,000 sign-ups from concurrent requests: every 100th address is malformed, every 37th signs up
  // with an address someone else used a moment before.
  const signUps: SignUp[] = Array.from({ length: 2000 }, (_, i) => ({
    email: i % 100 === 99 ? `user${i}.example.com` : i % 37 === 36 ? `user${i - 1}@example.com` : `user${i}@example.com`,
    name: `User ${i}`,
  }));
  const outcomes = await Promise.allSettled(signUps.map((s) => signUp(s)));
  await signUp.close();

  const ok = outcomes.filter((o) => o.status === "fulfilled").length;
  const failed = outcomes.flatMap((o) => (o.status === "rejected" ? [(o.reason as Error).name] : []));
  const { rows } = await pool.query<{ count: string }>(`SELECT count(*) FROM ${table}`);
  console.log(`\n${signUps.length} sign-ups in ${statements} statements: ${ok} inserted (${rows[0]?.count} rows in the table), failed: ${countBy(failed)}`);
  const first = outcomes[0];
  console.log(`the first caller got its row's id: ${first?.status === "fulfilled" ? first.value : "none"}`);
  if (Number(rows[0]?.count) !== ok || failed.length === 0) {
    console.error("unexpected: every acked sign-up should be one row, and the bad ones should have failed");
    process.exitCode = 1;
  }
} finally {
  await pool.query(`DROP TABLE IF EXISTS ${table}`);
  await pool.end();
}

/** "3 RangeError, 54 DuplicateEmailError". */
function countBy(names: string[]): string {
  const counts = new Map<string, number>();
  for (const n of names) counts.set(n, (counts.get(n) ?? 0) + 1);
  return [...counts].map(([n, c]) => `${c} ${n}`).join(", ");
}

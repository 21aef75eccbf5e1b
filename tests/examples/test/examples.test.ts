// Every example runs as a newcomer runs it, `pnpm --filter <example> start`, and exits 0: it
// builds what it uses, finds (or starts) the server it needs, checks its own outcome and removes
// what it created. Those that need a server use this machine's: PostgreSQL on 5432, Redis on
// 6379, NATS on 4222, RabbitMQ on 5672 (DATABASE_URL, REDIS_URL, NATS_URL, AMQP_URL override).
import { spawn } from "node:child_process";
import { readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { expect, it } from "vitest";

const root = fileURLToPath(new URL("../../..", import.meta.url));
const examples = readdirSync(join(root, "examples"), { withFileTypes: true })
  .filter((entry) => entry.isDirectory())
  .map((entry) => JSON.parse(readFileSync(join(root, "examples", entry.name, "package.json"), "utf8")).name as string)
  .sort();

/** Longest run of one example, its build on a fresh clone included. */
const TIMEOUT = 240_000;

it("finds the examples", () => {
  expect(examples).toEqual(expect.arrayContaining(["@tranche/examples-quickstart", "@tranche/examples-bulk-insert", "@tranche/examples-click-counter"]));
});

it.each(examples)("pnpm --filter %s start exits 0", async (name) => {
  const { code, signal, output } = await new Promise<{ code: number | null; signal: NodeJS.Signals | null; output: string }>((resolve) => {
    const child = spawn("pnpm", ["--filter", name, "start"], { cwd: root, stdio: ["ignore", "pipe", "pipe"], detached: true });
    let output = "";
    child.stdout.on("data", (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on("data", (chunk: Buffer) => (output += chunk.toString()));
    // Kill the example's whole process group if it hangs, so the run goes on.
    const timer = setTimeout(() => process.kill(-child.pid!, "SIGKILL"), TIMEOUT - 10_000);
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, output });
    });
  });
  expect({ code, signal }, output).toEqual({ code: 0, signal: null });
  expect(output, "an example explains itself instead of crashing").not.toMatch(/^\s+at .+:\d+:\d+\)?$/m);
}, TIMEOUT);

import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { createInterface } from "node:readline";

const fixture = fileURLToPath(new URL("../fixtures/worker.mjs", import.meta.url));
const built = fileURLToPath(new URL("../../dist/index.js", import.meta.url));

export interface WorkerConfig {
  endpoint: string;
  queueUrl: string;
  deadLetterQueueUrl?: string;
  /** "<id> <attempt> <outcome> <t>" lines of what ran (see the fixture). */
  out?: string;
  /** The chaos run: `ChaosEvent` lines of runs and confirmed outcomes; items with `retryOnce` retry once after `retryDelay` ms. */
  events?: string;
  retryDelay?: number;
  /** Results to a `RedisResultStore` on this server, under `resultPrefix`. */
  redisUrl?: string;
  resultPrefix?: string;
  visibilityTimeout?: number;
  flushEvery?: number;
  flushInterval?: number;
  concurrency?: number;
  lease?: number;
  handlerDelay?: number;
  maxReceive?: number;
  retryWhen?: { every: number; rest: number; delay: number };
}

/** A worker process (test/fixtures/worker.mjs) and the lines it printed. */
export class WorkerProcess {
  readonly child: ChildProcess;
  readonly lines: string[] = [];
  readonly exited: Promise<number | null>;
  #waiters: { test: (line: string) => boolean; resolve: (line: string) => void; reject: (error: Error) => void }[] = [];

  constructor(config: WorkerConfig) {
    if (!existsSync(built)) throw new Error("[tranche/sqs] the fault tests run the built package: pnpm --filter @tranche/sqs build");
    this.child = spawn(process.execPath, [fixture], {
      env: { ...process.env, TRANCHE_SQS_WORKER: JSON.stringify(config), NODE_NO_WARNINGS: "1" },
      stdio: ["ignore", "pipe", "inherit"],
    });
    live.add(this.child);
    this.exited = new Promise((resolve) =>
      this.child.on("exit", (code, signal) => {
        live.delete(this.child);
        // Nothing more will be printed: fail whoever waits for a line, at once.
        for (const w of this.#waiters) w.reject(new Error(`worker process exited (${code ?? signal}); last lines: ${this.lines.slice(-3).join(" | ")}`));
        this.#waiters = [];
        resolve(code);
      }),
    );
    createInterface({ input: this.child.stdout! }).on("line", (line) => {
      this.lines.push(line);
      this.#waiters = this.#waiters.filter((w) => (w.test(line) ? (w.resolve(line), false) : true));
    });
  }

  /** Resolves with the first line (printed so far or later) that passes `test`. */
  waitFor(test: (line: string) => boolean, timeout = 30_000): Promise<string> {
    const seen = this.lines.find(test);
    if (seen !== undefined) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no matching line within ${timeout} ms; last: ${this.lines.slice(-3).join(" | ")}`)), timeout);
      this.#waiters.push({ test, resolve: (line) => (clearTimeout(timer), resolve(line)), reject: (error) => (clearTimeout(timer), reject(error)) });
    });
  }

  errors(): string[] {
    return this.lines.filter((l) => l.startsWith("error "));
  }

  /** SIGTERM: the worker drains and exits. */
  async stop(): Promise<number | null> {
    this.child.kill("SIGTERM");
    return this.exited;
  }
}

const live = new Set<ChildProcess>();
process.on("exit", () => {
  for (const child of live) child.kill("SIGKILL");
});

/** Kills every worker process still running (afterAll). */
export function killAll(): void {
  for (const child of live) child.kill("SIGKILL");
}

/** Lines of a worker's `out` file: "<id> <attempt> <outcome> <epoch ms, fractional>". */
export function records(file: string): { id: string; attempt: number; outcome: string; t: number }[] {
  if (!existsSync(file)) return [];
  return readFileSync(file, "utf8")
    .split("\n")
    .filter(Boolean)
    .map((line) => {
      const [id, attempt, outcome, t] = line.split(" ");
      return { id: id as string, attempt: Number(attempt), outcome: outcome as string, t: Number(t) };
    });
}

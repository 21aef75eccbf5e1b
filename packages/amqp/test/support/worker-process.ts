import { spawn, type ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";

const FIXTURE = fileURLToPath(new URL("../fixtures/worker.mjs", import.meta.url));
const live = new Set<ChildProcess>();
process.once("exit", () => {
  for (const child of live) child.kill("SIGKILL");
});

/** One worker process running test/fixtures/worker.mjs, with what it printed so far. */
export class WorkerProcess {
  readonly child: ChildProcess;
  /** Items this process finished, in order, with the time the test saw the line. */
  readonly done: { id: string; attempt: number; at: number }[] = [];
  readonly dead: string[] = [];
  /** Ids of items whose `deadLetter` call failed (its letter may be written all the same). */
  readonly deadFailed: string[] = [];
  readonly errors: string[] = [];
  starts = 0;
  /** The handler of its current batch printed "stalled" (after a SIGUSR2) and never returns. */
  stalled = false;
  #buffer = "";
  #waiters: (() => void)[] = [];
  readonly exited: Promise<void>;

  constructor(env: Record<string, string>) {
    this.child = spawn(process.execPath, [FIXTURE], { env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
    live.add(this.child);
    this.exited = new Promise((resolve) =>
      this.child.once("exit", () => {
        live.delete(this.child);
        resolve();
      }),
    );
    this.child.stdout!.on("data", (chunk: Buffer) => this.#read(chunk.toString()));
    this.child.stderr!.on("data", (chunk: Buffer) => this.errors.push(chunk.toString()));
  }

  #read(text: string): void {
    this.#buffer += text;
    let end: number;
    while ((end = this.#buffer.indexOf("\n")) >= 0) {
      const line = this.#buffer.slice(0, end);
      this.#buffer = this.#buffer.slice(end + 1);
      const [kind, ...rest] = line.split(" ");
      if (kind === "start") this.starts++;
      else if (kind === "stalled") this.stalled = true;
      else if (kind === "done") {
        for (const pair of rest) {
          const at = pair.lastIndexOf(":");
          this.done.push({ id: pair.slice(0, at), attempt: Number(pair.slice(at + 1)), at: Date.now() });
        }
      } else if (kind === "dead") this.dead.push(rest.join(" "));
      else if (kind === "dead-failed") this.deadFailed.push(rest.join(" "));
      else if (kind === "error") this.errors.push(rest.join(" "));
    }
    for (const wake of this.#waiters.splice(0)) wake();
  }

  /** Resolves once `predicate` holds for this process's output (checked after each chunk). */
  async until(predicate: (p: WorkerProcess) => boolean, timeout: number, what: string): Promise<void> {
    const deadline = Date.now() + timeout;
    while (!predicate(this)) {
      if (this.child.exitCode !== null) throw new Error(`worker exited (${this.child.exitCode}) before ${what}: ${this.errors.join("")}`);
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; errors: ${this.errors.slice(-5).join(" | ")}`);
      await new Promise<void>((resolve) => {
        this.#waiters.push(resolve);
        setTimeout(resolve, 100);
      });
    }
  }

  kill(signal: NodeJS.Signals): void {
    this.child.kill(signal);
  }

  /** SIGTERM (close, draining unless DRAIN=false), then SIGKILL if it does not exit within 20 s. */
  async stop(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    this.child.kill("SIGTERM");
    const timer = setTimeout(() => this.child.kill("SIGKILL"), 20_000);
    await this.exited;
    clearTimeout(timer);
  }
}

/** Waits until `check` is true, polling every 100 ms. */
export async function eventually(check: () => boolean | Promise<boolean>, timeout: number, what: string): Promise<void> {
  const deadline = Date.now() + timeout;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

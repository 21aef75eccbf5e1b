import { spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

const fixture = fileURLToPath(new URL("../fixtures/worker.mjs", import.meta.url));
const children = new Set<ChildProcess>();
process.once("exit", () => {
  for (const child of children) child.kill("SIGKILL");
});

/** A worker process (test/fixtures/worker.mjs) and what it has said on stdout so far. */
export interface WorkerProcess {
  readonly child: ChildProcess;
  readonly out: string;
  batches: number;
  errors: string[];
  /** Resolves when the process has printed `line` (a line starting with it). */
  said(prefix: string, timeout?: number): Promise<void>;
  /** Resolves with the exit code or signal. */
  readonly exited: Promise<number | string>;
}

export function spawnWorker(env: Record<string, string>): WorkerProcess {
  const child = spawn(process.execPath, [fixture], { env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
  children.add(child);
  const lines: string[] = [];
  const listeners = new Set<() => void>();
  let stderr = "";
  const p: WorkerProcess = {
    child,
    out: env.OUT!,
    batches: 0,
    errors: [],
    said(prefix, timeout = 30_000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          if (lines.some((line) => line.startsWith(prefix))) {
            listeners.delete(check);
            clearTimeout(timer);
            resolve();
          }
        };
        const timer = setTimeout(() => {
          listeners.delete(check);
          reject(new Error(`worker ${env.CONSUMER} did not say "${prefix}" within ${timeout} ms; stderr: ${stderr.slice(-2000)}`));
        }, timeout);
        listeners.add(check);
        check();
      });
    },
    exited: new Promise((resolve) =>
      child.once("exit", (code, signal) => {
        children.delete(child);
        resolve(code ?? signal ?? "?");
      }),
    ),
  };
  let buffer = "";
  child.stdout!.on("data", (chunk: Buffer) => {
    buffer += chunk.toString();
    const parts = buffer.split("\n");
    buffer = parts.pop()!;
    for (const line of parts) {
      lines.push(line);
      if (line.startsWith("batch ")) p.batches++;
      if (line.startsWith("error ")) p.errors.push(line.slice(6));
    }
    for (const listener of [...listeners]) listener();
  });
  child.stderr!.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
  return p;
}

/** Stops a worker process gracefully (SIGTERM) and waits for it. */
export async function stopWorker(p: WorkerProcess): Promise<void> {
  if (p.child.exitCode !== null || p.child.signalCode !== null) return;
  p.child.kill("SIGTERM");
  const timer = setTimeout(() => p.child.kill("SIGKILL"), 15_000);
  await p.exited;
  clearTimeout(timer);
}

/** How many times each item id was processed, over the OUT files of several processes. */
export function processedCounts(files: string[]): Map<string, number> {
  const counts = new Map<string, number>();
  for (const file of files) {
    let text = "";
    try {
      text = readFileSync(file, "utf8");
    } catch {
      continue;
    }
    for (const id of text.split("\n")) if (id !== "") counts.set(id, (counts.get(id) ?? 0) + 1);
  }
  return counts;
}

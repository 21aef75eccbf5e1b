import { spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

const fixtures = fileURLToPath(new URL("../fixtures/", import.meta.url));
const children = new Set<ChildProcess>();
process.once("exit", () => {
  for (const child of children) child.kill("SIGKILL");
});

/** A worker process (test/fixtures/worker.mjs, or another fixture) and what it has said on stdout so far. */
export interface WorkerProcess {
  readonly child: ChildProcess;
  readonly out: string;
  /** Every line it has printed. */
  readonly lines: string[];
  batches: number;
  errors: string[];
  /** Resolves when the process has printed `line` (a line starting with it). */
  said(prefix: string, timeout?: number): Promise<void>;
  /** Resolves with the exit code or signal. */
  readonly exited: Promise<number | string>;
}

export function spawnWorker(env: Record<string, string>, fixture = "worker.mjs"): WorkerProcess {
  const child = spawn(process.execPath, [fixtures + fixture], { env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
  children.add(child);
  const lines: string[] = [];
  const listeners = new Set<() => void>();
  let stderr = "";
  const p: WorkerProcess = {
    child,
    out: env.OUT!,
    lines,
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
          reject(new Error(`${fixture} ${env.CONSUMER ?? ""} did not say "${prefix}" within ${timeout} ms; stderr: ${stderr.slice(-2000)}`));
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

/** The text of each file that exists yet. */
function texts(files: string[]): string[] {
  return files.flatMap((file) => {
    try {
      return [readFileSync(file, "utf8")];
    } catch {
      return [];
    }
  });
}

/** How many times each item id was processed, over the OUT files of several processes. */
export function processedCounts(files: string[]): Map<string, number> {
  const counts = new Map<string, number>();
  for (const text of texts(files)) for (const id of text.split("\n")) if (id !== "") counts.set(id, (counts.get(id) ?? 0) + 1);
  return counts;
}

/** Handler runs recorded so far in chaos event files (a cheap count, for the fault triggers). */
export function runsRecorded(files: string[]): number {
  let runs = 0;
  for (const text of texts(files)) for (let at = text.indexOf('"e":"run"'); at !== -1; at = text.indexOf('"e":"run"', at + 1)) runs++;
  return runs;
}

import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";

/** The built `tranche` command: the tests run it as a user does, in a process of its own. */
export const CLI = fileURLToPath(new URL("../../dist/cli.js", import.meta.url));

/** Variables that would pick a broker for the CLI: the tests set them only on purpose. */
const BROKER_ENV = ["REDIS_URL", "SQS_QUEUE_URL", "SQS_DLQ_URL", "SQS_ENDPOINT", "NATS_URL", "AMQP_URL", "TRANCHE_STREAM", "TRANCHE_QUEUE"];

export interface Ran {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
  /** Wall time of the run, ms. */
  readonly took: number;
}

/** Runs `tranche ...args` with stdin not a terminal; resolves when it exits (fails after `timeout`). */
export function tranche(args: readonly string[], options: { env?: Record<string, string>; input?: string; timeout?: number } = {}): Promise<Ran> {
  const env: Record<string, string | undefined> = { ...process.env, NO_COLOR: "1" };
  for (const name of BROKER_ENV) delete env[name];
  Object.assign(env, options.env);
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], { env, stdio: ["pipe", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`tranche ${args.join(" ")} did not exit within ${options.timeout ?? 30_000} ms\nstdout: ${stdout}\nstderr: ${stderr}`));
    }, options.timeout ?? 30_000);
    child.on("error", reject);
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr, took: Date.now() - started });
    });
    child.stdin.end(options.input ?? "");
  });
}

/** The JSON a `--json` run printed. */
export function json<T = any>(ran: Ran): T {
  if (ran.code !== 0) throw new Error(`exit ${ran.code}: ${ran.stderr}`);
  return JSON.parse(ran.stdout) as T;
}

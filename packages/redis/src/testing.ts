import { spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** A `redis-server` process this module started, on 127.0.0.1 with its own port and directory. */
export interface RedisServer {
  readonly url: string;
  readonly port: number;
  /** Working directory (AOF and RDB files). */
  readonly dir: string;
  /** SIGTERM (a clean shutdown that flushes the AOF) and wait for exit. */
  stop(): Promise<void>;
  /** SIGKILL and wait for exit. */
  kill(): Promise<void>;
  /** Start again on the same port and directory after `stop` or `kill`; resolves once it accepts connections. */
  restart(): Promise<void>;
  /** Stop and delete the directory. */
  close(): Promise<void>;
}

export interface StartRedisServerOptions {
  /** Persist every write before replying (`appendonly yes`, `appendfsync always`). @default false (no persistence) */
  durable?: boolean;
  /** Port to listen on. @default a free port */
  port?: number;
  /** The binary. @default `REDIS_SERVER_BIN`, else `redis-server` on the PATH */
  bin?: string;
}

const running = new Set<ChildProcess>();
let exitHookInstalled = false;

/** A free TCP port on 127.0.0.1 (free when asked; another process could take it before use). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

/**
 * Starts a `redis-server` for tests and benchmarks. It is killed when this process exits. Fails
 * with install instructions when the binary is missing.
 */
export async function startRedisServer(options: StartRedisServerOptions = {}): Promise<RedisServer> {
  const bin = options.bin ?? process.env.REDIS_SERVER_BIN ?? "redis-server";
  const port = options.port ?? (await freePort());
  const dir = mkdtempSync(join(tmpdir(), "tranche-redis-"));
  const args = ["--port", String(port), "--bind", "127.0.0.1", "--dir", dir, "--save", "", "--maxmemory-policy", "noeviction"];
  args.push(...(options.durable ? ["--appendonly", "yes", "--appendfsync", "always"] : ["--appendonly", "no"]));
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.once("exit", () => {
      for (const child of running) child.kill("SIGKILL");
    });
  }
  let child: ChildProcess | undefined;
  const start = async (): Promise<void> => {
    child = await spawnServer(bin, args);
  };
  const exit = async (signal: NodeJS.Signals): Promise<void> => {
    const c = child;
    if (c === undefined || c.exitCode !== null || c.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => c.once("exit", () => resolve()));
    c.kill(signal);
    await exited;
  };
  await start();
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    dir,
    stop: () => exit("SIGTERM"),
    kill: () => exit("SIGKILL"),
    restart: start,
    async close() {
      await exit("SIGKILL");
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

function spawnServer(bin: string, args: string[]): Promise<ChildProcess> {
  return new Promise((resolve, reject) => {
    const child = spawn(bin, args, { stdio: ["ignore", "pipe", "pipe"] });
    running.add(child);
    let output = "";
    const onData = (chunk: Buffer): void => {
      output += chunk.toString();
      if (output.includes("Ready to accept connections")) {
        child.stdout!.off("data", onData);
        child.stdout!.resume();
        resolve(child);
      }
    };
    child.stdout!.on("data", onData);
    child.stderr!.on("data", (chunk: Buffer) => (output += chunk.toString()));
    child.once("exit", (code, signal) => {
      running.delete(child);
      reject(new Error(`[tranche/redis] redis-server exited (${code ?? signal}) before it was ready:\n${output.slice(-2000)}`));
    });
    child.once("error", (error: NodeJS.ErrnoException) => {
      running.delete(child);
      reject(
        error.code === "ENOENT"
          ? new Error(
              `[tranche/redis] \`${bin}\` not found. Install Redis ≥ 7.0 (Debian/Ubuntu: \`apt-get install redis-server\`; macOS: \`brew install redis\`), ` +
                "set REDIS_SERVER_BIN to its path, or set REDIS_URL to use a running server.",
            )
          : error,
      );
    });
  });
}

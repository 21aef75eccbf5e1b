import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, realpathSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { basename, delimiter, dirname, join } from "node:path";
import { connect, type ChannelModel } from "amqplib";
import { count, Header } from "./headers.js";

/** A RabbitMQ node of its own, on free local ports, with its data in a temporary directory. */
export interface RabbitNode {
  /** `amqp://guest:guest@127.0.0.1:<port>`. */
  readonly url: string;
  readonly port: number;
  /** Erlang node name, e.g. `tranche-1234-0@localhost`. */
  readonly nodeName: string;
  /** The node's directory (data, logs, config); kept across `stop()`/`start()`, removed by `close()`. */
  readonly dir: string;
  /** Stops the node gracefully (SIGTERM; SIGKILL after 30 s); its durable queues and persistent messages stay. */
  stop(): Promise<void>;
  /** Kills the node at once (SIGKILL): a crash. Durable queues and confirmed messages survive. */
  kill(): Promise<void>;
  /** Starts it again on the same ports and data. */
  start(): Promise<void>;
  /** Stops the node and removes its directory. */
  close(): Promise<void>;
}

const INSTALL_HINT =
  "rabbitmq-server was not found. Install it (`apt-get install rabbitmq-server` on Debian/Ubuntu, " +
  "`brew install rabbitmq` on macOS), set RABBITMQ_SERVER_BIN to its path, or set AMQP_URL to use a running broker " +
  "(the fault tests need the binary: they stop and restart their own node).";

/**
 * Path of the `rabbitmq-server` script: `RABBITMQ_SERVER_BIN`, else the first on PATH, in
 * /usr/sbin or in /usr/lib/rabbitmq/bin. Debian's /usr/sbin one is a wrapper that switches to the
 * rabbitmq user; the script beside the wrapper's target is used instead, so the node runs as the
 * caller with its files in a directory the caller owns.
 */
export function findRabbitmqServer(): string {
  const fromEnv = process.env.RABBITMQ_SERVER_BIN;
  if (fromEnv !== undefined && fromEnv !== "") {
    if (!existsSync(fromEnv)) throw new Error(`[tranche/amqp] RABBITMQ_SERVER_BIN=${fromEnv} does not exist. ${INSTALL_HINT}`);
    return fromEnv;
  }
  const dirs = [...(process.env.PATH ?? "").split(delimiter), "/usr/sbin", "/usr/local/sbin", "/usr/lib/rabbitmq/bin"];
  for (const dir of dirs) {
    const candidate = join(dir, "rabbitmq-server");
    if (dir === "" || !existsSync(candidate)) continue;
    const real = realpathSync(candidate);
    if (basename(real) === "rabbitmq-script-wrapper" && existsSync(join(dirname(real), "rabbitmq-server"))) return join(dirname(real), "rabbitmq-server");
    return real;
  }
  throw new Error(`[tranche/amqp] ${INSTALL_HINT}`);
}

/** A TCP port that was free a moment ago. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      server.close(() => (typeof address === "object" && address !== null ? resolve(address.port) : reject(new Error("no port"))));
    });
  });
}

const running = new Set<ChildProcess>();
let exitHookInstalled = false;
let nodes = 0;

function killGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  try {
    if (child.pid !== undefined) process.kill(-child.pid, signal);
  } catch {
    // Already gone.
  }
}

function killAllOnExit(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  // A test runner that dies mid-run must not leave nodes behind.
  process.once("exit", () => {
    for (const child of running) killGroup(child, "SIGKILL");
  });
}

/** Opens an AMQP connection to `url`, or fails fast. */
async function tryConnect(url: string): Promise<ChannelModel | undefined> {
  try {
    return await connect(url, { timeout: 2_000 });
  } catch {
    return undefined;
  }
}

/**
 * Starts a RabbitMQ node of its own (no plugins) on a free AMQP port and a free distribution
 * port, with its data, logs and Erlang cookie in a temporary directory, and resolves once it
 * accepts AMQP connections (a few seconds). `epmd` must be running or startable. Fails with
 * install instructions when the binary is missing.
 */
export async function startRabbitNode(options: { startTimeout?: number } = {}): Promise<RabbitNode> {
  const bin = findRabbitmqServer();
  const port = await freePort();
  const distPort = await freePort();
  const dir = mkdtempSync(join(tmpdir(), "tranche-rabbit-"));
  const nodeName = `tranche-${process.pid}-${nodes++}@localhost`;
  for (const sub of ["mnesia", "log", "home"]) mkdirSync(join(dir, sub), { recursive: true });
  writeFileSync(join(dir, "rabbitmq.conf"), [`listeners.tcp.default = 127.0.0.1:${port}`, "loopback_users = none", "log.console = false", ""].join("\n"));
  writeFileSync(join(dir, "enabled_plugins"), "[].\n");
  writeFileSync(join(dir, "rabbitmq-env.conf"), "");
  const env = {
    ...process.env,
    HOME: join(dir, "home"),
    RABBITMQ_NODENAME: nodeName,
    RABBITMQ_NODE_IP_ADDRESS: "127.0.0.1",
    RABBITMQ_NODE_PORT: String(port),
    RABBITMQ_DIST_PORT: String(distPort),
    RABBITMQ_MNESIA_BASE: join(dir, "mnesia"),
    RABBITMQ_LOG_BASE: join(dir, "log"),
    RABBITMQ_CONFIG_FILE: join(dir, "rabbitmq.conf"),
    RABBITMQ_ENABLED_PLUGINS_FILE: join(dir, "enabled_plugins"),
    RABBITMQ_CONF_ENV_FILE: join(dir, "rabbitmq-env.conf"),
    RABBITMQ_PID_FILE: join(dir, "rabbit.pid"),
    ERL_EPMD_ADDRESS: "127.0.0.1",
  };
  const url = `amqp://guest:guest@127.0.0.1:${port}`;
  const startTimeout = options.startTimeout ?? 90_000;
  killAllOnExit();
  let child: ChildProcess | undefined;

  async function start(): Promise<void> {
    if (child !== undefined) return;
    // Its own process group, so `kill()` takes the Erlang VM with the script that started it.
    const proc = spawn(bin, [], { env, stdio: ["ignore", "pipe", "pipe"], detached: true });
    child = proc;
    running.add(proc);
    let log = "";
    const keep = (chunk: Buffer): void => {
      if (log.length < 20_000) log += chunk.toString();
    };
    proc.stdout?.on("data", keep);
    proc.stderr?.on("data", keep);
    proc.once("exit", () => {
      running.delete(proc);
      if (child === proc) child = undefined;
    });
    const deadline = Date.now() + startTimeout;
    for (;;) {
      if (proc.exitCode !== null || proc.signalCode !== null) throw new Error(`[tranche/amqp] rabbitmq-server exited at start:\n${log}`);
      const probe = await tryConnect(url);
      if (probe !== undefined) {
        await probe.close().catch(() => {});
        return;
      }
      if (Date.now() > deadline) {
        killGroup(proc, "SIGKILL");
        throw new Error(`[tranche/amqp] RabbitMQ did not accept connections on ${port} within ${startTimeout} ms:\n${log}`);
      }
      await new Promise((r) => setTimeout(r, 200));
    }
  }

  async function halt(signal: "SIGTERM" | "SIGKILL"): Promise<void> {
    const proc = child;
    if (proc === undefined) return;
    const exited = new Promise<void>((resolve) => proc.once("exit", () => resolve()));
    // SIGTERM to the script stops the node gracefully; SIGKILL to the group is a crash.
    if (signal === "SIGTERM") proc.kill("SIGTERM");
    else killGroup(proc, "SIGKILL");
    const timer = setTimeout(() => killGroup(proc, "SIGKILL"), 30_000);
    await exited;
    clearTimeout(timer);
    if (signal === "SIGKILL") killGroup(proc, "SIGKILL");
  }

  await start();
  return {
    url,
    port,
    nodeName,
    dir,
    start,
    stop: () => halt("SIGTERM"),
    kill: () => halt("SIGKILL"),
    async close() {
      await halt("SIGTERM");
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** One dead letter as `AmqpTransport.deadLetter` wrote it. */
export interface AmqpDeadLetter {
  readonly id: string;
  /** The message's original bytes. */
  readonly raw: Buffer;
  readonly reason: string;
  readonly errorName: string;
  readonly attempt: number;
  readonly retries: number;
  /** Queue the item was consumed from. */
  readonly queue: string;
}

/**
 * Reads every dead letter of `deadLetterQueue` without removing it (they are fetched unacked and
 * put back when the channel closes). For tests and inspection.
 */
export async function readDeadLetters(url: string, deadLetterQueue: string): Promise<AmqpDeadLetter[]> {
  const connection = await connect(url);
  try {
    const channel = await connection.createChannel();
    const letters: AmqpDeadLetter[] = [];
    for (;;) {
      const message = await channel.get(deadLetterQueue, { noAck: false });
      if (message === false) break;
      const h = message.properties.headers ?? {};
      letters.push({
        id: String(message.properties.messageId ?? ""),
        raw: message.content,
        reason: String(h[Header.reason] ?? ""),
        errorName: String(h[Header.errorName] ?? ""),
        attempt: count(h[Header.attempt]) ?? 0,
        retries: count(h[Header.retries]) ?? 0,
        queue: String(h[Header.queue] ?? ""),
      });
    }
    await channel.close();
    return letters;
  } finally {
    await connection.close().catch(() => {});
  }
}

/** Messages ready in each queue (0 for a queue that does not exist). */
export async function queueDepths(url: string, queues: readonly string[]): Promise<Map<string, number>> {
  const connection = await connect(url);
  const depths = new Map<string, number>();
  try {
    for (const queue of queues) {
      const channel = await connection.createChannel();
      channel.on("error", () => {});
      depths.set(queue, await channel.checkQueue(queue).then((q) => q.messageCount, () => 0));
      await channel.close().catch(() => {});
    }
    return depths;
  } finally {
    await connection.close().catch(() => {});
  }
}

/** Deletes queues (missing ones are skipped): what a test made on a shared broker. */
export async function deleteQueues(url: string, queues: Iterable<string>): Promise<void> {
  const connection = await connect(url);
  try {
    const channel = await connection.createChannel();
    for (const queue of new Set(queues)) await channel.deleteQueue(queue);
    await channel.close();
  } finally {
    await connection.close().catch(() => {});
  }
}

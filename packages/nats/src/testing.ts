import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { createServer, connect as tcpConnect } from "node:net";
import { tmpdir } from "node:os";
import { delimiter, join } from "node:path";
import { jetstreamManager, type MsgRequest } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import { Header } from "./headers.js";
import { readAll } from "./pull.js";

/** A `nats-server -js` child process on a free local port, with its own store directory. */
export interface NatsServer {
  /** `nats://127.0.0.1:<port>`. */
  readonly url: string;
  readonly port: number;
  /** The JetStream store directory (`-sd`); kept across `stop()`/`start()`, removed by `close()`. */
  readonly storeDir: string;
  /** Stops the server (SIGTERM, then SIGKILL after 5 s); its data stays in `storeDir`. */
  stop(): Promise<void>;
  /** Kills the server (SIGKILL: no state is flushed, as in a crash); its data stays in `storeDir`. */
  kill(): Promise<void>;
  /** Starts it again on the same port and store directory. */
  start(): Promise<void>;
  /** Stops the server and removes `storeDir`. */
  close(): Promise<void>;
}

export interface StartNatsServerOptions {
  /** Port to listen on. @default a free port */
  port?: number;
  /** Store directory. @default a new temporary directory */
  storeDir?: string;
}

const INSTALL_HINT =
  "nats-server was not found. Install it (`apt-get install nats-server`, or a release from " +
  "https://github.com/nats-io/nats-server/releases), set NATS_SERVER_BIN to its path, " +
  "or set NATS_URL to use a running `nats-server -js`.";

/** Path of the nats-server binary: `NATS_SERVER_BIN`, else the first `nats-server` on PATH or in /usr/sbin. */
export function findNatsServer(): string {
  const fromEnv = process.env.NATS_SERVER_BIN;
  if (fromEnv !== undefined && fromEnv !== "") {
    if (!existsSync(fromEnv)) throw new Error(`[tranche/nats] NATS_SERVER_BIN=${fromEnv} does not exist. ${INSTALL_HINT}`);
    return fromEnv;
  }
  const dirs = [...(process.env.PATH ?? "").split(delimiter), "/usr/sbin", "/usr/local/sbin"];
  for (const dir of dirs) {
    const candidate = join(dir, "nats-server");
    if (dir !== "" && existsSync(candidate)) return candidate;
  }
  throw new Error(`[tranche/nats] ${INSTALL_HINT}`);
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

function killAllOnExit(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  // A test runner that dies mid-run must not leave servers behind.
  process.once("exit", () => {
    for (const child of running) child.kill("SIGKILL");
  });
}

/**
 * Starts `nats-server -js` on 127.0.0.1 with file storage in a temporary directory and resolves
 * once it accepts connections. Fails with install instructions when the binary is missing.
 */
export async function startNatsServer(options: StartNatsServerOptions = {}): Promise<NatsServer> {
  const bin = findNatsServer();
  const port = options.port ?? (await freePort());
  const storeDir = options.storeDir ?? mkdtempSync(join(tmpdir(), "tranche-nats-"));
  killAllOnExit();
  let child: ChildProcess | undefined;

  async function start(): Promise<void> {
    if (child !== undefined) return;
    const proc = spawn(bin, ["-js", "-a", "127.0.0.1", "-p", String(port), "-sd", storeDir], { stdio: ["ignore", "ignore", "pipe"] });
    child = proc;
    running.add(proc);
    let log = "";
    proc.stderr?.on("data", (chunk: Buffer) => {
      if (log.length < 20_000) log += chunk.toString();
    });
    proc.once("exit", () => {
      running.delete(proc);
      if (child === proc) child = undefined;
    });
    const deadline = Date.now() + 30_000;
    // "Server is ready" is logged once JetStream is up, after the port opens.
    while (!log.includes("Server is ready") || !(await accepts(port))) {
      if (proc.exitCode !== null || proc.signalCode !== null) throw new Error(`[tranche/nats] nats-server exited at start:\n${log}`);
      if (Date.now() > deadline) {
        proc.kill("SIGKILL");
        throw new Error(`[tranche/nats] nats-server did not accept connections on ${port} within 30 s:\n${log}`);
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  async function stop(signal: NodeJS.Signals = "SIGTERM"): Promise<void> {
    const proc = child;
    if (proc === undefined) return;
    const exited = new Promise<void>((resolve) => proc.once("exit", () => resolve()));
    proc.kill(signal);
    const timer = setTimeout(() => proc.kill("SIGKILL"), 5_000);
    await exited;
    clearTimeout(timer);
  }

  await start();
  return {
    url: `nats://127.0.0.1:${port}`,
    port,
    storeDir,
    stop: () => stop(),
    kill: () => stop("SIGKILL"),
    start,
    async close() {
      await stop();
      if (options.storeDir === undefined) rmSync(storeDir, { recursive: true, force: true });
    },
  };
}

function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = tcpConnect(port, "127.0.0.1");
    socket.once("connect", () => {
      socket.destroy();
      resolve(true);
    });
    socket.once("error", () => resolve(false));
  });
}

/** One dead letter as `NatsTransport.deadLetter` stored it. */
export interface NatsDeadLetter {
  readonly id: string;
  /** The message's original bytes. */
  readonly raw: Uint8Array;
  readonly reason: string;
  readonly errorName: string;
  /** Subject the item was consumed from. */
  readonly subject: string;
  /** The delivery attempt that was dead-lettered. */
  readonly attempt: number;
  /** Handler runs of the item that ended with a retry. */
  readonly retries: number;
}

/**
 * Reads (without removing) every dead letter on `deadLetterSubject` of `stream`, through a
 * short-lived consumer that is deleted afterwards. For tests and inspection.
 */
export async function readDeadLetters(nc: NatsConnection, options: { stream: string; deadLetterSubject: string }): Promise<NatsDeadLetter[]> {
  const letters: NatsDeadLetter[] = [];
  await readAll(nc, await jetstreamManager(nc), { stream: options.stream, filter: options.deadLetterSubject }, (msg) => {
    const h = msg.headers;
    letters.push({
      id: h?.get(Header.id) ?? "",
      raw: msg.data,
      reason: h?.get(Header.reason) ?? "",
      errorName: h?.get(Header.errorName) ?? "",
      subject: h?.get(Header.subject) ?? "",
      attempt: Number(h?.get(Header.attempt) ?? 0),
      retries: Number(h?.get(Header.retries) ?? 0),
    });
  });
  return letters;
}

/**
 * Counts the messages stored on `subject` of `stream` by reading every stored message (at most
 * `limit`), not from the stream's per-subject count or a lookup by subject: after a crash a
 * 2.9 server can miss a message in those.
 */
export async function countMessages(nc: NatsConnection, options: { stream: string; subject: string; limit?: number }): Promise<number> {
  const jsm = await jetstreamManager(nc);
  const limit = options.limit ?? 100_000;
  let count = 0;
  for (let from = 1, read = 0; read < limit; read++) {
    const stored = await jsm.streams.getMessage(options.stream, { seq: from, next_by_subj: ">" } as MsgRequest);
    if (stored === null) break;
    if (stored.subject === options.subject) count++;
    from = stored.seq + 1;
  }
  return count;
}

import * as net from "node:net";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { TcpProxy } from "../src/net.js";

/** A TCP echo server on a free port, closed (with every connection) by `close`. */
async function echoServer(): Promise<{ port: number; connections: () => number; close: () => Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
    socket.on("error", () => {});
    socket.pipe(socket);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    connections: () => sockets.size,
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}

type Ended = { error: NodeJS.ErrnoException | undefined };

/** A client connection to `port` that collects what it reads and how it ended. */
async function connect(port: number): Promise<{ socket: net.Socket; read: () => string; ended: Promise<Ended> }> {
  const socket = net.connect({ host: "127.0.0.1", port });
  let data = "";
  socket.setEncoding("utf8");
  socket.on("data", (chunk: string) => (data += chunk));
  let error: NodeJS.ErrnoException | undefined;
  socket.on("error", (e) => (error = e));
  const ended = new Promise<Ended>((resolve) => socket.once("close", () => resolve({ error })));
  await new Promise<void>((resolve, reject) => {
    socket.once("connect", resolve);
    socket.once("error", reject);
  });
  return { socket, read: () => data, ended };
}

/** Writes `text` and waits until the echo of everything written so far has arrived, or `ms` passed. */
async function echoes(client: Awaited<ReturnType<typeof connect>>, text: string, ms = 2000): Promise<boolean> {
  const want = client.read() + text;
  client.socket.write(text);
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (client.read() === want) return true;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  return false;
}

/** How a fresh connection to `port` ends up: refused, or connected. */
function tryConnect(port: number): Promise<"refused" | "connected"> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: "127.0.0.1", port });
    socket.once("connect", () => {
      socket.destroy();
      resolve("connected");
    });
    socket.once("error", (error: NodeJS.ErrnoException) => (error.code === "ECONNREFUSED" ? resolve("refused") : reject(error)));
  });
}

/** `promise`, or a rejection naming `what` after 2 s. */
function within<V>(promise: Promise<V>, what: string): Promise<V> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what} took over 2 s`)), 2000)));
  return Promise.race([promise, late]).finally(() => clearTimeout(timer));
}

function handles(): string[] {
  return process.getActiveResourcesInfo().filter((name) => name.startsWith("TCP") || name === "Timeout");
}

/** Whether every socket and timer now active was active `before` too (vitest's own may have gone since). */
function leftOnly(before: string[]): boolean {
  const count = (list: string[], name: string): number => list.filter((n) => n === name).length;
  return handles().every((name) => count(handles(), name) <= count(before, name));
}

describe("TcpProxy", () => {
  let echo: Awaited<ReturnType<typeof echoServer>>;
  let proxy: TcpProxy;
  let before: string[];

  beforeEach(async () => {
    before = handles();
    echo = await echoServer();
    proxy = await TcpProxy.start({ host: "127.0.0.1", port: echo.port });
  });

  afterEach(async () => {
    await proxy.close();
    await echo.close();
  });

  it("forwards both ways on a free port of its own", async () => {
    expect(proxy.port).toBeGreaterThan(0);
    expect(proxy.port).not.toBe(echo.port);
    expect(proxy.address).toBe(`127.0.0.1:${proxy.port}`);
    const a = await connect(proxy.port);
    const b = await connect(proxy.port);
    expect(await echoes(a, "hello")).toBe(true);
    expect(await echoes(b, "x".repeat(256 * 1024))).toBe(true);
    expect(a.read()).toBe("hello");
    a.socket.destroy();
    b.socket.destroy();
  });

  it("listens on a given port", async () => {
    const spare = await TcpProxy.start({ host: "127.0.0.1", port: echo.port });
    const port = spare.port;
    await spare.close();
    const fixed = await TcpProxy.start({ host: "127.0.0.1", port: echo.port }, { port });
    try {
      expect(fixed.port).toBe(port);
      expect(await echoes(await connect(port), "fixed")).toBe(true);
    } finally {
      await fixed.close();
    }
  });

  it("cut resets open connections and refuses new ones; heal forwards new ones on the same port", async () => {
    const client = await connect(proxy.port);
    expect(await echoes(client, "before")).toBe(true);
    proxy.cut();
    const { error } = await client.ended;
    expect(error?.code).toBe("ECONNRESET");
    expect(await tryConnect(proxy.port)).toBe("refused");
    expect(proxy.connections).toBe(0);
    proxy.heal();
    const again = await connect(proxy.port);
    expect(await echoes(again, "after")).toBe(true);
    again.socket.destroy();
  });

  it("blackhole holds connections open and forwards nothing either way; heal forwards new ones only", async () => {
    const open = await connect(proxy.port);
    expect(await echoes(open, "ping")).toBe(true);
    proxy.blackhole();
    expect(await echoes(open, "lost", 300)).toBe(false);
    // New connections are accepted and held silent: no connection reaches the server.
    const serverSide = echo.connections();
    const held = await connect(proxy.port);
    expect(await echoes(held, "into the void", 300)).toBe(false);
    expect(echo.connections()).toBe(serverSide);
    expect(open.socket.destroyed || held.socket.destroyed).toBe(false);
    proxy.heal();
    const fresh = await connect(proxy.port);
    expect(await echoes(fresh, "healed")).toBe(true);
    // Black-holed connections stay dead after heal.
    expect(await echoes(open, "still lost", 300)).toBe(false);
    expect(await echoes(held, "still lost", 300)).toBe(false);
    for (const c of [open, held, fresh]) c.socket.destroy();
  });

  it("a client leaving a black-holed connection frees it", async () => {
    proxy.blackhole();
    const held = await connect(proxy.port);
    const deadline = Date.now() + 2000;
    while (proxy.connections === 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10));
    expect(proxy.connections).toBe(1);
    held.socket.end();
    await held.ended;
    while (proxy.connections > 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10));
    expect(proxy.connections).toBe(0);
  });

  it("cut after blackhole resets the silent connections; blackhole after cut accepts again", async () => {
    proxy.blackhole();
    const held = await connect(proxy.port);
    proxy.cut();
    expect((await held.ended).error?.code).toBe("ECONNRESET");
    proxy.blackhole();
    const again = await connect(proxy.port);
    expect(await echoes(again, "void", 300)).toBe(false);
    proxy.heal();
    expect(await echoes(await connect(proxy.port), "back")).toBe(true);
  });

  it("the server going away ends the client's connection", async () => {
    const client = await connect(proxy.port);
    expect(await echoes(client, "x")).toBe(true);
    await echo.close();
    await client.ended;
    expect(client.socket.destroyed).toBe(true);
  });

  it("close destroys every connection and leaves no socket or timer behind, from any state", async () => {
    for (const fault of ["forward", "cut", "blackhole", "cut-heal"] as const) {
      const p = await TcpProxy.start({ host: "127.0.0.1", port: echo.port });
      const a = await connect(p.port);
      await echoes(a, "x");
      if (fault === "cut" || fault === "cut-heal") p.cut();
      if (fault === "blackhole") p.blackhole();
      if (fault === "cut-heal") p.heal();
      const b = fault === "cut" ? undefined : await connect(p.port);
      await within(p.close(), `close (${fault})`);
      await p.close();
      await within(a.ended, `the first client's end (${fault})`);
      if (b !== undefined) await within(b.ended, `the second client's end (${fault})`);
      expect(p.mode).toBe("closed");
      expect(await tryConnect(p.port)).toBe("refused");
    }
    await proxy.close();
    await echo.close();
    // A closed socket leaves the list of active handles a few turns of the loop after its close event.
    const deadline = Date.now() + 2000;
    while (!leftOnly(before) && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10));
    expect(leftOnly(before), `handles now: ${handles().join(", ")}; before: ${before.join(", ")}`).toBe(true);
  });

  it("rejects a bad target or port", async () => {
    await expect(TcpProxy.start({ host: "127.0.0.1" } as never)).rejects.toThrow(TypeError);
    await expect(TcpProxy.start({ host: "127.0.0.1", port: echo.port }, { port: -1 })).rejects.toThrow(/`port`/);
  });
});

import { TransportError } from "@tranche/core";
import { ClientOfflineError, ErrorReply, MultiErrorReply, SocketClosedUnexpectedlyError } from "redis";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { transportError } from "../src/errors.js";
import { RedisStreamsTransport } from "../src/index.js";
import type { AnyRedisClient } from "../src/options.js";
import { startRedisServer } from "../src/testing.js";
import type { RedisServer } from "../src/testing.js";
import { rawClient, uniqueStream } from "./support/redis.js";

// Its own server: one test changes its ACL users and its busy-script threshold.

let server: RedisServer;
let redis: AnyRedisClient;
const opened: RedisStreamsTransport<any>[] = [];

beforeAll(async () => {
  server = await startRedisServer();
  redis = await rawClient(server.url);
});
afterEach(async () => {
  await Promise.all(opened.splice(0).map((t) => t.close()));
});
afterAll(async () => {
  await redis?.close();
  await server?.close();
});

function transport<T>(options: Partial<ConstructorParameters<typeof RedisStreamsTransport<T>>[0]> = {}): RedisStreamsTransport<T> {
  const t = new RedisStreamsTransport<T>({ url: server.url, stream: uniqueStream("errors"), blockMs: 100, ...options } as ConstructorParameters<typeof RedisStreamsTransport<T>>[0]);
  opened.push(t);
  return t;
}

async function failure(call: Promise<unknown>): Promise<TransportError> {
  const error = await call.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(TransportError.isInstance(error), `rejected with ${String(error)}`).toBe(true);
  return error as TransportError;
}

describe("error classification", () => {
  it("a codec that throws: send and sendMany reject with a TransportError that is not retryable, and write nothing", async () => {
    const codec = {
      encode: (p: number) => {
        if (p < 0) throw new RangeError("negative");
        return String(p);
      },
      decode: (raw: string | Uint8Array) => Number(raw),
    };
    const t = transport<number>({ codec });
    const one = await failure(t.send(-1));
    expect(one.retryable).toBe(false);
    expect(one.message).toBe("[tranche/redis] send failed: cannot encode the payload: negative");
    expect(one.cause).toBeInstanceOf(RangeError);
    expect((await failure(t.sendMany([1, -1]))).retryable).toBe(false);
    expect(Number(await redis.sendCommand(["EXISTS", t.keys.stream]))).toBe(0);
  });

  it("a key of the wrong type (WRONGTYPE) is not retryable", async () => {
    const t = transport<number>();
    await redis.sendCommand(["SET", t.keys.stream, "not a stream"]);
    const error = await failure(t.send(1));
    expect(error.retryable).toBe(false);
    expect(error.message).toMatch(/^\[tranche\/redis\] send failed: WRONGTYPE/);
    await redis.sendCommand(["DEL", t.keys.stream]);
  });

  it("a command the user may not run (NOPERM) is not retryable", async () => {
    await redis.sendCommand(["ACL", "SETUSER", "producer", "on", ">secret", "~*", "+@all", "-xadd"]);
    const t = transport<number>({ url: `redis://producer:secret@127.0.0.1:${server.port}` });
    const error = await failure(t.send(1));
    expect(error.retryable).toBe(false);
    expect(error.message).toMatch(/^\[tranche\/redis\] send failed: NOPERM/);
    await redis.sendCommand(["ACL", "DELUSER", "producer"]);
  });

  it("a server busy with a script (BUSY) is retryable", async () => {
    await redis.sendCommand(["CONFIG", "SET", "busy-reply-threshold", "50"]);
    const busy = await rawClient(server.url);
    const t = transport<number>();
    await t.send(0); // connected before the server gets busy
    const script = busy.sendCommand(["EVAL", "while true do end", "0"]).catch((e: unknown) => e);
    await new Promise((resolve) => setTimeout(resolve, 200));
    const error = await failure(t.send(1));
    expect(error.retryable).toBe(true);
    expect(error.message).toMatch(/^\[tranche\/redis\] send failed: BUSY/);
    await redis.sendCommand(["SCRIPT", "KILL"]);
    await script;
    busy.destroy();
    await redis.sendCommand(["CONFIG", "SET", "busy-reply-threshold", "5000"]);
  });

  it("classifies what node-redis reports: transient server states and connection errors are retryable, other error replies are not", () => {
    const retryable = (error: unknown) => (transportError("ack", error) as TransportError).retryable;
    for (const code of ["LOADING", "BUSY", "TRYAGAIN", "MASTERDOWN", "CLUSTERDOWN", "READONLY", "OOM", "NOGROUP"]) {
      expect(retryable(new ErrorReply(`${code} something`)), code).toBe(true);
    }
    for (const code of ["ERR", "WRONGTYPE", "NOPERM", "NOAUTH", "WRONGPASS", "EXECABORT", "NOSCRIPT"]) {
      expect(retryable(new ErrorReply(`${code} something`)), code).toBe(false);
    }
    expect(retryable(new MultiErrorReply([new ErrorReply("LOADING x"), "OK"] as never, [0]))).toBe(true);
    expect(retryable(new MultiErrorReply(["OK", new ErrorReply("WRONGTYPE x")] as never, [1]))).toBe(false);
    expect(retryable(new SocketClosedUnexpectedlyError())).toBe(true);
    expect(retryable(Object.assign(new Error("read ECONNRESET"), { code: "ECONNRESET" }))).toBe(true);
    expect(retryable(new Error("something unknown"))).toBe(true);
    const offline = transportError("ack", new ClientOfflineError(), {
      address: "127.0.0.1:6390",
      connectionFailure: Object.assign(new Error("connect ECONNREFUSED 127.0.0.1:6390"), { code: "ECONNREFUSED" }),
    });
    expect(offline.message).toBe("[tranche/redis] ack failed: connect ECONNREFUSED 127.0.0.1:6390");
    expect(transportError("ack", new SocketClosedUnexpectedlyError(), { address: "127.0.0.1:6390" }).message).toBe(
      "[tranche/redis] ack failed: Socket closed unexpectedly (redis at 127.0.0.1:6390)",
    );
  });
});

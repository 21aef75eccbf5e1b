import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Connection } from "../src/connection.js";
import { testServer } from "./support/redis.js";

/** `global.gc`, exposed at run time when node was started without `--expose-gc`. */
function exposedGc(): () => void {
  const exposed = (globalThis as { gc?: () => void }).gc;
  if (typeof exposed === "function") return exposed;
  setFlagsFromString("--expose-gc");
  return runInNewContext("gc") as () => void;
}

let server: { url: string; close(): Promise<void> };
beforeAll(async () => {
  server = await testServer();
});
afterAll(async () => {
  await server?.close();
});

describe("Connection over a long run", () => {
  it("keeps nothing of a call once it ended: what every call resolved with can be collected", async () => {
    const connection = Connection.open({ url: server.url }, { connectTimeout: 3_000, commandTimeout: 5_000 });
    const results: WeakRef<object>[] = [];
    for (let i = 0; i < 200; i++) {
      await connection.run("test", async (client) => {
        const result = { reply: await client.sendCommand(["PING"]), i };
        results.push(new WeakRef(result));
        return result;
      });
    }
    await new Promise((resolve) => setImmediate(resolve));
    exposedGc()();
    expect(results.filter((ref) => ref.deref() !== undefined)).toHaveLength(0);
    await connection.close(0);
  });
});

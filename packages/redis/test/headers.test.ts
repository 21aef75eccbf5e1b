import { afterAll, describe, expect, it } from "vitest";
import { RedisStreamsTransport } from "../src/index.js";
import { rawClient, receiveAll, testServer, uniqueStream } from "./support/redis.js";

const server = await testServer();
afterAll(() => server.close());

const HEADERS = { traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", tenant: "acme" };

function transport(): RedisStreamsTransport<string> {
  return new RedisStreamsTransport<string>({ url: server.url, stream: uniqueStream("headers"), blockMs: 50 });
}

describe("RedisStreamsTransport headers", () => {
  it("keeps an item's headers in its dead letter and gives them back on redrive, delayed or not", async () => {
    const t = transport();
    try {
      await t.send("now", { id: "now", headers: HEADERS });
      await t.send("later", { id: "later", headers: HEADERS });
      for (const d of await receiveAll(t, 2)) await t.deadLetter(d, new Error("poison"));
      expect(await t.redrive(["now"])).toBe(1);
      expect(await t.redrive(["later"], { delay: 200 })).toBe(1);
      const back = await receiveAll(t, 2);
      expect(back.map((d) => [d.id, d.headers])).toEqual(
        expect.arrayContaining([
          ["now", HEADERS],
          ["later", HEADERS],
        ]),
      );
      await t.ack(back);
    } finally {
      await t.close();
    }
  });

  it("writes headers as a JSON `headers` field, and reads another producer's entry without valid headers as none", async () => {
    const t = transport();
    const client = await rawClient(server.url);
    try {
      await t.send("mine", { id: "mine", headers: HEADERS });
      const [entry] = await client.xRange(t.keys.stream, "-", "+");
      expect(JSON.parse(String(field(entry?.message, "headers") ?? "null"))).toEqual(HEADERS);
      await client.xAdd(t.keys.stream, "*", { id: "theirs", payload: '"theirs"', headers: "[not headers" });
      const [mine, theirs] = await receiveAll(t, 2);
      expect(mine?.headers).toEqual(HEADERS);
      expect(theirs?.id).toBe("theirs");
      expect(theirs?.headers).toBeUndefined();
      // Its bytes still travel with the item.
      await t.retry(theirs!, Date.now());
      const [again] = await receiveAll(t, 1);
      const copied = await client.xRange(t.keys.stream, again!.entryId, again!.entryId);
      expect(String(field(copied[0]?.message, "headers"))).toBe("[not headers");
      await t.ack([mine!, again!]);
    } finally {
      await client.quit();
      await t.close();
    }
  });
});

/** One field of a raw stream entry, whichever shape the client returned it in. */
function field(message: unknown, name: string): unknown {
  if (message instanceof Map) return message.get(name);
  return (message as Record<string, unknown> | undefined)?.[name];
}

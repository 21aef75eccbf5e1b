// `tranche` against a redis-server of its own: the built command in a process of its own, as a user runs it.
import { randomUUID } from "node:crypto";
import { RedisStreamsTransport } from "@tranche/redis";
import { freePort, type RedisServer, startRedisServer } from "@tranche/redis/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { json, tranche } from "./support/run.js";

let server: RedisServer;
const opened: RedisStreamsTransport[] = [];
beforeAll(async () => {
  server = await startRedisServer();
});
afterAll(async () => {
  await Promise.all(opened.map((t) => t.close()));
  await server?.close();
});

const never = new AbortController().signal;

/** A stream with 2 ready items, 1 delayed, 1 in flight and 3 dead letters (one undecodable); resolves with their ids. */
async function queue(): Promise<{ stream: string; transport: RedisStreamsTransport; letters: string[]; flags: string[] }> {
  const stream = `cli-${randomUUID().slice(0, 8)}`;
  const transport = new RedisStreamsTransport({ url: server.url, stream, blockMs: 100, minIdle: 60_000 });
  opened.push(transport);
  await transport.sendMany([{ order: 1 }, { order: 2 }, { order: 3 }]);
  await transport.sendRaw("not {json", { id: "garbage-1" });
  const held: Awaited<ReturnType<RedisStreamsTransport["receive"]>> = [];
  while (held.length < 4) held.push(...(await transport.receive(4 - held.length, never)));
  const garbage = held.find((d) => d.error !== undefined)!;
  // The third good one stays in flight.
  const [a, b] = held.filter((d) => d !== garbage) as [(typeof held)[number], (typeof held)[number]];
  await transport.retry(a, Date.now());
  const [again] = await transport.receive(1, never);
  await transport.deadLetter(again!, new RangeError("card declined"));
  await transport.deadLetter(b, new Error("no such customer"));
  await transport.deadLetter(garbage, garbage.error!);
  await transport.sendMany([{ order: 4 }, { order: 5 }]);
  await transport.send({ order: 6 }, { delay: 600_000 });
  return { stream, transport, letters: [a.id, b.id, "garbage-1"], flags: ["--redis-url", server.url, "--stream", stream] };
}

describe("tranche on Redis", () => {
  it("depth, dlq ls, show, redrive and purge, as a person reads them", async () => {
    const { transport, letters, flags } = await queue();
    const [card, customer, garbage] = letters as [string, string, string];

    const depth = await tranche(["depth", ...flags]);
    expect(depth.code, depth.stderr).toBe(0);
    expect(depth.stdout).toMatch(/^redis stream cli-\w+ at 127\.0\.0\.1:\d+, group tranche \(exact\)\n/);
    expect(depth.stdout).toMatch(/ready\s+2\n\s+delayed\s+1\n\s+in flight\s+1\n\s+dead-lettered\s+3\n$/);

    const ls = await tranche(["dlq", "ls", ...flags]);
    expect(ls.code, ls.stderr).toBe(0);
    const lines = ls.stdout.trimEnd().split("\n");
    expect(lines[0]).toMatch(/^3 dead letters in redis stream/);
    expect(lines[1]).toMatch(/^ID\s+DEAD-LETTERED\s+ATTEMPT\s+RETRIES\s+REASON$/);
    expect(lines[2]).toMatch(new RegExp(`^${card}\\s+\\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d:\\d\\dZ\\s+2\\s+1\\s+RangeError: card declined$`));
    expect(lines[3]).toMatch(new RegExp(`^${customer}\\s.*\\s1\\s+0\\s+Error: no such customer$`));
    expect(lines[4]).toMatch(/^garbage-1\s.*DecodeError: /);

    const show = await tranche(["dlq", "show", card, ...flags]);
    expect(show.code, show.stderr).toBe(0);
    expect(show.stdout).toContain(`${card} in redis stream`);
    expect(show.stdout).toMatch(/attempt\s+2 \(1 retry\)\n/);
    expect(show.stdout).toMatch(/reason\s+RangeError: card declined\n/);
    expect(show.stdout).toMatch(/payload\s+\{\n\s+"order": 1\n\s+\}\n/);
    expect(show.stdout).toMatch(/stack\s+RangeError: card declined\n\s+at /);
    const undecodable = await tranche(["dlq", "show", garbage, ...flags]);
    expect(undecodable.stdout).toMatch(/payload\s+cannot be decoded \(9 bytes kept\)\n\s+raw\s+not \{json\n/);

    const redrive = await tranche(["dlq", "redrive", card, "nobody", ...flags]);
    expect(redrive.code, redrive.stderr).toBe(0);
    expect(redrive.stdout).toMatch(/^sent 1 of 2 dead letters back to redis stream .* \(1 not among the dead letters\)\n$/);
    const back: Awaited<ReturnType<RedisStreamsTransport["receive"]>> = [];
    while (!back.some((d) => d.id === card)) back.push(...(await transport.receive(10, never)));
    expect(back.find((d) => d.id === card)).toMatchObject({ payload: { order: 1 }, attempt: 1, retries: 0 });

    const purge = await tranche(["dlq", "purge", customer, "--yes", ...flags]);
    expect(purge.stdout).toMatch(/^deleted 1 dead letter from redis stream/);
    const all = await tranche(["dlq", "purge", "--all", "-y", ...flags]);
    expect(all.stdout).toMatch(/^deleted 1 dead letter from/);
    const empty = await tranche(["dlq", "ls", ...flags]);
    expect(empty.stdout).toMatch(/^no dead letters in redis stream/);
  });

  it("--json for scripts, pages with --limit and --after, and takes its configuration from the environment", async () => {
    const { letters, stream } = await queue();
    const env = { REDIS_URL: server.url, TRANCHE_STREAM: stream };
    expect(json(await tranche(["depth", "--json"], { env }))).toEqual({ transport: "redis", queue: stream, ready: 2, delayed: 1, inFlight: 1, deadLettered: 3 });
    const first = json(await tranche(["dlq", "ls", "--limit", "2", "--json"], { env }));
    expect(first.letters.map((l: { id: string }) => l.id)).toEqual(letters.slice(0, 2));
    expect(first.next).toBe(letters[1]);
    expect(first.letters[0]).toMatchObject({ attempt: 2, retries: 1, reason: { name: "RangeError", message: "card declined" }, payload: { order: 1 }, raw: '{"order":1}', rawEncoding: "utf8" });
    expect(first.letters[0].deadLetteredAt).toBe(new Date(first.letters[0].at).toISOString());
    const rest = json(await tranche(["dlq", "ls", "--after", first.next, "--json"], { env }));
    expect(rest).toMatchObject({ letters: [{ id: "garbage-1", payload: null, raw: "not {json" }], next: null });
    expect(json(await tranche(["dlq", "show", "garbage-1", "--json"], { env }))).toMatchObject({ id: "garbage-1", reason: { name: "DecodeError" } });
    expect(json(await tranche(["dlq", "redrive", "--all", "--delay", "1m", "--json"], { env }))).toEqual({ redriven: 3, requested: "all" });
    expect(json(await tranche(["depth", "--json"], { env }))).toMatchObject({ delayed: 4, deadLettered: 0 });
    expect(json(await tranche(["dlq", "purge", "--all", "--yes", "--json"], { env }))).toEqual({ purged: 0 });
  });

  it("exit codes: 2 for usage, 1 for a failed operation, each with one line on stderr", async () => {
    const { flags, letters } = await queue();
    const usage: [string[], RegExp][] = [
      [["depth", "--stream"], /--stream/],
      [["depth", "--bogus", ...flags], /Unknown option '--bogus'/],
      [["dlq", "ls", "--redis-url", server.url], /redis needs --stream \(or TRANCHE_STREAM\)/],
      [["dlq", "redrive", ...flags], /needs the ids of the dead letters, or --all/],
      [["dlq", "redrive", "a", "--all", ...flags], /give ids or --all, not both/],
      [["dlq", "ls", "--limit", "0", ...flags], /--limit must be a whole number ≥ 1/],
      [["depth", "--delay", "5s", ...flags], /--delay is not an option of depth/],
      [["depth", "--queue-url", "https://sqs.example/1/q", ...flags], /flags of several brokers/],
      [["dlq", "purge", "--all", ...flags], /pass --yes \(stdin is not a terminal to ask on\)/],
      [["frobnicate"], /unknown command "frobnicate"/],
    ];
    for (const [args, message] of usage) {
      const ran = await tranche(args);
      expect(ran.code, `${args.join(" ")}: ${ran.stderr}`).toBe(2);
      expect(ran.stderr).toMatch(message);
      expect(ran.stderr.trimEnd().split("\n"), "one line").toHaveLength(1);
    }
    // The purge refused above deleted nothing.
    expect(json(await tranche(["depth", "--json", ...flags])).deadLettered).toBe(letters.length);

    const missing = await tranche(["dlq", "show", "nobody", ...flags]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toBe(`tranche: no dead letter with id "nobody" in redis stream ${flags[3]} at 127.0.0.1:${server.port}, group tranche\n`);

    const port = await freePort();
    const down = await tranche(["depth", "--redis-url", `redis://127.0.0.1:${port}`, "--stream", "s"]);
    expect(down.code).toBe(1);
    expect(down.stderr).toBe(`tranche: [tranche/redis] depth failed: connect ECONNREFUSED 127.0.0.1:${port}\n`);
    expect(down.took).toBeLessThan(10_000);
  });

  it("--help and --version exit 0", async () => {
    const help = await tranche(["--help"]);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain("tranche dlq redrive <id…> | --all");
    expect(help.stdout).toContain("Exit codes");
    const version = await tranche(["--version"]);
    expect(version.stdout).toMatch(/^\d+\.\d+\.\d+/);
  });
});

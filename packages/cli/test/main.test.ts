// `main` in this process, on a MemoryTransport it is handed: what a test cannot do by spawning
// the command (a terminal to answer on, a transport package that is not installed).
import { MemoryTransport } from "@tranche/memory";
import { describe, expect, it } from "vitest";
import { type CliIo, ExitCode, main } from "../src/index.js";

/** A MemoryTransport with dead letters `ids`, handed to `main` as the memory transport's class. */
async function withLetters(ids: string[]): Promise<{ transport: MemoryTransport; load: CliIo["load"] }> {
  const transport = new MemoryTransport({ wait: 0 });
  for (const id of ids) await transport.send({ id }, { id });
  if (ids.length > 0) for (const d of await transport.receive(ids.length, new AbortController().signal)) await transport.deadLetter(d, new Error(`bad ${d.id}`));
  // main closes the transport it opened; the test still reads it after.
  transport.close = async () => {};
  return { transport, load: async () => ({ MemoryTransport: function () { return transport; } }) };
}

function io(options: Partial<CliIo> & { answers?: string[] } = {}) {
  const out: string[] = [];
  const err: string[] = [];
  const asked: string[] = [];
  return {
    out,
    err,
    asked,
    io: {
      stdout: { write: (text: string) => out.push(text) },
      stderr: { write: (text: string) => err.push(text) },
      interactive: true,
      env: {},
      confirm: async (question: string) => {
        asked.push(question);
        return /^y/i.test(options.answers?.shift() ?? "");
      },
      ...options,
    } satisfies Partial<CliIo>,
  };
}

describe("main", () => {
  it("asks before a purge on a terminal, and deletes only on yes", async () => {
    const { transport, load } = await withLetters(["a", "b", "c"]);
    const no = io({ load, answers: ["n"] });
    expect(await main(["dlq", "purge", "a", "b", "--transport", "memory"], no.io)).toBe(ExitCode.failed);
    expect(no.asked).toEqual(["Delete 2 dead letters (a, b) of an in-process memory queue (empty: it lives only as long as this command) for good? [y/N] "]);
    expect(no.err.join("")).toBe("tranche: nothing deleted\n");
    expect((await transport.deadLetters()).map((l) => l.id)).toEqual(["a", "b", "c"]);

    const yes = io({ load, answers: ["y"] });
    expect(await main(["dlq", "purge", "--all", "--transport", "memory"], yes.io)).toBe(ExitCode.ok);
    expect(yes.asked[0]).toMatch(/^Delete all 3 dead letters of /);
    expect(yes.out.join("")).toMatch(/^deleted 3 dead letters from /);
    expect(await transport.deadLetters()).toEqual([]);
  });

  it("--yes skips the question; without a terminal and without --yes it refuses before connecting", async () => {
    const { transport, load } = await withLetters(["a"]);
    const unasked = io({ load, interactive: false });
    expect(await main(["dlq", "purge", "--all", "--transport", "memory"], unasked.io)).toBe(ExitCode.usage);
    expect(unasked.asked).toEqual([]);
    const yes = io({ load });
    expect(await main(["dlq", "purge", "a", "--yes", "--transport", "memory"], yes.io)).toBe(ExitCode.ok);
    expect(yes.asked).toEqual([]);
    expect(await transport.deadLetters()).toEqual([]);
  });

  it("a transport package that is not installed is one line saying what to install (exit 2)", async () => {
    const missing = Object.assign(new Error("Cannot find package '@tranche/sqs' imported from /x/cli.js"), { code: "ERR_MODULE_NOT_FOUND" });
    const run = io({ load: async () => Promise.reject(missing) });
    expect(await main(["depth", "--queue-url", "https://sqs.us-east-1.amazonaws.com/1/q"], run.io)).toBe(ExitCode.usage);
    expect(run.err).toEqual(["tranche: --transport sqs needs @tranche/sqs, which is not installed: npm install @tranche/sqs\n"]);
    // A dependency of the package missing is not the package missing.
    const deeper = Object.assign(new Error("Cannot find package 'redis' imported from /x/redis.js"), { code: "ERR_MODULE_NOT_FOUND" });
    const other = io({ load: async () => Promise.reject(deeper) });
    expect(await main(["depth", "--redis-url", "redis://x", "--stream", "s"], other.io)).toBe(ExitCode.failed);
    expect(other.err[0]).toMatch(/Cannot find package 'redis'/);
  });

  it("infers the transport from the one broker in the environment, and refuses to guess between several", async () => {
    const calls: string[] = [];
    const recording = async (name: string): Promise<never> => {
      calls.push(name);
      throw new Error("not loaded here");
    };
    expect(await main(["depth"], io({ load: recording, env: { AMQP_URL: "amqp://h" } }).io)).toBe(ExitCode.failed);
    expect(calls).toEqual(["@tranche/amqp"]);
    const several = io({ env: { REDIS_URL: "redis://h", NATS_URL: "nats://h" } });
    expect(await main(["depth"], several.io)).toBe(ExitCode.usage);
    expect(several.err).toEqual(["tranche: several brokers in the environment (REDIS_URL, NATS_URL): pass --transport\n"]);
    const foreign = io({ env: {} });
    expect(await main(["depth", "--transport", "amqp", "--stream", "s"], foreign.io)).toBe(ExitCode.usage);
    expect(foreign.err).toEqual(["tranche: --stream is not a setting of --transport amqp\n"]);
  });

  it("ls pages, show prints one letter, redrive sends back under the id", async () => {
    const { transport, load } = await withLetters(["a", "b", "c"]);
    const ls = io({ load, stdout: { write: (t: string) => ls.out.push(t), columns: 80 } as CliIo["stdout"] });
    expect(await main(["dlq", "ls", "--limit", "2", "--transport", "memory"], ls.io)).toBe(ExitCode.ok);
    expect(ls.out.join("")).toMatch(/^2 dead letters in .* \(first page\)\nID .*\na .*Error: bad a\nb .*Error: bad b\nmore after b: tranche dlq ls --after b\n$/);
    const show = io({ load, now: () => Date.now() + 120_000 });
    expect(await main(["dlq", "show", "c", "--transport", "memory"], show.io)).toBe(ExitCode.ok);
    expect(show.out.join("")).toMatch(/^c in .*\n {2}dead-lettered +\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ \(2 min ago\)\n {2}attempt +1 \(no retries\)\n {2}reason +Error: bad c\n {2}payload +\{\n +"id": "c"\n +\}\n {2}stack +Error: bad c\n/);
    const redrive = io({ load });
    expect(await main(["dlq", "redrive", "a", "--json", "--transport", "memory"], redrive.io)).toBe(ExitCode.ok);
    expect(JSON.parse(redrive.out.join(""))).toEqual({ redriven: 1, requested: 1 });
    expect(await transport.depth()).toMatchObject({ ready: 1, deadLettered: 2 });
  });
});

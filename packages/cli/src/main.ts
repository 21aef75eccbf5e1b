import { createInterface } from "node:readline/promises";
import type { DeadLetter } from "@tranche/core";
import { type Command, count, duration, type Flags, HELP, parseCommandLine } from "./args.js";
import { resolveTarget, type Target } from "./config.js";
import { describeFailure, ExitCode, FailedError, UsageError } from "./errors.js";
import { countsInFlight, depthText, letterJson, lettersText, letterText } from "./format.js";
import { type AdminTransport, type Importer, openTransport } from "./transports.js";

declare const TRANCHE_CLI_VERSION: string | undefined;

/** A stream `main` writes to. */
export interface CliOutput {
  /** Writes `text` as is (lines end in `\n`). */
  write(text: string): unknown;
}

/** Where `main` reads and writes; every field defaults to the process's own. */
export interface CliIo {
  /** Results: the screens, or JSON with `--json`. */
  readonly stdout: CliOutput & {
    /** The terminal's width, when it is one. */
    readonly columns?: number | undefined;
  };
  /** Errors (one line each) and the purge question. */
  readonly stderr: CliOutput;
  /** Whether a person can answer a question (stdin is a terminal). */
  readonly interactive: boolean;
  /** Asks `question` on the terminal; resolves `true` for yes. */
  confirm(question: string): Promise<boolean>;
  /** The environment the configuration falls back on (`REDIS_URL`, `SQS_QUEUE_URL`...). */
  readonly env: Readonly<Record<string, string | undefined>>;
  /** Loads a transport package. @default `import()` */
  readonly load?: Importer;
  /** Epoch ms, for "4 min ago". @default Date.now */
  now?(): number;
}

/** Flags that only some commands take; any other command refuses them. */
const ONLY_FOR: Partial<Record<keyof Flags, readonly Command["name"][]>> = {
  limit: ["ls"],
  after: ["ls"],
  all: ["ls", "redrive", "purge"],
  delay: ["redrive"],
  yes: ["purge"],
};

/** Dead letters read per page while looking for one. */
const SHOW_PAGE = 1000;
/** Dead letters `dlq ls` shows without `--limit`. */
const LS_LIMIT = 50;

/**
 * Runs `tranche` with `argv` (the arguments after the command name) and resolves with its exit
 * code (see `ExitCode`). Never throws: a failure is one line on `stderr`.
 */
export async function main(argv: readonly string[], io: Partial<CliIo> = {}): Promise<ExitCode> {
  const o = withDefaults(io);
  try {
    const { command, flags } = parseCommandLine(argv);
    if (command.name === "help") {
      o.stdout.write(HELP);
      return ExitCode.ok;
    }
    if (command.name === "version") {
      o.stdout.write(`${typeof TRANCHE_CLI_VERSION === "string" ? TRANCHE_CLI_VERSION : "0.0.0-dev"}\n`);
      return ExitCode.ok;
    }
    for (const [flag, commands] of Object.entries(ONLY_FOR) as [keyof Flags, readonly Command["name"][]][]) {
      if (flags[flag] !== undefined && !commands.includes(command.name)) throw new UsageError(`--${flag} is not an option of ${nameOf(command)}`);
    }
    const target = resolveTarget(flags, o.env);
    if (command.name === "purge" && !flags.yes && !o.interactive) {
      throw new UsageError("dlq purge deletes for good: pass --yes (stdin is not a terminal to ask on)");
    }
    const transport = await openTransport(target, o.load);
    try {
      await run(command, flags, target, transport, o);
    } finally {
      await transport.close().catch(() => {});
    }
    return ExitCode.ok;
  } catch (error) {
    const { code, line } = describeFailure(error);
    o.stderr.write(`${line}\n`);
    return code;
  }
}

function nameOf(command: Command): string {
  return command.name === "depth" ? "depth" : `dlq ${command.name}`;
}

async function run(command: Command, flags: Flags, target: Target, t: AdminTransport, o: Required<Omit<CliIo, "load">> & Pick<CliIo, "load">): Promise<void> {
  const json = flags.json === true;
  const print = (human: string, data: unknown): void => void o.stdout.write(json ? `${JSON.stringify(data, null, 2)}\n` : human);
  switch (command.name) {
    case "depth": {
      const depth = await t.depth();
      const inFlight = countsInFlight(target.transport) ? depth.inFlight : null;
      print(depthText(target.transport, target.label, depth), { transport: target.transport, queue: target.queue, ...depth, inFlight });
      return;
    }
    case "ls": {
      const limit = flags.all ? Infinity : flags.limit === undefined ? LS_LIMIT : count("limit", flags.limit);
      // One more than shown, to know whether there is a next page.
      const page = await t.deadLetters({ ...(limit === Infinity ? {} : { limit: limit + 1 }), ...(flags.after === undefined ? {} : { after: flags.after }) });
      const letters = page.slice(0, limit);
      const next = page.length > limit ? letters[letters.length - 1]?.id : undefined;
      print(lettersText(target.label, letters, next, o.stdout.columns ?? 120), { transport: target.transport, queue: target.queue, letters: letters.map(letterJson), next: next ?? null });
      return;
    }
    case "show": {
      const letter = await find(t, command.id);
      if (letter === undefined) throw new FailedError(`no dead letter with id ${JSON.stringify(command.id)} in ${target.label}`);
      print(letterText(target.label, letter, o.now()), letterJson(letter));
      return;
    }
    case "redrive": {
      const delay = flags.delay === undefined ? undefined : duration("delay", flags.delay);
      const sent = await t.redrive(command.ids, delay === undefined ? undefined : { delay });
      const asked = command.ids === "all" ? undefined : command.ids.length;
      const missing = asked === undefined || sent >= asked ? "" : ` (${asked - sent} not among the dead letters)`;
      const when = delay === undefined || delay === 0 ? "" : `, to run no sooner than ${delay} ms from now`;
      const of = asked === undefined || asked === sent ? "" : ` of ${asked}`;
      print(`sent ${sent}${of} dead letter${(asked ?? sent) === 1 ? "" : "s"} back to ${target.label}${when}${missing}\n`, {
        redriven: sent,
        requested: command.ids === "all" ? "all" : asked,
      });
      return;
    }
    case "purge": {
      if (!flags.yes) {
        const what = command.ids === "all" ? `all ${target.transport === "sqs" ? "about " : ""}${(await t.depth()).deadLettered} dead letters` : `${command.ids.length} dead letter${command.ids.length === 1 ? "" : "s"} (${command.ids.join(", ")})`;
        if (!(await o.confirm(`Delete ${what} of ${target.label} for good? [y/N] `))) throw new FailedError("nothing deleted");
      }
      const purged = await t.purgeDeadLetters(command.ids);
      print(`deleted ${purged} dead letter${purged === 1 ? "" : "s"} from ${target.label}\n`, { purged });
      return;
    }
    default:
      return;
  }
}

/** The dead letter of `id`, a page at a time. */
async function find(t: AdminTransport, id: string): Promise<DeadLetter<unknown> | undefined> {
  let after: string | undefined;
  for (;;) {
    const page = await t.deadLetters({ limit: SHOW_PAGE, ...(after === undefined ? {} : { after }) });
    const found = page.find((l) => l.id === id);
    if (found !== undefined || page.length < SHOW_PAGE) return found;
    after = page[page.length - 1]?.id;
  }
}

function withDefaults(io: Partial<CliIo>): Required<Omit<CliIo, "load">> & Pick<CliIo, "load"> {
  return {
    stdout: io.stdout ?? process.stdout,
    stderr: io.stderr ?? process.stderr,
    interactive: io.interactive ?? process.stdin.isTTY === true,
    confirm: io.confirm ?? ask,
    env: io.env ?? process.env,
    now: io.now ?? Date.now,
    ...(io.load === undefined ? {} : { load: io.load }),
  };
}

/** Asks on the terminal (the question on stderr, so that stdout stays the result). */
async function ask(question: string): Promise<boolean> {
  const rl = createInterface({ input: process.stdin, output: process.stderr });
  try {
    return /^y(es)?$/i.test((await rl.question(question)).trim());
  } finally {
    rl.close();
  }
}

import { checkMs, checkDeadLetterIds, checkDeadLetterPage } from "@tranche/core/internal";
import type { Codec, DeadLetter, DeadLetterPage, QueueDepth } from "@tranche/core";
import { RESP_TYPES } from "redis";
import type { Connection } from "./connection.js";
import { deadLetterOf } from "./dead-letter.js";
import { PREFIX, invalid } from "./options.js";
import type { Entry } from "./redis-delivery.js";
import { runScript } from "./scripts.js";

/** Blob strings as Buffers (payloads are bytes). */
const RAW = { [RESP_TYPES.BLOB_STRING]: Buffer, [RESP_TYPES.SIMPLE_STRING]: Buffer } as const;
/** Letters one redrive or purge script handles; a larger call runs several, each atomic. */
const CHUNK = 500;
/** Entries one `XRANGE` reads when counting undelivered entries by hand. */
const COUNT_PAGE = 1000;

/** The keys of one stream's queue, all in its hash slot. */
export interface AdminKeys {
  readonly stream: string;
  readonly schedule: string;
  readonly deadLetter: string;
  /** Item id → entry id of its letter in the dead-letter stream. */
  readonly deadLetterIndex: string;
}

/**
 * The operator's side of a Redis Streams queue (`QueueAdmin`): depth from the group's
 * `XINFO GROUPS` lag and pending count, the schedule and the dead-letter stream's length; the
 * dead letters read, redriven and purged by item id through the index `deadLetter` keeps.
 */
export class RedisQueueAdmin<T> {
  constructor(
    private readonly commands: Connection,
    private readonly keys: AdminKeys,
    private readonly group: string,
    private readonly codec: Codec<T>,
  ) {}

  /**
   * Exact, read in one step: `ready` is the group's lag (entries not yet delivered to it, or the
   * whole stream before the group exists) plus scheduled items already due, `delayed` the
   * scheduled items not due, `inFlight` the group's pending entries (delivered, not settled,
   * including those of a consumer that died until they are reclaimed), `deadLettered` the
   * dead-letter stream's length.
   */
  async depth(): Promise<QueueDepth> {
    const { stream, schedule, deadLetter } = this.keys;
    const [found, lag, pending, last, length, due, later, dead] = await runScript<[number, number, number, string, number, number, number, number]>(
      this.commands,
      "depth",
      "depth",
      [stream, schedule, deadLetter],
      [this.group],
    );
    let undelivered = found === 1 ? lag : length;
    // Redis cannot tell the lag after entries past the group's position were deleted: count them.
    if (undelivered < 0) undelivered = await this.countAfter(String(last));
    return { ready: undelivered + due, delayed: later, inFlight: found === 1 ? pending : 0, deadLettered: dead };
  }

  /** The letters oldest first, from the dead-letter stream; `after` must name a letter still there, else the page is empty. */
  async deadLetters(options?: DeadLetterPage): Promise<DeadLetter<T>[]> {
    const { limit, after } = checkDeadLetterPage(options, { prefix: PREFIX });
    let start = "-";
    if (after !== undefined) {
      const entry = await this.commands.send<string | null>("deadLetters", ["HGET", this.keys.deadLetterIndex, after]);
      if (entry === null) return [];
      start = `(${entry}`;
    }
    const args = ["XRANGE", this.keys.deadLetter, start, "+"];
    if (limit !== Infinity) args.push("COUNT", String(limit));
    const entries = await this.commands.send<Entry[]>("deadLetters", args, RAW);
    return entries.map(([, fields]) => deadLetterOf(this.codec, fields ?? []));
  }

  /**
   * Each letter goes back and leaves the dead letters in one script, so nothing is lost between
   * the two and a repeat finds it gone. `"all"` takes the letters there when the call began.
   */
  async redrive(ids: readonly string[] | "all", options?: { delay?: number }): Promise<number> {
    checkDeadLetterIds(ids, { prefix: PREFIX });
    const o = options === undefined ? {} : options;
    if (typeof o !== "object" || o === null) invalid("options", "an object", o);
    const delay = o.delay === undefined ? 0 : Math.ceil(checkMs("delay", o.delay, { prefix: PREFIX }));
    const { stream, schedule, deadLetter, deadLetterIndex } = this.keys;
    const keys = [stream, schedule, deadLetter, deadLetterIndex];
    let moved = 0;
    if (ids === "all") {
      const newest = await this.commands.send<[string, unknown][]>("redrive", ["XREVRANGE", deadLetter, "+", "-", "COUNT", "1"]);
      const bound = newest[0]?.[0];
      if (bound === undefined) return 0;
      for (;;) {
        const n = await runScript<number>(this.commands, "redrive", "redrive", keys, [String(delay), "all", String(bound), String(CHUNK)]);
        moved += n;
        if (n < CHUNK) return moved;
      }
    }
    for (let i = 0; i < ids.length; i += CHUNK) {
      moved += await runScript<number>(this.commands, "redrive", "redrive", keys, [String(delay), "ids", ...ids.slice(i, i + CHUNK)]);
    }
    return moved;
  }

  async purge(ids: readonly string[] | "all"): Promise<number> {
    checkDeadLetterIds(ids, { prefix: PREFIX });
    const keys = [this.keys.deadLetter, this.keys.deadLetterIndex];
    if (ids === "all") return runScript<number>(this.commands, "purgeDeadLetters", "purge", keys, ["all"]);
    let purged = 0;
    for (let i = 0; i < ids.length; i += CHUNK) {
      purged += await runScript<number>(this.commands, "purgeDeadLetters", "purge", keys, ["ids", ...ids.slice(i, i + CHUNK)]);
    }
    return purged;
  }

  private async countAfter(last: string): Promise<number> {
    let count = 0;
    let start = `(${last}`;
    for (;;) {
      const entries = await this.commands.send<[string, unknown][]>("depth", ["XRANGE", this.keys.stream, start, "+", "COUNT", String(COUNT_PAGE)]);
      count += entries.length;
      if (entries.length < COUNT_PAGE) return count;
      start = `(${entries[entries.length - 1]![0]}`;
    }
  }
}

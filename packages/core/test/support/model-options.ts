import fc from "fast-check";
import type { Thresholds } from "../../src/batcher.js";
import type { BatcherOptions } from "../../src/options.js";
import type { ModelOptions } from "./batcher-model.js";

/** The payload of the property tests: `n` is unique per add; the rest pick group, key and size. */
export interface Payload {
  readonly n: number;
  readonly g: string;
  readonly k: string;
  readonly s: number;
}

/** A generated option set, kept as data so a failure prints readably. */
export interface OptionSpec {
  readonly flushEvery: number;
  readonly flushInterval: number;
  readonly concurrency: number;
  /** `undefined`: the default (10 × flushEvery). */
  readonly maxBuffered: number | undefined;
  /** 0: no `groupBy`; else `groupBy` over that many groups (up to 6). */
  readonly groups: number;
  /** 0: no `dedupeKey`; else that many distinct keys. */
  readonly keys: number;
  readonly coalesce: "first" | "last";
  /** `undefined`: no byte limit. */
  readonly maxBatchBytes: number | undefined;
}

export interface OptionConstraints {
  flushEvery?: fc.Arbitrary<number>;
  flushInterval?: fc.Arbitrary<number>;
  concurrency?: fc.Arbitrary<number>;
  groups?: fc.Arbitrary<number>;
  keys?: fc.Arbitrary<number>;
  maxBatchBytes?: fc.Arbitrary<number | undefined>;
  /** Extra room above flushEvery; `undefined` for the default, Infinity for unbounded. */
  maxBufferedExtra?: fc.Arbitrary<number | undefined>;
}

export function optionSpec(c: OptionConstraints = {}): fc.Arbitrary<OptionSpec> {
  return fc
    .record({
      flushEvery: c.flushEvery ?? fc.integer({ min: 1, max: 8 }),
      flushInterval: c.flushInterval ?? fc.oneof({ weight: 6, arbitrary: fc.integer({ min: 0, max: 50 }) }, { weight: 1, arbitrary: fc.constant(Infinity) }),
      concurrency: c.concurrency ?? fc.oneof({ weight: 6, arbitrary: fc.integer({ min: 1, max: 3 }) }, { weight: 1, arbitrary: fc.constant(Infinity) }),
      extra:
        c.maxBufferedExtra ??
        fc.oneof(
          { weight: 4, arbitrary: fc.integer({ min: 0, max: 12 }) },
          { weight: 1, arbitrary: fc.constant(undefined) },
          { weight: 1, arbitrary: fc.constant(Infinity) },
        ),
      groups: c.groups ?? fc.integer({ min: 0, max: 3 }),
      keys: c.keys ?? fc.oneof({ weight: 1, arbitrary: fc.constant(0) }, { weight: 1, arbitrary: fc.integer({ min: 1, max: 4 }) }),
      coalesce: fc.constantFrom("first" as const, "last" as const),
      maxBatchBytes: c.maxBatchBytes ?? fc.option(fc.integer({ min: 1, max: 30 }), { nil: undefined }),
    })
    .map(({ extra, ...rest }) => ({ ...rest, maxBuffered: extra === undefined ? undefined : rest.flushEvery + extra }));
}

/**
 * Option sets that make cross-group merges common: several groups and keys, `coalesce: "last"`,
 * an interval long enough for items to wait, and few slots so triggers stay pending.
 */
export function crossGroupOptionSpec(): fc.Arbitrary<OptionSpec> {
  return optionSpec({
    flushInterval: fc.integer({ min: 5, max: 50 }),
    concurrency: fc.integer({ min: 1, max: 2 }),
    groups: fc.integer({ min: 2, max: 3 }),
    keys: fc.integer({ min: 2, max: 4 }),
  }).map((spec) => ({ ...spec, coalesce: "last" as const }));
}

export function batcherOptions(spec: OptionSpec): BatcherOptions<Payload> {
  return {
    flushEvery: spec.flushEvery,
    flushInterval: spec.flushInterval,
    concurrency: spec.concurrency,
    ...(spec.maxBuffered === undefined ? {} : { maxBuffered: spec.maxBuffered }),
    ...(spec.groups === 0 ? {} : { groupBy: (p: Payload) => p.g }),
    ...(spec.keys === 0 ? {} : { dedupeKey: (p: Payload) => p.k, coalesce: spec.coalesce }),
    ...(spec.maxBatchBytes === undefined ? {} : { maxBatchBytes: spec.maxBatchBytes, sizeOf: (p: Payload) => p.s }),
  };
}

export function modelOptions(spec: OptionSpec): ModelOptions<Payload> {
  return {
    flushEvery: spec.flushEvery,
    flushInterval: spec.flushInterval,
    concurrency: spec.concurrency,
    maxBuffered: spec.maxBuffered ?? 10 * spec.flushEvery,
    maxBatchBytes: spec.maxBatchBytes ?? Infinity,
    sizeOf: spec.maxBatchBytes === undefined ? undefined : (p) => p.s,
    groupBy: spec.groups === 0 ? undefined : (p) => p.g,
    dedupeKey: spec.keys === 0 ? undefined : (p) => p.k,
    coalesce: spec.coalesce,
  };
}

/**
 * Option sets with more groups and keys than the thresholds of `thresholdSpec` (2–4), so the
 * sweeps of empty groups and stale keys run, among buffered and delayed items.
 */
export function manyKeysOptionSpec(): fc.Arbitrary<OptionSpec> {
  return optionSpec({ groups: fc.integer({ min: 2, max: 6 }), keys: fc.integer({ min: 2, max: 8 }) });
}

/** Compaction thresholds of a Batcher (`Thresholds`) at 2–4, so every compaction runs within a short test. */
export const thresholdSpec: fc.Arbitrary<Thresholds> = fc.record({
  groups: fc.integer({ min: 2, max: 4 }),
  keys: fc.integer({ min: 2, max: 4 }),
  queueHead: fc.integer({ min: 2, max: 4 }),
});

/** What an add command asks for, independent of the options (reduced modulo them). */
export interface AddSpec {
  readonly g: number;
  readonly k: number;
  readonly s: number;
  /** ms after now the item becomes eligible; 0 = now, < 0 = a `notBefore` in the past. */
  readonly delay: number;
  /** Make the payload 1–5 bytes larger than `maxBatchBytes` (when set): `add` must refuse it. */
  readonly oversize: boolean;
}

export const addSpec: fc.Arbitrary<AddSpec> = fc.record({
  // Reduced modulo the spec's groups and keys (see `payloadOf`): room for the most any spec has.
  g: fc.nat(5),
  k: fc.nat(7),
  s: fc.nat(30),
  delay: fc.oneof({ weight: 4, arbitrary: fc.constant(0) }, { weight: 3, arbitrary: fc.integer({ min: 1, max: 60 }) }, { weight: 1, arbitrary: fc.integer({ min: -10, max: -1 }) }),
  oversize: fc.constant(false),
});

/** Same as `addSpec` but with a rare oversize payload. */
export const addSpecWithOversize: fc.Arbitrary<AddSpec> = fc
  .tuple(addSpec, fc.integer({ min: 0, max: 19 }))
  .map(([a, roll]) => ({ ...a, oversize: roll === 0 }));

export function payloadOf(spec: OptionSpec, add: AddSpec, n: number): Payload {
  const max = spec.maxBatchBytes;
  const s = max === undefined ? add.s : add.oversize ? max + 1 + (add.s % 5) : add.s % (max + 1);
  return { n, g: `g${spec.groups === 0 ? 0 : add.g % spec.groups}`, k: `k${spec.keys === 0 ? 0 : add.k % spec.keys}`, s };
}

/**
 * Checks of option and argument values, for `@tranche/core` and for the drivers and transport
 * adapters built on it. Each failure is a `TypeError` that names the value and quotes what was
 * received, prefixed with the package that checked it:
 * "[tranche/redis] Expected `blockMs` to be a number of ms ≥ 0, got -1".
 */

/** The prefix of `@tranche/core`'s own messages, and the default of every check. */
const CORE_PREFIX = "[tranche/core]";

/** Where a check's message says it comes from, e.g. `"[tranche/redis]"`. @default "[tranche/core]" */
export interface CheckOptions {
  prefix?: string;
}

/** Bounds of a number check. */
export interface RangeOptions extends CheckOptions {
  /** Least value allowed. @default 0 */
  min?: number;
  /** Whether `min` itself is refused, so the value must exceed it ("> 0"). @default false */
  exclusiveMin?: boolean;
  /** Greatest value allowed; a finite `max` makes the message read "min..max". @default Infinity */
  max?: number;
  /** Whether `Infinity` passes (it never does when `max` is finite). @default false */
  allowInfinity?: boolean;
}

/**
 * Short, bounded text of a value for an error message: strings JSON-quoted, objects as JSON,
 * both cut to 60 characters; functions by name, arrays by length.
 */
export function quote(value: unknown): string {
  if (typeof value === "string") return JSON.stringify(value.length > 60 ? `${value.slice(0, 57)}...` : value);
  if (typeof value === "function") return `function ${value.name || "(anonymous)"}`;
  if (Array.isArray(value)) return `an array of ${value.length}`;
  if (typeof value === "bigint") return `${value}n`;
  if (value === null || typeof value !== "object") return String(value);
  try {
    const json = JSON.stringify(value);
    return json.length > 60 ? `${json.slice(0, 57)}...` : json;
  } catch {
    return Object.prototype.toString.call(value);
  }
}

/**
 * The `TypeError` of a bad option or argument: "`prefix` Expected \`name\` to be `expected`, got
 * `quote(value)`". Throw it, or reject with it from an async method.
 *
 * ```ts
 * if (typeof o.stream !== "string") throw invalidOption("stream", "a non-empty string", o.stream, "[tranche/redis]");
 * ```
 */
export function invalidOption(name: string, expected: string, value: unknown, prefix = CORE_PREFIX): TypeError {
  return new TypeError(`${prefix} Expected \`${name}\` to be ${expected}, got ${quote(value)}`);
}

/** The bounds as a message reads them: "min..max", "> min and ≤ max", or "≥ min" / "> min", with " or Infinity" when it passes. */
function range(min: number, exclusiveMin: boolean, max: number, allowInfinity: boolean): string {
  if (max !== Infinity) return exclusiveMin ? `> ${min} and ≤ ${max}` : `${min}..${max}`;
  return `${exclusiveMin ? ">" : "≥"} ${min}${allowInfinity ? " or Infinity" : ""}`;
}

/** Whether a number lies within the bounds of a check (`Infinity` is decided by the caller). */
function within(value: number, min: number, exclusiveMin: boolean, max: number): boolean {
  return (exclusiveMin ? value > min : value >= min) && value <= max;
}

/**
 * A duration in ms: a number ≥ `min` (0 unless told; > `min` with `exclusiveMin`) and ≤ `max`,
 * never NaN, finite unless `allowInfinity`. Returns it, or throws `invalidOption` ("a number of
 * ms ≥ 0").
 */
export function checkMs(name: string, value: unknown, options?: RangeOptions): number {
  const min = options?.min ?? 0;
  const exclusiveMin = options?.exclusiveMin ?? false;
  const max = options?.max ?? Infinity;
  const allowInfinity = options?.allowInfinity ?? false;
  if (typeof value !== "number" || !within(value, min, exclusiveMin, max) || (value === Infinity && !allowInfinity)) {
    throw invalidOption(name, `a number of ms ${range(min, exclusiveMin, max, allowInfinity)}`, value, options?.prefix);
  }
  return value;
}

/**
 * A whole number (a safe integer) ≥ `min` (0 unless told; > `min` with `exclusiveMin`) and ≤
 * `max`, or `Infinity` when `allowInfinity`. Returns it, or throws `invalidOption` ("an integer
 * ≥ 1", "an integer 0..20").
 */
export function checkInteger(name: string, value: unknown, options?: RangeOptions): number {
  const min = options?.min ?? 0;
  const exclusiveMin = options?.exclusiveMin ?? false;
  const max = options?.max ?? Infinity;
  const allowInfinity = options?.allowInfinity ?? false;
  const whole = Number.isSafeInteger(value) || (allowInfinity && value === Infinity);
  if (!whole || !within(value as number, min, exclusiveMin, max)) {
    throw invalidOption(name, `an integer ${range(min, exclusiveMin, max, allowInfinity)}`, value, options?.prefix);
  }
  return value as number;
}

/**
 * An absolute time in epoch ms, as `notBefore`, `leaseUntil` and `until` are: a finite number.
 * Returns it, or throws `invalidOption` ("a finite epoch-ms time").
 */
export function checkTime(name: string, value: unknown, options?: CheckOptions): number {
  if (typeof value !== "number" || !Number.isFinite(value)) throw invalidOption(name, "a finite epoch-ms time", value, options?.prefix);
  return value;
}

/**
 * Message headers (`SendOptions.headers`): a plain object of string values, or undefined.
 * Returns it, or throws `invalidOption` ("an object of string values").
 */
export function checkHeaders(name: string, value: unknown, options?: CheckOptions): Readonly<Record<string, string>> | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== "object" || value === null || Array.isArray(value) || Object.values(value).some((v) => typeof v !== "string")) {
    throw invalidOption(name, "an object of string values", value, options?.prefix);
  }
  return value as Readonly<Record<string, string>>;
}

/**
 * The options of `QueueAdmin.deadLetters`: `limit` a positive integer or `Infinity` (the
 * default), `after` a dead letter's id. Returns both, defaults applied.
 */
export function checkDeadLetterPage(options: unknown, check?: CheckOptions): { limit: number; after: string | undefined } {
  if (options === undefined) return { limit: Infinity, after: undefined };
  if (typeof options !== "object" || options === null) throw invalidOption("options", "an object", options, check?.prefix);
  const { limit, after } = options as { limit?: unknown; after?: unknown };
  const checked = limit === undefined ? Infinity : checkInteger("limit", limit, { min: 1, allowInfinity: true, prefix: check?.prefix });
  if (after !== undefined && typeof after !== "string") throw invalidOption("after", "a dead letter's id", after, check?.prefix);
  return { limit: checked, after };
}

/** The ids of `QueueAdmin.redrive` and `purgeDeadLetters`: an array of strings, or `"all"`. */
export function checkDeadLetterIds(ids: unknown, check?: CheckOptions): asserts ids is readonly string[] | "all" {
  if (ids !== "all" && !(Array.isArray(ids) && ids.every((id) => typeof id === "string"))) throw invalidOption("ids", 'an array of ids or "all"', ids, check?.prefix);
}

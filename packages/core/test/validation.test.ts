import { describe, expect, it } from "vitest";
import { checkDeadLetterIds, checkDeadLetterPage, checkHeaders, checkInteger, checkMs, checkTime, invalidOption, quote } from "../src/internal.js";

describe("quote", () => {
  it.each([
    ["a string, JSON-quoted", "a\"b", '"a\\"b"'],
    ["a number", 1.5, "1.5"],
    ["NaN", Number.NaN, "NaN"],
    ["-Infinity", -Infinity, "-Infinity"],
    ["undefined", undefined, "undefined"],
    ["null", null, "null"],
    ["a boolean", false, "false"],
    ["a bigint", 10n, "10n"],
    ["a symbol", Symbol("s"), "Symbol(s)"],
    ["an object, as JSON", { a: 1 }, '{"a":1}'],
    ["an array, by length", [1, 2, 3], "an array of 3"],
    ["a named function", function handler() {}, "function handler"],
  ])("shows %s", (_, value, shown) => {
    expect(quote(value)).toBe(shown);
  });

  it("shows an anonymous function as such", () => {
    expect(quote((() => () => {})())).toBe("function (anonymous)");
  });

  it("cuts long strings and objects to 60 characters", () => {
    expect(quote("x".repeat(100))).toBe(JSON.stringify(`${"x".repeat(57)}...`));
    const shown = quote({ text: "y".repeat(100) });
    expect(shown).toHaveLength(60);
    expect(shown.endsWith("...")).toBe(true);
  });

  it("keeps a string of 60 characters and an object whose JSON is 60 characters whole", () => {
    expect(quote("x".repeat(60))).toBe(JSON.stringify("x".repeat(60)));
    expect(quote("x".repeat(61))).toBe(JSON.stringify(`${"x".repeat(57)}...`));
    const sixty = { text: "y".repeat(49) }; // {"text":"…"} is 11 characters around the text
    expect(JSON.stringify(sixty)).toHaveLength(60);
    expect(quote(sixty)).toBe(JSON.stringify(sixty));
  });

  it("falls back to the object tag when JSON fails", () => {
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    expect(quote(cyclic)).toBe("[object Object]");
  });
});

describe("invalidOption", () => {
  it("is a TypeError that names the option and quotes the value, with core's prefix by default", () => {
    const error = invalidOption("flushEvery", "an integer ≥ 1", 0);
    expect(error).toBeInstanceOf(TypeError);
    expect(error.message).toBe("[tranche/core] Expected `flushEvery` to be an integer ≥ 1, got 0");
  });

  it("takes a package's prefix", () => {
    expect(invalidOption("stream", "a non-empty string", "", "[tranche/redis]").message).toBe('[tranche/redis] Expected `stream` to be a non-empty string, got ""');
  });
});

describe("checkMs", () => {
  it("returns a duration in range", () => {
    expect(checkMs("wait", 0)).toBe(0);
    expect(checkMs("wait", 2.5)).toBe(2.5);
    expect(checkMs("wait", 100, { min: 100 })).toBe(100);
    expect(checkMs("wait", 20, { max: 20 })).toBe(20);
    expect(checkMs("wait", Infinity, { allowInfinity: true })).toBe(Infinity);
  });

  it.each([
    ["a negative number", -1, undefined, "[tranche/core] Expected `wait` to be a number of ms ≥ 0, got -1"],
    ["NaN", Number.NaN, undefined, "[tranche/core] Expected `wait` to be a number of ms ≥ 0, got NaN"],
    ["Infinity unless allowed", Infinity, undefined, "[tranche/core] Expected `wait` to be a number of ms ≥ 0, got Infinity"],
    ["a string", "5", undefined, '[tranche/core] Expected `wait` to be a number of ms ≥ 0, got "5"'],
    ["less than min", 5, { min: 10 }, "[tranche/core] Expected `wait` to be a number of ms ≥ 10, got 5"],
    ["-Infinity when Infinity is allowed", -Infinity, { allowInfinity: true }, "[tranche/core] Expected `wait` to be a number of ms ≥ 0 or Infinity, got -Infinity"],
    ["more than max", 21, { max: 20 }, "[tranche/core] Expected `wait` to be a number of ms 0..20, got 21"],
    ["Infinity with a finite max", Infinity, { max: 20, allowInfinity: true }, "[tranche/core] Expected `wait` to be a number of ms 0..20, got Infinity"],
    ["with the package's prefix", -1, { prefix: "[tranche/nats]" }, "[tranche/nats] Expected `wait` to be a number of ms ≥ 0, got -1"],
    ["min itself when exclusiveMin", 0, { exclusiveMin: true }, "[tranche/core] Expected `wait` to be a number of ms > 0, got 0"],
    ["Infinity when exclusiveMin", Infinity, { exclusiveMin: true }, "[tranche/core] Expected `wait` to be a number of ms > 0, got Infinity"],
    ["more than max when exclusiveMin", 21, { exclusiveMin: true, max: 20 }, "[tranche/core] Expected `wait` to be a number of ms > 0 and ≤ 20, got 21"],
  ])("refuses %s", (_, value, options, message) => {
    expect(() => checkMs("wait", value, options)).toThrow(new TypeError(message));
  });

  it("with exclusiveMin, returns a duration above min", () => {
    expect(checkMs("wait", 0.5, { exclusiveMin: true })).toBe(0.5);
    expect(checkMs("wait", 20, { exclusiveMin: true, max: 20 })).toBe(20);
    expect(checkMs("wait", Infinity, { exclusiveMin: true, allowInfinity: true })).toBe(Infinity);
  });
});

describe("checkInteger", () => {
  it("returns a whole number in range", () => {
    expect(checkInteger("max", 0)).toBe(0);
    expect(checkInteger("max", 7, { min: 1 })).toBe(7);
    expect(checkInteger("max", 20, { min: 0, max: 20 })).toBe(20);
    expect(checkInteger("max", Infinity, { min: 1, allowInfinity: true })).toBe(Infinity);
  });

  it.each([
    ["a fraction", 1.5, { min: 1 }, "[tranche/core] Expected `max` to be an integer ≥ 1, got 1.5"],
    ["less than min", 0, { min: 1 }, "[tranche/core] Expected `max` to be an integer ≥ 1, got 0"],
    ["an unsafe integer", 2 ** 53, undefined, "[tranche/core] Expected `max` to be an integer ≥ 0, got 9007199254740992"],
    ["NaN", Number.NaN, undefined, "[tranche/core] Expected `max` to be an integer ≥ 0, got NaN"],
    ["Infinity unless allowed", Infinity, { min: 1 }, "[tranche/core] Expected `max` to be an integer ≥ 1, got Infinity"],
    ["-Infinity when Infinity is allowed", -Infinity, { min: 1, allowInfinity: true }, "[tranche/core] Expected `max` to be an integer ≥ 1 or Infinity, got -Infinity"],
    ["a numeric string", "3", undefined, '[tranche/core] Expected `max` to be an integer ≥ 0, got "3"'],
    ["more than max", 21, { min: 0, max: 20 }, "[tranche/core] Expected `max` to be an integer 0..20, got 21"],
    ["with the package's prefix", 0, { min: 1, prefix: "[tranche/sqs]" }, "[tranche/sqs] Expected `max` to be an integer ≥ 1, got 0"],
    ["min itself when exclusiveMin", 0, { exclusiveMin: true }, "[tranche/core] Expected `max` to be an integer > 0, got 0"],
  ])("refuses %s", (_, value, options, message) => {
    expect(() => checkInteger("max", value, options)).toThrow(new TypeError(message));
  });
});

describe("the checks without options", () => {
  it("throw their TypeError with core's prefix", () => {
    const refused = (check: () => unknown, message: string) => expect(check).toThrow(new TypeError(`[tranche/core] Expected ${message}`));
    refused(() => checkTime("until", Number.NaN), "`until` to be a finite epoch-ms time, got NaN");
    refused(() => checkHeaders("headers", { retries: 3 }), '`headers` to be an object of string values, got {"retries":3}');
    refused(() => checkDeadLetterPage(null), "`options` to be an object, got null");
    refused(() => checkDeadLetterPage({ limit: 0 }), "`limit` to be an integer ≥ 1 or Infinity, got 0");
    refused(() => checkDeadLetterPage({ after: 7 }), "`after` to be a dead letter's id, got 7");
    refused(() => checkDeadLetterIds("some"), '`ids` to be an array of ids or "all", got "some"');
  });
});

describe("checkTime", () => {
  it("returns a finite epoch-ms time, negative or fractional included", () => {
    expect(checkTime("until", 1_700_000_000_000)).toBe(1_700_000_000_000);
    expect(checkTime("until", -5.5)).toBe(-5.5);
  });

  it.each([
    ["NaN", Number.NaN, "NaN"],
    ["Infinity", Infinity, "Infinity"],
    ["a Date", new Date(0), '"1970-01-01T00:00:00.000Z"'],
    ["undefined", undefined, "undefined"],
  ])("refuses %s", (_, value, shown) => {
    expect(() => checkTime("until", value, { prefix: "[tranche/memory]" })).toThrow(
      new TypeError(`[tranche/memory] Expected \`until\` to be a finite epoch-ms time, got ${shown}`),
    );
  });
});

describe("checkHeaders", () => {
  it("returns undefined or a plain object of string values as given", () => {
    const headers = { traceparent: "00-abc-def-01", tenant: "" };
    expect(checkHeaders("headers", undefined)).toBeUndefined();
    expect(checkHeaders("headers", headers)).toBe(headers);
    expect(checkHeaders("headers", {})).toEqual({});
  });

  it.each([
    ["null", null, "null"],
    ["a string", "traceparent", '"traceparent"'],
    ["an array", ["a"], "an array of 1"],
    ["a number value", { retries: 3 }, '{"retries":3}'],
    ["one value that is not a string among strings", { a: "1", b: undefined }, '{"a":"1"}'],
  ])("refuses %s", (_, value, shown) => {
    expect(() => checkHeaders("headers", value, { prefix: "[tranche/nats]" })).toThrow(
      new TypeError(`[tranche/nats] Expected \`headers\` to be an object of string values, got ${shown}`),
    );
  });
});

describe("checkDeadLetterPage and checkDeadLetterIds", () => {
  it("default to every letter from the first, and keep what is given", () => {
    expect(checkDeadLetterPage(undefined)).toEqual({ limit: Infinity, after: undefined });
    expect(checkDeadLetterPage({})).toEqual({ limit: Infinity, after: undefined });
    expect(checkDeadLetterPage({ limit: 3, after: "a" })).toEqual({ limit: 3, after: "a" });
    expect(() => checkDeadLetterIds(["a", "b"])).not.toThrow();
    expect(() => checkDeadLetterIds("all")).not.toThrow();
  });

  it.each([
    [null, "options", "an object", "null"],
    [5, "options", "an object", "5"],
    ["first", "options", "an object", '"first"'],
    [{ limit: 0 }, "limit", "an integer ≥ 1 or Infinity", "0"],
    [{ limit: 1.5 }, "limit", "an integer ≥ 1 or Infinity", "1.5"],
    [{ after: 7 }, "after", "a dead letter's id", "7"],
  ])("refuse a page of %j", (options, name, expected, shown) => {
    expect(() => checkDeadLetterPage(options, { prefix: "[tranche/redis]" })).toThrow(new TypeError(`[tranche/redis] Expected \`${name}\` to be ${expected}, got ${shown}`));
  });

  it.each([["some", '"some"'], [[1], "an array of 1"], [["a", 2], "an array of 2"], [undefined, "undefined"]])("refuse ids %j", (ids, shown) => {
    expect(() => checkDeadLetterIds(ids, { prefix: "[tranche/sqs]" })).toThrow(new TypeError(`[tranche/sqs] Expected \`ids\` to be an array of ids or "all", got ${shown}`));
  });
});

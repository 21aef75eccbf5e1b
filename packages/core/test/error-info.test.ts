// errorInfo keeps of a thrown value only strings, in one shape for any value: a name, a message,
// and the stack when there is one.
import { describe, expect, it } from "vitest";
import { TimeoutError } from "../src/index.js";
import { errorInfo } from "../src/internal.js";

describe("errorInfo", () => {
  it("keeps an Error's name, message and stack", () => {
    const error = new TimeoutError(250);
    expect(errorInfo(error)).toEqual({ name: "TimeoutError", message: "[tranche/core] handler timed out after 250 ms", stack: error.stack });
  });

  it("leaves the stack out when there is none as a string", () => {
    const error = Object.assign(new Error("no stack"), { stack: undefined });
    expect(errorInfo(error)).toStrictEqual({ name: "Error", message: "no stack" });
  });

  it("names an object without a string name Error, and shows it as its message when it has no string message", () => {
    expect(errorInfo({ name: 7, message: "plain object" })).toStrictEqual({ name: "Error", message: "plain object" });
    expect(errorInfo({ code: "ECONNRESET", toString: () => "reset by peer" })).toStrictEqual({ name: "Error", message: "reset by peer" });
  });

  it.each([
    ["a string", "boom", "boom"],
    ["a number", 42, "42"],
    ["undefined", undefined, "undefined"],
    ["null", null, "null"],
  ])("makes %s an Error with the value as its message", (_, value, message) => {
    expect(errorInfo(value)).toStrictEqual({ name: "Error", message });
  });
});

// FC_RUNS, read by every property test through `fcRuns`: a bad value fails loudly instead of
// letting a property pass with zero cases.
import { afterEach, expect, it } from "vitest";
import { fcRuns } from "../../../scripts/fc-runs.js";

const saved = process.env.FC_RUNS;
afterEach(() => {
  if (saved === undefined) delete process.env.FC_RUNS;
  else process.env.FC_RUNS = saved;
});

it("is the test's default when FC_RUNS is unset, and FC_RUNS when it is a whole number ≥ 1", () => {
  delete process.env.FC_RUNS;
  expect(fcRuns(300)).toBe(300);
  process.env.FC_RUNS = "7";
  expect(fcRuns(300)).toBe(7);
});

it.each(["", "0", "-3", "2.5", "lots"])("refuses FC_RUNS=%j with a TypeError quoting it", (raw) => {
  process.env.FC_RUNS = raw;
  expect(() => fcRuns(300)).toThrow(TypeError);
  expect(() => fcRuns(300)).toThrow(`Expected FC_RUNS to be an integer ≥ 1, got ${JSON.stringify(raw)}`);
});

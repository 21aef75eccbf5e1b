/**
 * The runs of a property test: `FC_RUNS` when it is set, else the test's own default. A value
 * that is not a whole number ≥ 1 (empty, 0, "lots") throws, so a typo cannot pass by running
 * no case at all.
 */
export function fcRuns(fallback: number): number {
  const raw = process.env.FC_RUNS;
  if (raw === undefined) return fallback;
  const runs = Number(raw);
  if (!Number.isInteger(runs) || runs < 1) throw new TypeError(`Expected FC_RUNS to be an integer ≥ 1, got ${JSON.stringify(raw)}`);
  return runs;
}

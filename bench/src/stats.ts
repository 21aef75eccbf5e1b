export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? (sorted[mid] as number) : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}

/** Half the range of the rounds, relative to their median: a rough ± for the table. */
export function spread(values: readonly number[]): number {
  if (values.length < 2) return 0;
  return (Math.max(...values) - Math.min(...values)) / 2 / median(values);
}

/** Full collection, so a round does not pay for the garbage of the one before it. */
export function collect(): void {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (gc === undefined) throw new Error("[tranche/bench] run node with --expose-gc");
  gc();
  gc();
}

export const yieldToEventLoop = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/**
 * The order of contenders in round `round`: a Williams design (balanced Latin
 * square), so that over `n` rounds each contender runs once in each position and
 * right after each other one. Debt a round leaves behind (old-generation garbage,
 * a pending major GC) is then spread evenly instead of always landing on the same
 * next contender.
 */
export function roundOrder(n: number, round: number): number[] {
  const order: number[] = [];
  const start = ((round % n) + n) % n;
  for (let i = 0; i < n; i++) {
    // 0, 1, n−1, 2, n−2, … shifted by the round.
    const step = i === 0 ? 0 : i % 2 === 1 ? (i + 1) / 2 : n - i / 2;
    order.push((start + step) % n);
  }
  return order;
}

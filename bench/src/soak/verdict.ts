import { median } from "../stats.js";

/** The state of one soak run at one checkpoint. */
export interface Checkpoint {
  /** Items with a terminal outcome (acked or dead-lettered) so far. */
  readonly items: number;
  /** Wall-clock ms since the start, the checkpoints' own full GCs left out. */
  readonly ms: number;
  /** CPU ms of this process and of the servers it started, the checkpoints' GCs left out. */
  readonly cpuMs: number;
  /** `heapUsed` after a full GC, in bytes. */
  readonly heap: number;
  readonly rss: number;
}

/** What a soak run is held to. */
export interface Criteria {
  /** Checkpoints at the start left out of the verdict (caches, stores and JIT filling up). */
  readonly warmup: number;
  /** Most heap growth per item after warm-up, in bytes (the slope through the checkpoints). */
  readonly maxBytesPerItem: number;
  /** Least throughput of the last quarter after warm-up, relative to the first quarter. */
  readonly minThroughputRatio: number;
}

export interface Verdict {
  /** Heap growth per item after warm-up: the slope of heap over items (see `slope`). */
  readonly bytesPerItem: number;
  /** Items per second in the first and last quarters after warm-up (medians of their intervals), and last ÷ first. */
  readonly throughput: Quarters;
  /** The same per CPU-second of this process and the servers it started: what other work on the machine does not change. */
  readonly cpuThroughput: Quarters;
  readonly pass: boolean;
  readonly failures: string[];
}

export interface Quarters {
  readonly first: number;
  readonly last: number;
  readonly ratio: number;
}

/**
 * Slope of `ys` over `xs` by Theil–Sen: the median of the slopes between every two points, so a
 * checkpoint or two that a major GC's timing put off the line do not tilt it.
 */
export function slope(xs: readonly number[], ys: readonly number[]): number {
  const slopes: number[] = [];
  for (let i = 0; i < xs.length; i++) {
    for (let j = i + 1; j < xs.length; j++) {
      const dx = (xs[j] as number) - (xs[i] as number);
      if (dx !== 0) slopes.push(((ys[j] as number) - (ys[i] as number)) / dx);
    }
  }
  return slopes.length === 0 ? 0 : median(slopes);
}

/** Items per unit of `span` in each interval between consecutive checkpoints. */
function rates(points: readonly Checkpoint[], span: (c: Checkpoint) => number): number[] {
  const out: number[] = [];
  for (let i = 1; i < points.length; i++) {
    const a = points[i - 1] as Checkpoint;
    const b = points[i] as Checkpoint;
    out.push(((b.items - a.items) / Math.max(1e-9, span(b) - span(a))) * 1000);
  }
  return out;
}

function quarters(values: readonly number[]): Quarters {
  const size = Math.max(1, Math.floor(values.length / 4));
  const first = median(values.slice(0, size));
  const last = median(values.slice(-size));
  return { first, last, ratio: last / first };
}

/**
 * Judges a run by its checkpoints after warm-up. It fails when the heap after GC grows by more
 * than `maxBytesPerItem` per item (a robust slope, so one noisy checkpoint does not decide), or when
 * throughput falls below `minThroughputRatio` from the first quarter to the last, both per
 * wall-clock second and per CPU-second: a worker that slows down does so in both, while other
 * processes taking the machine's cores only change the first.
 */
export function judge(checkpoints: readonly Checkpoint[], criteria: Criteria): Verdict {
  const after = checkpoints.slice(criteria.warmup);
  const failures: string[] = [];
  if (after.length < 5) failures.push(`only ${after.length} checkpoints after warm-up; need at least 5`);
  const bytesPerItem = slope(
    after.map((c) => c.items),
    after.map((c) => c.heap),
  );
  const throughput = quarters(rates(after, (c) => c.ms));
  const cpuThroughput = quarters(rates(after, (c) => c.cpuMs));
  if (bytesPerItem > criteria.maxBytesPerItem) {
    failures.push(`heap grows by ${bytesPerItem.toFixed(2)} bytes per item after warm-up (at most ${criteria.maxBytesPerItem})`);
  }
  if (throughput.ratio < criteria.minThroughputRatio && cpuThroughput.ratio < criteria.minThroughputRatio) {
    failures.push(
      `throughput fell to ${(throughput.ratio * 100).toFixed(0)} % (wall clock) and ${(cpuThroughput.ratio * 100).toFixed(0)} % (per CPU-second) of the first quarter's (at least ${(criteria.minThroughputRatio * 100).toFixed(0)} %)`,
    );
  }
  return { bytesPerItem, throughput, cpuThroughput, pass: failures.length === 0, failures };
}

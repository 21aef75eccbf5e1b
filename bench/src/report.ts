import type { BatcherResult } from "./batcher-suite.js";
import { variantLabels } from "./batcher-suite.js";
import type { ContenderName } from "./contenders.js";
import { type Drive, type InProcessResult, driveLabels } from "./in-process.js";
import type { MemoryResult } from "./memory.js";
import { spread } from "./stats.js";
import { type TransportRun, workerVsRawTarget } from "./transport-suite.js";

/** The mandated shape of one entry of `runs` in results/latest.json. */
export type Run =
  | {
      suite: "in-process" | "in-process-no-yield" | "batcher";
      name: ContenderName;
      batchSize: number;
      itemsPerSec: number;
    }
  | TransportRun;

/** The `suite` of an in-process run in `runs`: "in-process" is the yielding drive, as before there were two. */
export const inProcessSuite: Record<Drive, "in-process" | "in-process-no-yield"> = { yield: "in-process", "no-yield": "in-process-no-yield" };

export const targets = {
  /** batched() ÷ dataloader at flushEvery 100, callers yielding between chunks: the first design's aim. */
  vsDataloader: 1.0,
  /** batched() ÷ dataloader at flushEvery 100, in each drive. */
  vsDataloaderEachDrive: 0.8,
  /** batched() ÷ floor at flushEvery 100. */
  vsFloor: 0.9,
  /** Batcher add → poll → ack, items/s. */
  batcherItemsPerSec: 10_000_000,
  /** Bytes per held Batcher item beyond the payload. */
  bytesPerHeldItem: 200,
} as const;

const rate = (perSec: number): string =>
  perSec >= 1e6 ? `${(perSec / 1e6).toFixed(2)} M/s` : `${(perSec / 1e3).toFixed(0)} k/s`;
const plusMinus = (rounds: readonly number[]): string => `±${(spread(rounds) * 100).toFixed(0)}%`;
const ratio = (a: number | undefined, b: number | undefined): string =>
  a === undefined || b === undefined ? "–" : `${(a / b).toFixed(2)}×`;

export function inProcessTable(results: readonly InProcessResult[], names: readonly ContenderName[], rounds: number): string {
  const sizes = [...new Set(results.map((r) => r.batchSize))];
  const find = (name: ContenderName, size: number) => results.find((r) => r.name === name && r.batchSize === size);
  const lines = [
    `| flushEvery | ${names.join(" | ")} | tranche/dataloader | tranche/floor |`,
    `|---:|${names.map(() => "---:").join("|")}|---:|---:|`,
  ];
  for (const size of sizes) {
    const cells = names.map((name) => {
      const r = find(name, size);
      return r === undefined ? "–" : `${rate(r.itemsPerSec)} ${plusMinus(r.rounds)}`;
    });
    const t = find("tranche", size)?.itemsPerSec;
    lines.push(`| ${size} | ${cells.join(" | ")} | ${ratio(t, find("dataloader", size)?.itemsPerSec)} | ${ratio(t, find("floor", size)?.itemsPerSec)} |`);
  }
  return `${lines.join("\n")}\n\nitems/s, median of ${rounds} rounds; each round runs every contender, in a balanced order (each runs right after each other one equally often); ± = half the range of the rounds.`;
}

export function batcherTable(results: readonly BatcherResult[], rounds: number): string {
  const lines = ["| Batcher path | batch size | items/s |", "|---|---:|---:|"];
  for (const r of results) lines.push(`| ${variantLabels[r.variant]} | ${r.batchSize} | ${rate(r.itemsPerSec)} ${plusMinus(r.rounds)} |`);
  return `${lines.join("\n")}\n\nmedian of ${rounds} rounds, variants in a balanced order; the first row is the one reported in \`runs\`.`;
}

export function memoryTable(results: readonly MemoryResult[]): string {
  const lines = ["| held | items | bytes/item |", "|---|---:|---:|"];
  for (const r of results) lines.push(`| ${r.what} | ${r.items.toLocaleString("en-US")} | ${r.bytesPerItem.toFixed(1)} |`);
  return `${lines.join("\n")}\n\nheapUsed growth after global.gc(), payload a small integer (0 bytes).`;
}

/** One row per transport suite: worker and raw items/s (median of the rounds) and their ratio. */
export function transportTable(runs: readonly TransportRun[], samples: Record<string, Record<"worker" | "raw", number[]>>): string {
  const lines = ["| suite | batch | rounds | worker | raw | worker/raw |", "|---|---:|---:|---:|---:|---:|"];
  for (const suite of [...new Set(runs.map((r) => r.suite))]) {
    const worker = runs.find((r) => r.suite === suite && r.name === "worker");
    const raw = runs.find((r) => r.suite === suite && r.name === "raw");
    const cell = (r: TransportRun | undefined, name: "worker" | "raw") =>
      r === undefined ? "–" : `${rate(r.itemsPerSec)} ${plusMinus(samples[suite]?.[name] ?? [])}`;
    lines.push(`| ${suite} | ${worker?.batchSize ?? raw?.batchSize} | ${samples[suite]?.worker.length ?? 0} | ${cell(worker, "worker")} | ${cell(raw, "raw")} | ${ratio(worker?.itemsPerSec, raw?.itemsPerSec)} |`);
  }
  return `${lines.join("\n")}\n\nitems/s, median of the rounds, worker and raw alternating; worker: a \`Worker\` with \`flushEvery: batch\` (settings in each suite's file under src/transports/); raw: \`receive(batch)\` → handler → \`ack\` in a loop.`;
}

export function transportTargetLines(runs: readonly TransportRun[]): string[] {
  const lines: string[] = [];
  for (const suite of [...new Set(runs.map((r) => r.suite))]) {
    const worker = runs.find((r) => r.suite === suite && r.name === "worker")?.itemsPerSec;
    const raw = runs.find((r) => r.suite === suite && r.name === "raw")?.itemsPerSec;
    if (worker === undefined || raw === undefined) continue;
    lines.push(`${worker / raw >= workerVsRawTarget ? "PASS" : "MISS"} ${suite}: worker ≥ ${workerVsRawTarget}× raw: ${(worker / raw).toFixed(2)}×`);
  }
  return lines;
}

export function targetLines(inProcess: readonly InProcessResult[], batcher: readonly BatcherResult[], memory: readonly MemoryResult[]): string[] {
  const lines: string[] = [];
  const mark = (ok: boolean) => (ok ? "PASS" : "MISS");
  const at100 = (name: ContenderName, drive: Drive = "yield") =>
    inProcess.find((r) => r.name === name && r.drive === drive && r.batchSize === 100)?.itemsPerSec;
  for (const drive of ["yield", "no-yield"] as const) {
    const t = at100("tranche", drive);
    const d = at100("dataloader", drive);
    if (t === undefined || d === undefined) continue;
    lines.push(`${mark(t / d >= targets.vsDataloaderEachDrive)} batched() ≥ ${targets.vsDataloaderEachDrive}× dataloader at flushEvery 100, ${driveLabels[drive]}: ${(t / d).toFixed(2)}×`);
  }
  const t = at100("tranche");
  const d = at100("dataloader");
  const f = at100("floor");
  if (t !== undefined && d !== undefined) {
    lines.push(`${mark(t / d >= targets.vsDataloader)} batched() ≥ ${targets.vsDataloader}× dataloader at flushEvery 100, callers yielding: ${(t / d).toFixed(2)}×`);
  }
  if (t !== undefined && f !== undefined) {
    lines.push(`${mark(t / f >= targets.vsFloor)} batched() ≥ ${targets.vsFloor}× floor at flushEvery 100: ${(t / f).toFixed(2)}×`);
  }
  const b = batcher[0];
  if (b !== undefined) {
    lines.push(`${mark(b.itemsPerSec >= targets.batcherItemsPerSec)} Batcher ≥ 10M items/s (public API): ${rate(b.itemsPerSec)}`);
  }
  const m = memory.find((r) => r.name === "tranche-batcher");
  if (m !== undefined) {
    lines.push(`${mark(m.bytesPerItem <= targets.bytesPerHeldItem)} ≤ ${targets.bytesPerHeldItem} bytes per held Batcher item: ${m.bytesPerItem.toFixed(1)}`);
  }
  return lines;
}

import { execFileSync, spawn } from "node:child_process";
import { mkdirSync, renameSync, writeFileSync } from "node:fs";
import os from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { FAIL_EVERY, RETRY_DELAY, RETRY_EVERY, type SoakRun, WAIT_EVERY, drive, mb } from "./soak/drive.js";
import { type SoakTarget, type SoakTargetName, Unavailable, soakTargets } from "./soak/targets.js";
import { type Criteria, type Verdict, judge } from "./soak/verdict.js";

const usage = `Usage: node --expose-gc dist/soak.js [--quick] [--only memory,redis,nats,amqp] [--items N] [--checkpoints N] [--out FILE]
Runs a Worker over each transport until N items have their outcome (1 in ${RETRY_EVERY} retried once,
1 in ${FAIL_EVERY} dead-lettered, outcomes stored), taking the heap after a full GC and the throughput at
each checkpoint. Fails (exit 1) when the heap grows after warm-up or throughput falls (see bench/README.md).
A full run writes results/soak.json; --quick, --only, --items and --checkpoints write nothing unless --out is given.`;

const { values: args } = parseArgs({
  options: {
    quick: { type: "boolean", default: false },
    only: { type: "string" },
    items: { type: "string" },
    checkpoints: { type: "string" },
    out: { type: "string" },
    // Internal: the process that soaks one transport.
    target: { type: "string" },
    help: { type: "boolean", default: false },
  },
});
if (args.help) {
  console.log(usage);
  process.exit(0);
}
if ((globalThis as { gc?: unknown }).gc === undefined) {
  console.error("[tranche/bench] run the soak with node --expose-gc (pnpm soak does)");
  process.exit(2);
}

const mode = args.quick ? "quick" : "full";
const names = (args.only?.split(",") ?? soakTargets.map((t) => t.name)) as SoakTargetName[];
for (const name of names) {
  if (!soakTargets.some((t) => t.name === name)) {
    console.error(`unknown transport ${JSON.stringify(name)}\n${usage}`);
    process.exit(2);
  }
}
const checkpointCount = args.checkpoints === undefined ? (args.quick ? 12 : 24) : Number(args.checkpoints);
const criteria: Criteria = {
  // A quarter of the run: the JIT, the stores (MemoryResultStore's 100,000 outcomes) and V8's heap sizing settle in it.
  warmup: Math.ceil(checkpointCount / 4),
  maxBytesPerItem: 5,
  minThroughputRatio: 0.8,
};
const narrowed = args.quick || args.only !== undefined || args.items !== undefined || args.checkpoints !== undefined;
const here = dirname(fileURLToPath(import.meta.url));
const out = args.out ?? (narrowed ? undefined : join(here, "..", "results", "soak.json"));
const log = (line: string) => console.error(line);

interface TargetReport {
  readonly name: SoakTargetName;
  readonly what: string;
  readonly skipped?: string;
  readonly error?: string;
  readonly items?: number;
  readonly run?: Omit<SoakRun, "checkpoints">;
  readonly checkpoints?: SoakRun["checkpoints"];
  readonly verdict?: Verdict;
}

async function soak(target: SoakTarget): Promise<TargetReport> {
  const items = args.items === undefined ? target.items[mode] : Number(args.items);
  log(`\n${target.name}: ${target.what}; ${items.toLocaleString("en-US")} items, ${checkpointCount} checkpoints`);
  let opened;
  try {
    opened = await target.open();
  } catch (error) {
    if (!(error instanceof Unavailable)) throw error;
    log(`  skipped: ${error.message}`);
    return { name: target.name, what: target.what, skipped: error.message };
  }
  let run: SoakRun;
  try {
    run = await drive(opened.setup, { items, checkpoints: checkpointCount, log });
  } catch (error) {
    log(`  FAILED: ${(error as Error).message}`);
    return { name: target.name, what: target.what, items, error: (error as Error).message };
  } finally {
    await opened.close();
  }
  const verdict = judge(run.checkpoints, criteria);
  const { checkpoints, ...counts } = run;
  log(
    `  ${verdict.pass ? "PASS" : "FAIL"}: ${verdict.bytesPerItem.toFixed(2)} bytes per item after warm-up; ` +
      `throughput first → last quarter ${kps(verdict.throughput.first)} → ${kps(verdict.throughput.last)} (${pct(verdict.throughput.ratio)}), ` +
      `per CPU-second ${kps(verdict.cpuThroughput.first)} → ${kps(verdict.cpuThroughput.last)} (${pct(verdict.cpuThroughput.ratio)})`,
  );
  for (const failure of verdict.failures) log(`  - ${failure}`);
  log(`  ${counts.acked} acked, ${counts.deadLettered} dead-lettered, ${counts.retried} retried, ${counts.waits.resolved}/${counts.waits.awaited} awaited outcomes resolved, ${counts.errors} worker errors`);
  return { name: target.name, what: target.what, items, run: counts, checkpoints, verdict };
}

const kps = (rate: number): string => `${(rate / 1000).toFixed(1)} k/s`;
const pct = (ratio: number): string => `${(ratio * 100).toFixed(0)} %`;

function table(reports: readonly TargetReport[]): string {
  const lines = [
    "| transport | items | heap after GC, first → last checkpoint | bytes/item after warm-up | items/s, first → last quarter | per CPU-second | verdict |",
    "|---|---:|---|---:|---|---|---|",
  ];
  for (const r of reports) {
    if (r.verdict === undefined || r.checkpoints === undefined) {
      lines.push(`| ${r.name} | | | | | | ${r.skipped !== undefined ? `skipped: ${r.skipped}` : `error: ${r.error}`} |`);
      continue;
    }
    const v = r.verdict;
    const first = r.checkpoints[criteria.warmup] ?? r.checkpoints[0];
    const last = r.checkpoints[r.checkpoints.length - 1];
    lines.push(
      `| ${r.name} | ${r.items?.toLocaleString("en-US")} | ${mb(first!.heap).trim()} → ${mb(last!.heap).trim()} | ${v.bytesPerItem.toFixed(2)} | ` +
        `${kps(v.throughput.first)} → ${kps(v.throughput.last)} (${pct(v.throughput.ratio)}) | ${kps(v.cpuThroughput.first)} → ${kps(v.cpuThroughput.last)} (${pct(v.cpuThroughput.ratio)}) | ${v.pass ? "pass" : "FAIL"} |`,
    );
  }
  return lines.join("\n");
}

function machine() {
  let commit: string | undefined;
  let dirty: boolean | undefined;
  try {
    commit = execFileSync("git", ["rev-parse", "HEAD"], { cwd: here, encoding: "utf8" }).trim();
    dirty = execFileSync("git", ["status", "--porcelain", "--", "../packages"], { cwd: join(here, ".."), encoding: "utf8" }).trim() !== "";
  } catch {
    // Not a git checkout.
  }
  const cpus = os.cpus();
  return { cpu: cpus[0]?.model.trim(), cores: cpus.length, memoryGiB: Math.round(os.totalmem() / 2 ** 30), node: process.version, v8: process.versions.v8, commit, packagesDirty: dirty };
}

/**
 * Soaks one transport in a process of its own: its heap, its JIT and V8's heap sizing owe
 * nothing to the transports before it. Its log goes to stderr, its report to stdout.
 */
function inChild(name: SoakTargetName): Promise<TargetReport> {
  const passed = process.argv.slice(2).filter((arg, i, all) => arg !== "--only" && all[i - 1] !== "--only" && !arg.startsWith("--only=") && arg !== "--out" && all[i - 1] !== "--out" && !arg.startsWith("--out="));
  const child = spawn(process.execPath, ["--expose-gc", fileURLToPath(import.meta.url), ...passed, "--target", name], { stdio: ["ignore", "pipe", "inherit"] });
  let stdout = "";
  child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
  return new Promise((resolve) => {
    child.once("exit", (code, signal) => {
      const target = soakTargets.find((t) => t.name === name) as SoakTarget;
      try {
        resolve(JSON.parse(stdout) as TargetReport);
      } catch {
        resolve({ name, what: target.what, error: `the soak process exited (${code ?? signal}) without a report` });
      }
    });
  });
}

async function main(): Promise<void> {
  const info = machine();
  log(`tranche soak (${mode}) on ${info.cpu} ×${info.cores}, node ${info.node}`);
  const started = Date.now();
  const reports: TargetReport[] = [];
  for (const target of soakTargets) if (names.includes(target.name)) reports.push(await inChild(target.name));
  const minutes = (Date.now() - started) / 60_000;
  const pass = reports.every((r) => r.skipped !== undefined || r.verdict?.pass === true);
  console.log(`# tranche soak (${mode}), ${new Date().toISOString()}, ${minutes.toFixed(1)} min\n`);
  console.log(`${info.cpu} ×${info.cores}, node ${info.node}\n`);
  console.log(table(reports));
  console.log(`\n${pass ? "PASS" : "FAIL"}`);
  if (out !== undefined) {
    const settings = { mode, checkpoints: checkpointCount, criteria, retryEvery: RETRY_EVERY, retryDelayMs: RETRY_DELAY, failEvery: FAIL_EVERY, waitEvery: WAIT_EVERY };
    const json = JSON.stringify({ date: new Date().toISOString(), minutes, machine: info, settings, pass, transports: reports }, null, 2);
    mkdirSync(dirname(out), { recursive: true });
    writeFileSync(`${out}.tmp`, `${json}\n`);
    renameSync(`${out}.tmp`, out);
    log(`wrote ${out}`);
  }
  process.exit(pass ? 0 : 1);
}

if (args.target === undefined) {
  main().catch((error: unknown) => {
    console.error(error);
    process.exit(1);
  });
} else {
  const target = soakTargets.find((t) => t.name === args.target);
  if (target === undefined) throw new Error(`unknown target ${args.target}`);
  soak(target).then(
    (report) => {
      process.stdout.write(JSON.stringify(report));
      process.exit(0);
    },
    (error: unknown) => {
      console.error(error);
      process.exit(1);
    },
  );
}

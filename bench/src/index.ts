import { execFileSync } from "node:child_process";
import { mkdirSync, renameSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import os from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { type BatcherResult, type BatcherSettings, runBatcher } from "./batcher-suite.js";
import { type ContenderName, contenders } from "./contenders.js";
import { type Drive, type InProcessResult, type InProcessSettings, driveLabels, runInProcess } from "./in-process.js";
import { type MemoryResult, runMemory } from "./memory.js";
import type { OtelSettings } from "./otel.js";
import { type Run, batcherTable, inProcessSuite, inProcessTable, memoryTable, targetLines, transportTable, transportTargetLines } from "./report.js";
import { type TransportRun, type TransportSuiteName, runTransportBench } from "./transport-suite.js";
import { transportBenches } from "./transports/index.js";

const usage = `Usage: node --expose-gc dist/index.js [--quick] [--suite in-process,batcher,heap,memory,redis,sqs,nats,amqp]
       [--only tranche,dataloader,batshit,floor] [--sizes 10,100,1000] [--drive yield,no-yield] [--gc-rounds] [--out FILE]
--drive: how in-process callers await their chunks: yield to the event loop between them, or not (both by default).
--gc-rounds forces a full GC before each timed round (a diagnostic: see README).
heap is bytes per held item; memory, redis, sqs, nats and amqp compare a Worker with a raw receive → ack loop on that transport.
otel (only when named) compares batched() and a memory Worker with @tranche/otel off, on, and on with a context manager.
A run narrowed by --suite, --only, --sizes, --drive or --gc-rounds writes no file unless --out is given.`;

const { values: args } = parseArgs({
  options: {
    quick: { type: "boolean", default: false },
    suite: { type: "string" },
    only: { type: "string" },
    sizes: { type: "string" },
    drive: { type: "string" },
    out: { type: "string" },
    "gc-rounds": { type: "boolean", default: false },
    help: { type: "boolean", default: false },
  },
});
if (args.help) {
  console.log(usage);
  process.exit(0);
}

const quick = args.quick;

function parseDrives(list: string | undefined): Drive[] {
  if (list === undefined) return ["yield", "no-yield"];
  const drives = list.split(",");
  for (const drive of drives) {
    if (drive !== "yield" && drive !== "no-yield") {
      console.error(`unknown drive ${JSON.stringify(drive)}\n${usage}`);
      process.exit(2);
    }
  }
  return drives as Drive[];
}
const CHUNK = 1000;
// ≥ the chunk: callers never wait for room, as with dataloader, which has no limit.
const MAX_BUFFERED = 10 * CHUNK;

const inProcessSettings: InProcessSettings = {
  batchSizes: args.sizes === undefined ? [10, 100, 1000] : args.sizes.split(",").map(Number),
  drives: parseDrives(args.drive),
  chunk: CHUNK,
  itemsPerRound: quick ? 40_000 : 100_000,
  // Multiples of 4: every contender runs equally often in each position (see roundOrder).
  rounds: quick ? 4 : 12,
  warmupRounds: quick ? 1 : 2,
  collectBetweenRounds: args["gc-rounds"],
};
const batcherSettings: BatcherSettings = {
  batchSize: 100,
  itemsPerRound: quick ? 500_000 : 2_000_000,
  rounds: quick ? 3 : 12,
  warmupRounds: quick ? 1 : 2,
  collectBetweenRounds: args["gc-rounds"],
};
const memoryItems = quick ? 200_000 : 1_000_000;
const otelSettings: OtelSettings = {
  calls: quick ? 40_000 : 100_000,
  chunk: CHUNK,
  items: quick ? 100_000 : 200_000,
  batchSize: 100,
  rounds: quick ? 5 : 11,
  warmupRounds: 1,
};

const transportRounds = { full: 5, quick: 3 };
const transportRoundsBySuite: Partial<Record<TransportSuiteName, number>> = {};
const transportSuites = Object.keys(transportBenches) as TransportSuiteName[];
const suites = new Set(args.suite?.split(",") ?? ["in-process", "batcher", "heap", ...transportSuites]);
for (const suite of suites) {
  if (!["in-process", "batcher", "heap", "otel", ...transportSuites].includes(suite)) {
    console.error(`unknown suite ${JSON.stringify(suite)}\n${usage}`);
    process.exit(2);
  }
}
const all = contenders(MAX_BUFFERED).filter((c) => args.only === undefined || args.only.split(",").includes(c.name));
const narrowed = args.suite !== undefined || args.only !== undefined || args.sizes !== undefined || args.drive !== undefined || args["gc-rounds"];
const here = dirname(fileURLToPath(import.meta.url));
const out = args.out ?? (narrowed ? undefined : join(here, "..", "results", "latest.json"));
const log = (line: string) => console.error(line);

function machine() {
  const require = createRequire(import.meta.url);
  const version = (name: string): string => (require(`${name}/package.json`) as { version: string }).version;
  let commit: string | undefined;
  let coreDirty: boolean | undefined;
  try {
    commit = execFileSync("git", ["rev-parse", "HEAD"], { cwd: here, encoding: "utf8" }).trim();
    coreDirty = execFileSync("git", ["status", "--porcelain", "--", "../packages/core"], { cwd: join(here, ".."), encoding: "utf8" }).trim() !== "";
  } catch {
    // Not a git checkout: the versions below still say what ran.
  }
  const cpus = os.cpus();
  return {
    cpu: cpus[0]?.model.trim(),
    cores: cpus.length,
    memoryGiB: Math.round(os.totalmem() / 2 ** 30),
    platform: `${os.platform()} ${os.release()} ${os.arch()}`,
    node: process.version,
    v8: process.versions.v8,
    versions: { "@tranche/core": version("@tranche/core"), dataloader: version("dataloader"), "@yornaath/batshit": version("@yornaath/batshit") },
    commit,
    coreDirty,
  };
}

async function main(): Promise<void> {
  const info = machine();
  const mode = quick ? "quick" : "full";
  log(`tranche bench (${mode}) on ${info.cpu} ×${info.cores}, node ${info.node}`);

  let inProcess: InProcessResult[] = [];
  let batcher: BatcherResult[] = [];
  let memory: MemoryResult[] = [];
  if (suites.has("in-process")) inProcess = await runInProcess(inProcessSettings, all, log);
  if (suites.has("batcher")) batcher = runBatcher(batcherSettings, log);
  if (suites.has("heap")) memory = await runMemory(memoryItems, log);
  const transportRuns: TransportRun[] = [];
  const transportSamples: Record<string, Record<"worker" | "raw", number[]>> = {};
  for (const suite of transportSuites) {
    if (!suites.has(suite)) continue;
    const bench = transportBenches[suite];
    if (bench === undefined) throw new Error(`[tranche/bench] suite ${suite} is not registered in bench/src/transports/index.ts`);
    const mode = quick ? "quick" : "full";
    const items = (bench.items ?? { full: 200_000, quick: 100_000 })[mode];
    const rounds = (bench.rounds ?? transportRounds)[mode];
    transportRoundsBySuite[suite] = rounds;
    const result = await runTransportBench(bench, { items, batchSize: 100, log }, rounds, quick ? 1 : 3);
    transportRuns.push(...result.runs);
    transportSamples[suite] = result.samples;
  }

  const runs: Run[] = [
    ...inProcess.map((r): Run => ({ suite: inProcessSuite[r.drive], name: r.name, batchSize: r.batchSize, itemsPerSec: Math.round(r.itemsPerSec) })),
    ...batcher
      .filter((r) => r.variant === "public-ids")
      .map((r): Run => ({ suite: "batcher", name: "tranche", batchSize: r.batchSize, itemsPerSec: Math.round(r.itemsPerSec) })),
    ...transportRuns,
  ];

  const names = all.map((c) => c.name) as ContenderName[];
  const sections: string[] = [`# tranche bench (${mode}), ${new Date().toISOString()}`, ""];
  sections.push(`${info.cpu} ×${info.cores}, ${info.memoryGiB} GiB, node ${info.node} (V8 ${info.v8}), ${info.platform}`);
  sections.push(
    `@tranche/core ${info.versions["@tranche/core"]}${info.commit ? ` at ${info.commit.slice(0, 10)}${info.coreDirty ? " + uncommitted changes in packages/core" : ""}` : ""}, dataloader ${info.versions.dataloader}, @yornaath/batshit ${info.versions["@yornaath/batshit"]}`,
  );
  if (inProcess.length > 0) {
    const { chunk, itemsPerRound, rounds, drives } = inProcessSettings;
    sections.push(
      "",
      `## In-process: ${itemsPerRound.toLocaleString("en-US")} calls per round, awaited in chunks of ${chunk} (\`await Promise.all(chunk)\`), handler \`async\` value → value × 2`,
    );
    for (const drive of drives) {
      sections.push("", `### ${driveLabels[drive]} (\`--drive ${drive}\`)`, "", inProcessTable(inProcess.filter((r) => r.drive === drive), names, rounds));
    }
    sections.push(
      "",
      "Setups (N = flushEvery):",
      ...all.map((c) => `- ${c.name}: \`${c.setup("N")}\``),
      `- batched() runs with \`concurrency: Infinity\` and \`maxBuffered: ${MAX_BUFFERED}\` (≥ the chunk of ${chunk}) to match dataloader, which starts every batch at once and has no buffer limit; its defaults (concurrency 1, maxBuffered 10 × flushEvery) would make callers wait.`,
      "- batshit's partial batch waits for a 0 ms setTimeout, the nearest it has to \"end of tick\"; at these sizes every batch fills first.",
      ...all.filter((c) => c.freshPerRound !== undefined).map((c) => `- ${c.name} gets a fresh instance each round: ${c.freshPerRound}.`),
    );
  }
  if (batcher.length > 0) {
    sections.push("", `## Batcher (pure state machine): ${batcherSettings.itemsPerRound.toLocaleString("en-US")} items per round`, "", batcherTable(batcher, batcherSettings.rounds));
  }
  if (memory.length > 0) sections.push("", "## Memory per held item (heap)", "", memoryTable(memory));
  if (transportRuns.length > 0) {
    sections.push("", "## Transports: Worker against a raw receive → handler → ack loop", "", transportTable(transportRuns, transportSamples));
  }
  if (suites.has("otel")) {
    // Loaded only for this suite: the other suites run in a process that never loaded OpenTelemetry.
    const { otelTable, runOtel } = await import("./otel.js");
    sections.push("", "## @tranche/otel: instrumentation off and on", "", otelTable(await runOtel(otelSettings, log), otelSettings));
  }
  const verdicts = [...targetLines(inProcess, batcher, memory), ...transportTargetLines(transportRuns)];
  if (verdicts.length > 0) sections.push("", "## Targets", "", ...verdicts.map((line) => `- ${line}`));
  console.log(sections.join("\n"));

  if (out !== undefined) {
    const result = {
      runs,
      memory: memory.map((m) => ({ name: m.name, what: m.what, items: m.items, bytesPerItem: Math.round(m.bytesPerItem * 10) / 10 })),
      machine: info,
      date: new Date().toISOString(),
      mode,
      settings: { inProcess: inProcessSettings, batcher: batcherSettings, memoryItems, maxBuffered: MAX_BUFFERED, transportRounds: transportRoundsBySuite },
      batcherVariants: batcher.map((r) => ({ variant: r.variant, batchSize: r.batchSize, itemsPerSec: Math.round(r.itemsPerSec) })),
      samples: {
        inProcess: inProcess.map((r) => ({ name: r.name, drive: r.drive, batchSize: r.batchSize, rounds: r.rounds.map(Math.round) })),
        batcher: batcher.map((r) => ({ variant: r.variant, batchSize: r.batchSize, rounds: r.rounds.map(Math.round) })),
        transports: Object.entries(transportSamples).map(([suite, s]) => ({ suite, worker: s.worker.map(Math.round), raw: s.raw.map(Math.round) })),
      },
      targets: verdicts,
    };
    mkdirSync(dirname(out), { recursive: true });
    writeFileSync(`${out}.tmp`, `${JSON.stringify(result, null, 2)}\n`);
    renameSync(`${out}.tmp`, out);
    log(`wrote ${out}`);
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});

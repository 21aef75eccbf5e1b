// Only the newest task per key runs: writers save documents many times a second, and the search
// index needs only each document's latest version. `dedupeKey` is the document id; with
// `coalesce: "last"` a newer save replaces the buffered one, and the callers of the versions it
// replaced get the outcome of the version that was indexed (their save was superseded, not lost).
import { batched } from "@tranche/core";

interface Doc {
  id: string;
  version: number;
  title: string;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const started = Date.now();
const elapsed = () => `${String(Date.now() - started).padStart(4)} ms`;

/** The search index: one entry per document. */
const index = new Map<string, Doc>();
let indexed = 0;

const reindex = batched<Doc, number>(
  async (requests, { reason }) => {
    console.log(`${elapsed()}  index ${requests.length} documents (${reason}): ${requests.map((r) => `${r.payload.id} v${r.payload.version}`).join(", ")}`);
    await sleep(20); // one bulk request to the search engine
    for (const r of requests) index.set(r.payload.id, r.payload);
    indexed += requests.length;
    return requests.map((r) => r.payload.version); // the version each caller's save ended up as
  },
  { flushEvery: 50, flushInterval: 200, dedupeKey: (doc) => doc.id, coalesce: "last" },
);

// Five editors save 8 documents for a second and a half: 300 saves.
const latest = new Map<string, number>();
const saves: { doc: Doc; indexedAs: Promise<number> }[] = [];
for (let tick = 0; tick < 60; tick++) {
  for (let editor = 0; editor < 5; editor++) {
    const id = `doc-${(tick * 5 + editor) % 8}`;
    const version = (latest.get(id) ?? 0) + 1;
    latest.set(id, version);
    const doc = { id, version, title: `${id}, edit ${version}` };
    saves.push({ doc, indexedAs: reindex(doc) });
  }
  await sleep(25);
}

const outcomes = await Promise.all(saves.map((s) => s.indexedAs));
await reindex.close();

const superseded = outcomes.filter((version, i) => version > saves[i]!.doc.version).length;
const stale = [...latest].filter(([id, version]) => index.get(id)?.version !== version);
console.log(`\n${saves.length} saves, ${indexed} index writes; ${superseded} saves were superseded by a newer version before they ran`);
console.log(`the index holds the newest version of every document: ${stale.length === 0 ? "yes" : `no (${stale.map(([id]) => id).join(", ")})`}`);
if (stale.length > 0 || indexed >= saves.length || outcomes.some((version, i) => version < saves[i]!.doc.version)) {
  console.error("unexpected: every save should end as its own version or a newer one, and the index hold the newest");
  process.exitCode = 1;
}

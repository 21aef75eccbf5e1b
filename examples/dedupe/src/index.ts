// Duplicate tasks collapse into one run: a page asks for the same thumbnail many times at once,
// and the image service renders each distinct thumbnail once per batch. `dedupeKey` names what
// makes two tasks the same; with `coalesce: "first"` the task already buffered is kept and every
// caller merged into it gets its result. (celery-batches users deduplicate the requests of a
// batch by hand; here the batcher does it before the handler runs.)
import { batched } from "@tranche/core";

interface Thumbnail {
  image: string;
  width: number;
}

const keyOf = (t: Thumbnail) => `${t.image}@${t.width}`;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const started = Date.now();
const elapsed = () => `${String(Date.now() - started).padStart(4)} ms`;

let rendered = 0;
const thumbnail = batched<Thumbnail, string>(
  async (requests, { reason }) => {
    // Every request here is a distinct (image, width): its duplicates wait on it.
    console.log(`${elapsed()}  batch of ${requests.length} distinct thumbnails (${reason})`);
    await sleep(30); // one call to the image service per batch
    rendered += requests.length;
    return requests.map((r) => `https://cdn.example.com/${r.payload.image}-${r.payload.width}w.webp`);
  },
  { flushEvery: 20, flushInterval: 50, dedupeKey: keyOf, coalesce: "first" },
);

// Three waves of page views; each view asks for 6 of 8 product images at 2 widths.
const images = ["boots", "jacket", "scarf", "gloves", "hat", "socks", "belt", "bag"];
const asked: Thumbnail[] = [];
const answers: Promise<string>[] = [];
for (let wave = 0; wave < 3; wave++) {
  for (let view = 0; view < 40; view++) {
    for (let i = 0; i < 6; i++) {
      const t = { image: images[(view + i) % images.length]!, width: i % 2 === 0 ? 320 : 640 };
      asked.push(t);
      answers.push(thumbnail(t));
    }
  }
  // The next wave comes after this one's batches ran: duplicates merge only while buffered,
  // so each wave renders its thumbnails again (a cache in front would be the next step).
  await Promise.all(answers);
}

const urls = await Promise.all(answers);
await thumbnail.close();

const wrong = urls.filter((url, i) => url !== `https://cdn.example.com/${asked[i]!.image}-${asked[i]!.width}w.webp`);
console.log(`\n${asked.length} requests, ${rendered} renders: each caller got its own thumbnail's URL (${wrong.length} wrong)`);
console.log(`e.g. ${keyOf(asked[0]!)} → ${urls[0]}`);
if (wrong.length > 0 || rendered > 3 * 16) {
  console.error("unexpected: at most 16 distinct thumbnails per wave should have been rendered");
  process.exitCode = 1;
}

// A dedupe key names the entry buffered under it now: an entry that left the buffer and came
// back under another key (a Worker offers its own retries again, and a handler may have changed
// the payload) no longer absorbs items with its old key.
import { describe, expect, it } from "vitest";
import { Batcher, Entry } from "../src/internal.js";

describe("Batcher dedupe keys of an entry offered again", () => {
  it("merges items into a re-offered entry only under the key it was offered with last", () => {
    const batcher = new Batcher<{ key: string }>({ flushEvery: 1, dedupeKey: (p) => p.key });
    const entry = new Entry({ key: "a" }, "e", 1);
    expect(batcher._offer(entry, 0, undefined, false)).toBe("accepted");
    expect(batcher.poll(0).map((batch) => batch.items)).toEqual([[entry]]);
    batcher._remove(entry);
    entry.payload.key = "b";
    expect(batcher._offer(entry, 0, undefined, true)).toBe("accepted");
    expect(batcher.add({ payload: { key: "a" } }, 0)).toBe("accepted");
    expect(batcher.add({ payload: { key: "b" } }, 0)).toBe("coalesced");
    expect(batcher.coalesced?.survivor).toBe(entry);
    expect(batcher.stats).toMatchObject({ held: 2, items: { accepted: 3, coalesced: 1, removed: 1 } });
  });
});

import { describe, expect, it } from "vitest";
import { FifoGroups, type Receipt } from "../src/receipt.js";

function receipt(n: number, group: string): Receipt {
  return {
    handle: `h${n}`,
    messageId: `m${n}`,
    id: `i${n}`,
    receivedAt: 0,
    body: String(n),
    attributes: {},
    group,
    sequence: BigInt(n),
    attempt: 1,
    retries: undefined,
    leaseUntil: 30_000,
    outcome: undefined,
    hidden: false,
    copied: false,
    settled: false,
    busy: Promise.resolve(),
  };
}

describe("FifoGroups over a long run", () => {
  it("forgets the settled receipts of groups never acted on again (a group per item)", () => {
    const groups = new FifoGroups();
    for (let batch = 0; batch < 1000; batch++) {
      const received = Array.from({ length: 10 }, (_, i) => receipt(batch * 10 + i, `item-${batch * 10 + i}`));
      for (const r of received) groups.track(r);
      // Each delivery is settled on its own (acked alone: no sibling to wait for).
      for (const r of received) r.settled = true;
    }
    // 10,000 receipts went through; what is held is bounded by the unsettled ones, not by the history.
    expect(groups.size).toBeLessThan(100);
  });

  it("keeps every unsettled receipt through its sweeps", () => {
    const groups = new FifoGroups();
    const open = Array.from({ length: 500 }, (_, n) => receipt(n, `g${n % 7}-${n}`));
    for (const r of open) groups.track(r);
    for (let n = 500; n < 5000; n++) {
      const r = receipt(n, `item-${n}`);
      groups.track(r);
      r.settled = true;
    }
    expect(groups.size).toBeGreaterThanOrEqual(open.length);
    expect(groups.size).toBeLessThan(2 * open.length + 100);
    expect(groups.later(open[3] as Receipt)).toEqual([]);
    const sibling = receipt(10_000, open[3]!.group as string);
    groups.track(sibling);
    expect(groups.later(open[3] as Receipt)).toEqual([sibling]);
  });
});

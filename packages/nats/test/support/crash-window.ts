import type { ChaosEvent } from "@tranche/conformance/chaos";

/**
 * How far back a killed JetStream 2.9 server forgets: the consumer writes its state (deliveries,
 * acks, nak delays) about ten times a second, later under load.
 */
export const FORGET_WINDOW = 2_000;

/**
 * Splits the violations `analyseChaos` found into those a server crash explains and the rest.
 * A killed 2.9 server forgets the deliveries of its last moments while their workers still hold
 * them: it hands them out again after the restart, so an item can run again after its first run's
 * outcome is confirmed (the ack came through after the restart), or before the bound of a retry
 * that its first worker could not get to the server in time. Such a violation is the crash's when
 * the run it conflicts with (the previous run, or the retry asked) happened at most
 * `FORGET_WINDOW` before the kill, and the re-run after the server came back.
 */
export function splitByCrash(
  violations: readonly string[],
  events: readonly ChaosEvent[],
  crash: { killedAt: number; backAt: number },
): { crash: string[]; other: string[] } {
  const runs = new Map<string, number[]>();
  for (const e of events) if (e.e === "run") runs.set(e.id, [...(runs.get(e.id) ?? []), e.t]);
  const inWindow = (t: number): boolean => t >= crash.killedAt - FORGET_WINDOW && t <= crash.backAt;
  const split = { crash: [] as string[], other: [] as string[] };
  for (const violation of violations) {
    const again = /^(\S+): ran again at (\d+) after its outcome was confirmed$/.exec(violation);
    const early = /^(\S+): ran at (\d+), \d+ ms before the notBefore of a retry asked at (\d+)$/.exec(violation);
    let explained = false;
    if (again !== null) {
      const t = Number(again[2]);
      const before = (runs.get(again[1] as string) ?? []).filter((r) => r < t);
      explained = t >= crash.backAt && before.length > 0 && inWindow(Math.max(...before));
    } else if (early !== null) {
      explained = Number(early[2]) >= crash.backAt && inWindow(Number(early[3]));
    }
    (explained ? split.crash : split.other).push(violation);
  }
  return split;
}

import { type Clock } from "@tranche/core";
import { invalidOption } from "@tranche/core/internal";

/** Message prefix of this package's errors. */
export const PREFIX = "[tranche/memory]";

/** Throws the `TypeError` of a bad option or argument (see `invalidOption`). */
export function invalid(name: string, expected: string, value: unknown): never {
  throw invalidOption(name, expected, value, PREFIX);
}

export function checkOptionsObject(options: unknown): Record<string, unknown> {
  if (options === undefined) return {};
  if (typeof options !== "object" || options === null) invalid("options", "an object", options);
  return options as Record<string, unknown>;
}

export function checkClock(value: unknown): Clock | undefined {
  if (value === undefined) return undefined;
  const c = value as Partial<Clock>;
  if (typeof c !== "object" || c === null || typeof c.now !== "function" || typeof c.setTimer !== "function" || typeof c.clearTimer !== "function") {
    invalid("clock", "a Clock with now, setTimer and clearTimer", value);
  }
  return value as Clock;
}

/** Lets a real timer not keep the process alive; a `SimulatedClock` handle has no `unref`. */
export function unref(handle: unknown): unknown {
  (handle as { unref?: () => void } | null)?.unref?.();
  return handle;
}

import type { Clock } from "@tranche/core";

/** Short, bounded description of a received value for option errors. */
function quote(value: unknown): string {
  if (typeof value === "string") return JSON.stringify(value.length > 60 ? `${value.slice(0, 57)}...` : value);
  if (typeof value === "function") return `function ${value.name || "(anonymous)"}`;
  if (value === null || typeof value !== "object") return String(value);
  try {
    const json = JSON.stringify(value);
    return json.length > 60 ? `${json.slice(0, 57)}...` : json;
  } catch {
    return Object.prototype.toString.call(value);
  }
}

export function invalid(name: string, expected: string, value: unknown): never {
  throw new TypeError(`[tranche/memory] Expected \`${name}\` to be ${expected}, got ${quote(value)}`);
}

export function checkOptionsObject(options: unknown): Record<string, unknown> {
  if (options === undefined) return {};
  if (typeof options !== "object" || options === null) invalid("options", "an object", options);
  return options as Record<string, unknown>;
}

/** A duration in ms ≥ `min` (finite unless `allowInfinity`). */
export function checkMs(name: string, value: unknown, min = 0, allowInfinity = false): number {
  if (typeof value !== "number" || Number.isNaN(value) || value < min || (!allowInfinity && value === Infinity)) {
    invalid(name, `a number of ms ≥ ${min}${allowInfinity ? " or Infinity" : ""}`, value);
  }
  return value;
}

/** An absolute time, epoch ms. */
export function checkTime(name: string, value: unknown): number {
  if (typeof value !== "number" || !Number.isFinite(value)) invalid(name, "a finite epoch-ms time", value);
  return value;
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

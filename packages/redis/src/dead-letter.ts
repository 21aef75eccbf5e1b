import { decodeWith } from "@tranche/core/internal";
import type { Codec, DeadLetter, ErrorInfo } from "@tranche/core";
import { fieldsOf } from "./redis-delivery.js";

/**
 * A dead letter from its entry in the dead-letter stream: fields `id`, `payload` (bytes as the
 * stream kept them), `attempt`, `retries`, `reason`, `reasonName`, `reasonStack` (when there was
 * one) and `at` (the server's epoch ms).
 */
export function deadLetterOf<T>(codec: Codec<T>, fields: Buffer[]): DeadLetter<T> {
  const f = fieldsOf(fields);
  const raw = f.get("payload") ?? Buffer.alloc(0);
  const decoded = decodeWith(codec, raw);
  const stack = f.get("reasonStack")?.toString();
  const reason: ErrorInfo = { name: f.get("reasonName")?.toString() || "Error", message: f.get("reason")?.toString() ?? "", ...(stack === undefined ? {} : { stack }) };
  return {
    id: f.get("id")?.toString() ?? "",
    payload: "payload" in decoded ? decoded.payload : undefined,
    raw,
    attempt: Number(f.get("attempt")?.toString() ?? 0),
    retries: Number(f.get("retries")?.toString() ?? 0),
    reason,
    at: Number(f.get("at")?.toString() ?? 0),
  };
}

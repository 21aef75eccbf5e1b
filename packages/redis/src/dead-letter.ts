import { decodeWith } from "@tranche/core";
import type { Codec } from "@tranche/core";
import { fieldsOf } from "./redis-delivery.js";

/** A dead-lettered entry, as `deadLetters()` reads it back from the dead-letter stream. */
export interface RedisDeadLetter<T> {
  readonly id: string;
  /** The decoded payload; `undefined` when the bytes could not be decoded (see `error`). */
  readonly payload: T | undefined;
  /** The payload bytes as the stream kept them. */
  readonly raw: Buffer;
  /** Deliveries of the item, the dead-lettered one included. */
  readonly attempt: number;
  /** Handler runs of the item that ended with a retry before the dead-lettered delivery. */
  readonly retries: number;
  /** `reason.message` of the `deadLetter` call. */
  readonly reason: string;
  /** `reason.name`. */
  readonly reasonName: string;
  /** Epoch ms (the server's clock) the dead letter was written at. */
  readonly at: number;
  /** The stream entry that was dead-lettered. */
  readonly entryId: string;
  /** The dead-letter stream's own entry id. */
  readonly deadLetterId: string;
  /** The `DecodeError` when the bytes cannot be decoded. */
  readonly error?: Error;
}

/** A dead letter from its entry in the dead-letter stream. */
export function deadLetterOf<T>(codec: Codec<T>, deadLetterId: Buffer, fields: Buffer[]): RedisDeadLetter<T> {
  const f = fieldsOf(fields);
  const raw = f.get("payload") ?? Buffer.alloc(0);
  const decoded = decodeWith(codec, raw);
  return {
    id: f.get("id")?.toString() ?? "",
    payload: "payload" in decoded ? decoded.payload : undefined,
    raw,
    attempt: Number(f.get("attempt")?.toString() ?? 0),
    retries: Number(f.get("retries")?.toString() ?? 0),
    reason: f.get("reason")?.toString() ?? "",
    reasonName: f.get("reasonName")?.toString() ?? "",
    at: Number(f.get("at")?.toString() ?? 0),
    entryId: f.get("entry")?.toString() ?? "",
    deadLetterId: deadLetterId.toString(),
    ...("error" in decoded ? { error: decoded.error } : {}),
  };
}

import { DecodeError } from "./errors.js";

/** Turns payloads into the bytes a transport carries, and back. */
export interface Codec<T> {
  encode(payload: T): string | Uint8Array;
  /** Throws (preferably a `DecodeError`) when `raw` is not a valid payload. */
  decode(raw: string | Uint8Array): T;
}

const utf8 = new TextDecoder("utf-8", { fatal: true });

/** The default codec: JSON text. `undefined` payloads encode as `null`. */
export const jsonCodec: Codec<any> = {
  encode(payload) {
    return JSON.stringify(payload) ?? "null";
  },
  decode(raw) {
    try {
      return JSON.parse(typeof raw === "string" ? raw : utf8.decode(raw));
    } catch (cause) {
      throw new DecodeError(raw, { cause });
    }
  },
};

/** Runs `codec.decode`, turning whatever it throws into a `DecodeError` that keeps the raw bytes. */
export function decodeWith<T>(codec: Codec<T>, raw: string | Uint8Array): { payload: T } | { error: DecodeError } {
  try {
    return { payload: codec.decode(raw) };
  } catch (cause) {
    return { error: DecodeError.isInstance(cause) ? (cause as DecodeError) : new DecodeError(raw, { cause }) };
  }
}

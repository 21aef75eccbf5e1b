import { describe, expect, it } from "vitest";
import { type Codec, DecodeError, jsonCodec } from "../src/index.js";
import { decodeWith } from "../src/internal.js";

describe("jsonCodec", () => {
  it("round-trips JSON payloads from text and from UTF-8 bytes", () => {
    const payload = { user: "ådå", amounts: [1, 2.5], nested: { ok: true } };
    const text = jsonCodec.encode(payload);
    expect(text).toBe(JSON.stringify(payload));
    expect(jsonCodec.decode(text)).toEqual(payload);
    expect(jsonCodec.decode(new TextEncoder().encode(text as string))).toEqual(payload);
  });

  it("encodes undefined as null, so every payload has a body", () => {
    expect(jsonCodec.encode(undefined)).toBe("null");
  });

  it("throws a DecodeError that keeps the raw bytes and the parser's error as cause", () => {
    const raw = "{not json";
    let caught: unknown;
    try {
      jsonCodec.decode(raw);
    } catch (error) {
      caught = error;
    }
    expect(DecodeError.isInstance(caught)).toBe(true);
    expect((caught as DecodeError).raw).toBe(raw);
    expect((caught as DecodeError).cause).toBeInstanceOf(SyntaxError);
    expect((caught as DecodeError).message).toMatch(/^\[tranche\/core\] cannot decode payload: /);
  });

  it("refuses bytes that are not UTF-8", () => {
    const bytes = new Uint8Array([0x7b, 0xff, 0x7d]);
    expect(() => jsonCodec.decode(bytes)).toThrow(DecodeError);
  });
});

describe("decodeWith", () => {
  it("returns the payload when the codec decodes", () => {
    expect(decodeWith(jsonCodec, "[1,2]")).toEqual({ payload: [1, 2] });
  });

  it("turns whatever a custom codec throws into a DecodeError with the raw bytes", () => {
    const strict: Codec<number> = {
      encode: String,
      decode(raw) {
        const n = Number(raw);
        if (!Number.isInteger(n)) throw new RangeError(`not an integer: ${String(raw)}`);
        return n;
      },
    };
    const result = decodeWith(strict, "4.5");
    expect("error" in result && result.error).toBeInstanceOf(DecodeError);
    const error = (result as { error: DecodeError }).error;
    expect(error.raw).toBe("4.5");
    expect(error.cause).toBeInstanceOf(RangeError);
    expect(error.message).toContain("not an integer: 4.5");
  });

  it("passes a DecodeError thrown by the codec through unchanged", () => {
    const own = new DecodeError("x", { message: "[app] bad envelope" });
    const result = decodeWith({ encode: String, decode: () => { throw own; } }, "x");
    expect(result).toEqual({ error: own });
  });
});

import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import * as core from "../src/index.js";
import {
  BatchResultError,
  BufferFullError,
  ClosedError,
  DecodeError,
  OversizeError,
  RetriesExhaustedError,
  SettledError,
  TimeoutError,
  TrancheError,
  TransportError,
} from "../src/index.js";

/** What every error class offers, whatever its constructor takes. */
interface ErrorClass {
  readonly name: string;
  readonly prototype: TrancheError;
  isInstance(value: unknown): boolean;
}

const cause = new Error("root cause");

// [class, an instance without cause, an instance with cause or undefined when the class takes none]
const cases: [string, ErrorClass, () => TrancheError, (() => TrancheError) | undefined][] = [
  ["TrancheError", TrancheError, () => new TrancheError("[tranche/core] boom"), () => new TrancheError("[tranche/core] boom", { cause })],
  ["BufferFullError", BufferFullError, () => new BufferFullError(10), undefined],
  ["ClosedError", ClosedError, () => new ClosedError(), () => new ClosedError("[tranche/core] closed", { cause })],
  ["TimeoutError", TimeoutError, () => new TimeoutError(250), undefined],
  ["OversizeError", OversizeError, () => new OversizeError(11, 10), undefined],
  ["BatchResultError", BatchResultError, () => new BatchResultError("nope", 3), undefined],
  ["SettledError", SettledError, () => new SettledError("item-1"), undefined],
  ["RetriesExhaustedError", RetriesExhaustedError, () => new RetriesExhaustedError("item-1", 3), () => new RetriesExhaustedError("item-1", 3, { cause })],
  ["DecodeError", DecodeError, () => new DecodeError("{oops"), () => new DecodeError("{oops", { cause })],
  [
    "TransportError",
    TransportError,
    () => new TransportError("[tranche/core] connection lost", { retryable: true }),
    () => new TransportError("[tranche/core] connection lost", { retryable: true, cause }),
  ],
];

const markers = (...names: string[]) => Object.fromEntries(names.map((name) => [Symbol.for(`tranche.error.${name}`), true]));

describe.each(cases)("%s", (name, Class, make, makeWithCause) => {
  it("has its name, a [tranche/…] message and a stack, and extends TrancheError and Error", () => {
    const error = make();
    expect(error.name).toBe(name);
    expect(Class.name).toBe(name);
    expect(error).toBeInstanceOf(Class);
    expect(error).toBeInstanceOf(TrancheError);
    expect(error).toBeInstanceOf(Error);
    expect(error.message).toMatch(/^\[tranche\/core\] /);
    expect(error.stack).toContain(name);
    expect(String(error)).toMatch(new RegExp(`^${name}: \\[tranche/core\\]`));
  });

  it("isInstance recognises it, and TrancheError.isInstance too", () => {
    const error = make();
    expect(Class.isInstance(error)).toBe(true);
    expect(TrancheError.isInstance(error)).toBe(true);
  });

  it("isInstance of every other class except its ancestors is false", () => {
    const error = make();
    for (const [otherName, Other] of cases) {
      if (otherName === name || otherName === "TrancheError") continue;
      expect(Other.isInstance(error), `${otherName}.isInstance(${name})`).toBe(false);
    }
  });

  it("isInstance recognises an instance made by another copy (same Symbol.for markers)", () => {
    const foreign = Object.assign(new Error("from another copy"), { name }, markers("TrancheError", name));
    expect(foreign).not.toBeInstanceOf(Class);
    expect(Class.isInstance(foreign)).toBe(true);
    expect(TrancheError.isInstance(foreign)).toBe(true);
  });

  it("has no cause unless given one, not even an own cause property", () => {
    expect(make().cause).toBeUndefined();
    expect("cause" in make()).toBe(false);
  });
});

describe.each(cases.filter(([, , , withCause]) => withCause !== undefined))("%s with a cause", (name, Class, _make, makeWithCause) => {
  it("carries the cause it was given", () => {
    const error = (makeWithCause as () => TrancheError)();
    expect(error).toBeInstanceOf(Class);
    expect(error.name).toBe(name);
    expect(error.cause).toBe(cause);
  });
});

describe("isInstance", () => {
  it("is false for values that are not tranche errors", () => {
    const lookalike = Object.assign(new Error("x"), { name: "ClosedError" });
    for (const value of [undefined, null, 0, "ClosedError", {}, new Error("x"), lookalike, new TypeError("x")]) {
      expect(TrancheError.isInstance(value)).toBe(false);
      expect(ClosedError.isInstance(value)).toBe(false);
    }
  });

  it("does not take a marker that is not exactly true", () => {
    expect(ClosedError.isInstance({ [Symbol.for("tranche.error.ClosedError")]: "yes" })).toBe(false);
  });

  it("marks a subclass instance with every class of its chain", () => {
    class AppError extends ClosedError {}
    const error = new AppError();
    expect(ClosedError.isInstance(error)).toBe(true);
    expect(TrancheError.isInstance(error)).toBe(true);
    expect(TimeoutError.isInstance(error)).toBe(false);
  });

  it("the markers are not enumerable: they do not leak into JSON or spreads", () => {
    const error = new ClosedError();
    expect(Object.keys(error)).not.toContain(Symbol.for("tranche.error.ClosedError"));
    expect(Object.getOwnPropertySymbols({ ...error })).toEqual([]);
  });
});

describe("fields", () => {
  it("keep the values they describe", () => {
    expect(new BufferFullError(10).maxBuffered).toBe(10);
    expect(new TimeoutError(250)).toMatchObject({ timeout: 250, message: "[tranche/core] handler timed out after 250 ms" });
    expect(new OversizeError(11, 10)).toMatchObject({ size: 11, limit: 10 });
    expect(new BatchResultError("nope", 3)).toMatchObject({ received: "nope", expectedLength: 3 });
    expect(new BatchResultError("nope", 3).message).toContain('got "nope"');
    expect(new SettledError("item-1").id).toBe("item-1");
    expect(new RetriesExhaustedError("item-1", 3)).toMatchObject({ id: "item-1", attempts: 3 });
    expect(new RetriesExhaustedError("item-1", 3).message).toBe('[tranche/core] request "item-1" used all 3 attempts');
    expect(new RetriesExhaustedError("item-1", 1).message).toBe('[tranche/core] request "item-1" used all 1 attempt');
    expect(new DecodeError("{oops").message).toBe("[tranche/core] cannot decode payload: invalid data");
    expect(new DecodeError("{oops", { cause }).raw).toBe("{oops");
    expect(new DecodeError("{oops", { cause }).message).toBe("[tranche/core] cannot decode payload: root cause");
    expect(new DecodeError("{oops", { cause: "bad byte at 3" }).message).toBe("[tranche/core] cannot decode payload: bad byte at 3");
    expect(new TransportError("[tranche/core] connection lost", { retryable: true }).retryable).toBe(true);
    expect(new TransportError("[tranche/core] access denied", { retryable: false }).retryable).toBe(false);
  });
});

describe("two copies of the module", () => {
  it("a fresh copy of errors.ts has distinct classes that still recognise each other", async () => {
    vi.resetModules();
    const copy = await import("../src/errors.js");
    vi.resetModules();
    expect(copy.ClosedError).not.toBe(ClosedError);
    const theirs = new copy.ClosedError();
    const ours = new ClosedError();
    expect(theirs).not.toBeInstanceOf(ClosedError);
    expect(ClosedError.isInstance(theirs)).toBe(true);
    expect(TrancheError.isInstance(theirs)).toBe(true);
    expect(copy.ClosedError.isInstance(ours)).toBe(true);
    expect(copy.TimeoutError.isInstance(ours)).toBe(false);
  });

  describe("the built ESM and CJS outputs side by side", () => {
    const packageDir = join(dirname(fileURLToPath(import.meta.url)), "..");
    let dist = join(packageDir, "dist");
    let built: string | undefined;

    beforeAll(() => {
      if (!existsSync(join(dist, "index.js")) || !existsSync(join(dist, "index.cjs"))) {
        // Not built yet: build a private copy rather than race other test files for dist/.
        built = mkdtempSync(join(tmpdir(), "tranche-core-dist-"));
        execFileSync("npx", ["tsup", "--out-dir", built], { cwd: packageDir, stdio: "ignore" });
        dist = built;
      }
    }, 120_000);

    afterAll(() => {
      if (built !== undefined) rmSync(built, { recursive: true, force: true });
    });

    it("recognise each other's instances, and src's", async () => {
      type Core = typeof core;
      const esm = (await import(/* @vite-ignore */ pathToFileURL(join(dist, "index.js")).href)) as Core;
      const cjs = createRequire(import.meta.url)(join(dist, "index.cjs")) as Core;
      expect(esm.ClosedError).not.toBe(cjs.ClosedError);
      for (const [name] of cases) {
        const Esm = esm[name as keyof Core] as ErrorClass;
        const Cjs = cjs[name as keyof Core] as ErrorClass;
        const Src = core[name as keyof Core] as ErrorClass;
        // Bundling must keep the class names the markers are made from.
        expect(Esm.name).toBe(name);
        expect(Cjs.name).toBe(name);
        const fromCjs = new (Cjs as unknown as new (...args: unknown[]) => TrancheError)("x", 1);
        const fromEsm = new (Esm as unknown as new (...args: unknown[]) => TrancheError)("x", 1);
        expect(fromCjs).not.toBeInstanceOf(Esm);
        expect(Esm.isInstance(fromCjs), `ESM ${name}.isInstance(CJS instance)`).toBe(true);
        expect(Cjs.isInstance(fromEsm), `CJS ${name}.isInstance(ESM instance)`).toBe(true);
        expect(Src.isInstance(fromCjs)).toBe(true);
        expect(esm.TrancheError.isInstance(fromCjs)).toBe(true);
        expect(fromCjs.name).toBe(name);
      }
      expect(esm.ClosedError.isInstance(new cjs.TimeoutError(1))).toBe(false);
    });
  });
});

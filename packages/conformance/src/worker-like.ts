import type { BatchHandler, Transport } from "@tranche/core";
import { PREFIX } from "./options.js";

/**
 * What the suite uses of a `@tranche/worker` `Worker`. Declared here rather than imported: the
 * worker's own tests run this suite, so this package cannot need the worker's build to build.
 */
export interface WorkerLike {
  start(): Promise<void>;
  close(options?: { drain?: boolean; timeout?: number }): Promise<void>;
  on(event: "error", listener: (error: Error & { operation?: string; retrying?: boolean }) => void): unknown;
  on(event: "retry", listener: (event: { id: string; attempt: number; notBefore: number }) => void): unknown;
  on(event: "deadLetter", listener: (event: { id: string; attempt: number; reason: Error }) => void): unknown;
}

/** `new Worker(transport, handler, options)` of `@tranche/worker`. */
export type WorkerConstructor = new (transport: Transport<unknown>, handler: BatchHandler<unknown, unknown>, options?: Record<string, unknown>) => WorkerLike;

/** The `Worker` the options name, else the one `@tranche/worker` exports. */
export async function loadWorker(given: WorkerConstructor | undefined): Promise<WorkerConstructor> {
  if (given !== undefined) return given;
  // Not a literal in import(): tsc does not look for the peer dependency's types at build time.
  const specifier: string = "@tranche/worker";
  try {
    const loaded = (await import(specifier)) as { Worker?: WorkerConstructor };
    if (typeof loaded.Worker !== "function") throw new Error("it exports no Worker");
    return loaded.Worker;
  } catch (error) {
    throw new Error(
      `${PREFIX} the worker cases run a Worker from @tranche/worker, which could not be loaded (${(error as Error).message}). Install it (pnpm add -D @tranche/worker) or pass \`Worker\` in the options.`,
      { cause: error },
    );
  }
}

/**
 * Exit codes of `tranche`, for scripts: `ok` 0; `failed` 1, the operation ran and failed (the
 * broker unreachable, a dead letter not found, a purge declined); `usage` 2, the command line
 * cannot run as given (an unknown flag, missing configuration, a transport package not
 * installed, a purge without `--yes` and no terminal to ask on).
 */
export const ExitCode = { ok: 0, failed: 1, usage: 2 } as const;

/** One of the `ExitCode` values. */
export type ExitCode = (typeof ExitCode)[keyof typeof ExitCode];

/** The command line cannot run as given (exit code 2). */
export class UsageError extends Error {
  override readonly name = "UsageError";
}

/** The operation ran and did not do what was asked (exit code 1), for a reason of the CLI's own. */
export class FailedError extends Error {
  override readonly name = "FailedError";
}

/** The exit code and the one line `tranche` prints for `error`. */
export function describeFailure(error: unknown): { code: ExitCode; line: string } {
  const message = oneLine(error instanceof Error ? error.message : String(error));
  // A TypeError from a transport is a value it refuses (a malformed URL, an id that is no string): the command line's fault.
  const usage = error instanceof UsageError || error instanceof TypeError;
  return { code: usage ? ExitCode.usage : ExitCode.failed, line: `tranche: ${message}` };
}

/** `text` on one line: newlines and runs of blanks become one space. */
export function oneLine(text: string): string {
  return text.replace(/\s*\n\s*/g, " ").trim();
}

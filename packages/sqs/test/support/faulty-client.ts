import type { SQSClient } from "@aws-sdk/client-sqs";

/**
 * How an injected fault behaves: `before` rejects without reaching SQS (a refused connection);
 * `after` lets SQS do the call, then rejects (a lost reply).
 */
export type ClientFault = "before" | "after";

/** A connection reset as node reports it: retryable, its outcome unknown. */
function reset(action: string): Error {
  return Object.assign(new Error(`injected: ${action} read ECONNRESET`), { code: "ECONNRESET", name: "TimeoutError" });
}

/**
 * A real `SQSClient` with faults injected into chosen actions: `fail("DeleteMessage", "before")`
 * makes the next `DeleteMessage` call fail that way. Records the action of every call.
 */
export class FaultyClient {
  readonly actions: string[] = [];
  readonly #faults = new Map<string, (ClientFault | undefined)[]>();

  constructor(readonly real: SQSClient) {}

  /**
   * `count` calls of `action` (e.g. `"SendMessage"`, `"DeleteMessageBatch"`) fail as `fault`
   * says, after `skip` more calls of it went through.
   */
  fail(action: string, fault: ClientFault, options: { count?: number; skip?: number } = {}): void {
    const plan = [...Array<undefined>(options.skip ?? 0).fill(undefined), ...Array<ClientFault>(options.count ?? 1).fill(fault)];
    this.#faults.set(action, [...(this.#faults.get(action) ?? []), ...plan]);
  }

  /** What the transport takes as its `client`. */
  get client(): SQSClient {
    return { send: (command: never, options?: never) => this.#send(command, options), destroy: () => {} } as unknown as SQSClient;
  }

  async #send(command: { constructor: { name: string } }, options: unknown): Promise<unknown> {
    const action = command.constructor.name.replace(/Command$/, "");
    this.actions.push(action);
    const fault = this.#faults.get(action)?.shift();
    if (fault === "before") throw reset(action);
    const out = await this.real.send(command as never, options as never);
    if (fault === "after") throw reset(action);
    return out;
  }
}

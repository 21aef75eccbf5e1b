import { TrancheError } from "@tranche/core";

/** An existing stream or consumer cannot serve this transport (wrong subjects, push consumer, no explicit acks...). */
export class NatsSetupError extends TrancheError {
  override readonly name = "NatsSetupError";
  constructor(message: string, options?: { cause?: unknown }) {
    super(`[tranche/nats] ${message}`, options);
  }
}

/** The server ended a pull request with an error status (consumer deleted, bad request...). */
export class NatsPullError extends TrancheError {
  override readonly name = "NatsPullError";
  constructor(
    /** The NATS status code, e.g. 409. */
    readonly code: number,
    readonly description: string,
  ) {
    super(`[tranche/nats] pull request ended with ${code} ${description}`);
  }
}

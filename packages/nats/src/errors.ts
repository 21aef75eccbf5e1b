import { TransportError } from "@tranche/core";

/**
 * An existing stream or consumer cannot serve this transport (wrong subjects, push consumer, no
 * explicit acks, a second consumer on a work-queue subject...). Not retryable: the setup must change.
 */
export class NatsSetupError extends TransportError {
  // Typed as the base's literal; the value is this class's.
  override readonly name = "NatsSetupError" as "TransportError";
  constructor(message: string, options?: { cause?: unknown }) {
    super(`[tranche/nats] ${message}`, { retryable: false, cause: options?.cause });
  }
}

/**
 * The server ended a pull request with an error status. 409 "Consumer Deleted" and 503 are
 * retryable (a worker recreates the consumer on its next receive); a bad request is not.
 */
export class NatsPullError extends TransportError {
  override readonly name = "NatsPullError" as "TransportError";
  constructor(
    /** The NATS status code, e.g. 409. */
    readonly code: number,
    readonly description: string,
    retryable: boolean,
    /** What the request pulled from, e.g. "consumer w of stream ITEMS". */
    from = "a consumer",
  ) {
    super(`[tranche/nats] pull request to ${from} ended with ${code} ${description}`, { retryable });
  }
}

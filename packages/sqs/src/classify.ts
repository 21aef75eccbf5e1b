import { ClosedError, TransportError } from "@tranche/core";
import { type SqsEntryFailure, SqsTransportError } from "./errors.js";

/** Error codes of sockets and DNS that mean the way to SQS failed, not the request. */
const NETWORK_CODES = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ECONNABORTED",
  "ETIMEDOUT",
  "EPIPE",
  "ENOTFOUND",
  "EAI_AGAIN",
  "EHOSTUNREACH",
  "EHOSTDOWN",
  "ENETUNREACH",
  "ENETDOWN",
  "ENETRESET",
  "ERR_SOCKET_CONNECTION_TIMEOUT",
  "ERR_STREAM_PREMATURE_CLOSE",
]);

/** Names the SDK gives errors of the way to SQS (its own timeouts, a reset socket). */
const NETWORK_NAMES = new Set(["TimeoutError", "RequestTimeout", "RequestTimeoutException", "NetworkingError"]);

/** Throttling by SQS or by KMS behind it, under any of the names the SDK and SQS use. */
const THROTTLING = /throttl|TooManyRequests|RequestLimitExceeded|SlowDown|OverLimit/i;

/** Client faults a later try can pass: the request expired in transit (clock skew is corrected on the next try). */
const RETRYABLE_CLIENT_FAULTS = new Set(["RequestExpired", "KmsThrottled"]);

interface SdkError {
  name?: string;
  code?: string;
  Code?: string;
  $fault?: "client" | "server";
  $retryable?: unknown;
  $metadata?: { httpStatusCode?: number };
  errors?: unknown[];
}

function codeOf(error: SdkError): string {
  const own = error.code ?? "";
  if (own !== "" || !Array.isArray(error.errors)) return own;
  return String((error.errors[0] as SdkError | undefined)?.code ?? "");
}

/**
 * Whether the same call may succeed when tried again: throttling, server faults (5xx), the
 * network and timeouts are transient; every other client fault (invalid parameters, sizes,
 * permissions, a missing queue, bad credentials) is not.
 */
export function isRetryable(error: unknown): boolean {
  const e = (error ?? {}) as SdkError;
  const name = String(e.name ?? "");
  const code = codeOf(e);
  if (e.$retryable !== undefined || THROTTLING.test(name) || THROTTLING.test(String(e.Code ?? ""))) return true;
  if (RETRYABLE_CLIENT_FAULTS.has(name)) return true;
  const status = e.$metadata?.httpStatusCode;
  if (typeof status === "number" && status > 0) return status === 429 || status >= 500;
  if (e.$fault === "server") return true;
  if (e.$fault === "client") return false;
  if (NETWORK_CODES.has(code) || NETWORK_NAMES.has(name)) return true;
  // No reply at all and none of the above: a credentials provider or an invalid argument the SDK caught.
  return !(name === "CredentialsProviderError" || error instanceof TypeError || error instanceof RangeError);
}

/** What went wrong in one line: node's `AggregateError` of a dual-stack connect has an empty message. */
export function describe(error: unknown): string {
  if (error instanceof AggregateError && error.errors.length > 0) return [...new Set(error.errors.map(describe))].join("; ");
  if (error instanceof Error) return error.message || (error as SdkError).code || error.name;
  return String(error);
}

/** True when `error` is about reaching SQS, not about the request: the message should name the address. */
function isNetwork(error: unknown): boolean {
  const e = (error ?? {}) as SdkError;
  return e.$metadata?.httpStatusCode === undefined && (NETWORK_CODES.has(codeOf(e)) || NETWORK_NAMES.has(String(e.name ?? "")));
}

/** `host:port` of a URL, or the text itself when it is not one. */
export function hostOf(address: string): string {
  return URL.canParse(address) ? new URL(address).host : address;
}

/**
 * The `SqsTransportError` of an SQS call that failed with `error`, classified by `isRetryable`;
 * a connection error names `address` when its own message does not. Errors the transport made
 * itself (`TransportError`, `ClosedError`) pass through.
 */
export function callError(operation: string, error: unknown, address: string): Error {
  if (TransportError.isInstance(error) || ClosedError.isInstance(error)) return error as Error;
  let text = describe(error);
  if (isNetwork(error) && !text.includes(hostOf(address))) text += ` (${address})`;
  return new SqsTransportError(operation, `${operation} failed: ${text}`, { retryable: isRetryable(error), cause: error });
}

/** The error of batch entries SQS kept refusing; retryable when every refusal was a server fault. */
export function entriesError(operation: string, failures: readonly SqsEntryFailure[]): SqsTransportError {
  const first = failures[0] as SqsEntryFailure;
  const count = `${failures.length} entr${failures.length === 1 ? "y" : "ies"}`;
  return new SqsTransportError(operation, `${operation}: ${count} refused; first: item ${JSON.stringify(first.id)} ${first.code} ${first.message}`.trim(), {
    retryable: failures.every((f) => !f.senderFault),
    failures,
  });
}

/**
 * One error for several failed requests of one operation: retryable when each is, listing every
 * refused entry.
 */
export function mergeErrors(operation: string, errors: unknown[]): unknown {
  if (errors.length === 1) return errors[0];
  const first = errors[0] as Error;
  const failures = errors.flatMap((e) => (SqsTransportError.isInstance(e) ? [...(e as SqsTransportError).failures] : []));
  const retryable = errors.every((e) => TransportError.isInstance(e) && (e as TransportError).retryable);
  return new SqsTransportError(operation, `${operation}: ${errors.length} requests failed; first: ${first.message.replace(/^\[tranche\/sqs\] /, "")}`, {
    retryable,
    cause: first,
    failures,
  });
}

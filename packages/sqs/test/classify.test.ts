// Which SQS failures a later try may cure (SPEC §10 "classified errors"), on the SDK's own
// exception classes and node's socket errors, and how the message names the cause and address.
import { InvalidMessageContents, KmsAccessDenied, KmsThrottled, OverLimit, QueueDoesNotExist, RequestThrottled, SQSServiceException } from "@aws-sdk/client-sqs";
import { ClosedError, TransportError } from "@tranche/core";
import { describe, expect, it } from "vitest";
import { callError, isRetryable } from "../src/classify.js";
import { SqsTransportError } from "../src/index.js";

const metadata = (httpStatusCode: number) => ({ $metadata: { httpStatusCode } });
const socket = (code: string, message: string) => Object.assign(new Error(message), { code });

describe("isRetryable", () => {
  it.each([
    ["throttling", new RequestThrottled({ message: "slow down", ...metadata(400) })],
    ["KMS throttling", new KmsThrottled({ message: "kms busy", ...metadata(400) })],
    ["a limit on messages in flight", new OverLimit({ message: "too many in flight", ...metadata(403) })],
    ["a server fault", new SQSServiceException({ name: "InternalError", $fault: "server", message: "oops", ...metadata(500) })],
    ["service unavailable", new SQSServiceException({ name: "ServiceUnavailable", $fault: "server", message: "down", ...metadata(503) })],
    ["a refused connection", socket("ECONNREFUSED", "connect ECONNREFUSED 127.0.0.1:4566")],
    ["a reset connection", Object.assign(socket("ECONNRESET", "read ECONNRESET"), { name: "TimeoutError" })],
    ["the SDK's connect timeout", Object.assign(new Error("the request socket did not establish a connection"), { name: "TimeoutError" })],
    ["an unknown DNS name, for now", socket("EAI_AGAIN", "getaddrinfo EAI_AGAIN sqs.example")],
    ["a dual-stack connect", Object.assign(new AggregateError([socket("ECONNREFUSED", "connect ECONNREFUSED ::1:4566")], ""), { code: "ECONNREFUSED" })],
  ])("retryable: %s", (_, error) => {
    expect(isRetryable(error)).toBe(true);
  });

  it.each([
    ["a missing queue", new QueueDoesNotExist({ message: "The specified queue does not exist.", ...metadata(400) })],
    ["invalid characters", new InvalidMessageContents({ message: "bad", ...metadata(400) })],
    ["access denied", new SQSServiceException({ name: "AccessDenied", $fault: "client", message: "no", ...metadata(403) })],
    ["KMS access denied", new KmsAccessDenied({ message: "no key", ...metadata(400) })],
    ["a message too large", new SQSServiceException({ name: "InvalidParameterValue", $fault: "client", message: "Message must be shorter than 1024 bytes.", ...metadata(400) })],
    ["missing credentials", Object.assign(new Error("Could not load credentials from any providers"), { name: "CredentialsProviderError" })],
    ["an invalid argument", new TypeError("Invalid URL")],
  ])("not retryable: %s", (_, error) => {
    expect(isRetryable(error)).toBe(false);
  });
});

describe("callError", () => {
  it("a TransportError prefixed with the package and the SQS action, naming the cause", () => {
    const error = callError("DeleteMessageBatch", new QueueDoesNotExist({ message: "The specified queue does not exist.", ...metadata(400) }), "http://127.0.0.1:4566");
    expect(SqsTransportError.isInstance(error) && TransportError.isInstance(error)).toBe(true);
    expect(error).toMatchObject({ name: "SqsTransportError", operation: "DeleteMessageBatch", retryable: false });
    expect(error.message).toBe("[tranche/sqs] DeleteMessageBatch failed: The specified queue does not exist.");
  });

  it("a connection error names the address, once", () => {
    expect(callError("ReceiveMessage", socket("ECONNREFUSED", "connect ECONNREFUSED 127.0.0.1:4566"), "http://127.0.0.1:4566").message).toBe(
      "[tranche/sqs] ReceiveMessage failed: connect ECONNREFUSED 127.0.0.1:4566",
    );
    const dualStack = Object.assign(new AggregateError([socket("ECONNREFUSED", "connect ECONNREFUSED ::1:9"), socket("ECONNREFUSED", "connect ECONNREFUSED 127.0.0.1:9")], ""), {
      code: "ECONNREFUSED",
    });
    expect(callError("SendMessage", dualStack, "http://localhost:9").message).toBe(
      "[tranche/sqs] SendMessage failed: connect ECONNREFUSED ::1:9; connect ECONNREFUSED 127.0.0.1:9 (http://localhost:9)",
    );
  });

  it("errors the transport made pass through", () => {
    const closed = new ClosedError("[tranche/sqs] the transport is closed");
    expect(callError("SendMessage", closed, "x")).toBe(closed);
  });
});

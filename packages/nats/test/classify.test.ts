import { ClosedError, TransportError } from "@tranche/core";
import { JetStreamApiError } from "@nats-io/jetstream";
import {
  AuthorizationError,
  ClosedConnectionError,
  ConnectionError,
  InvalidArgumentError,
  NoRespondersError,
  PermissionViolationError,
  ProtocolError,
  RequestError,
  TimeoutError,
} from "@nats-io/transport-node";
import { describe, expect, it } from "vitest";
import { NatsPullError, NatsSetupError } from "../src/index.js";
import { encodeWith, isNoResponders, isRetryable, transportError } from "../src/classify.js";

const apiError = (code: number, errCode: number, description: string) => new JetStreamApiError({ code, err_code: errCode, description });

describe("error classification", () => {
  it.each([
    ["connection refused", new ConnectionError("connection refused", { cause: new Error("connect ECONNREFUSED 127.0.0.1:4222") })],
    ["a request timeout", new TimeoutError()],
    ["a disconnected request", new RequestError("connection disconnected")],
    ["no responders while JetStream restarts", new RequestError("no responders", { cause: new NoRespondersError("$JS.API.STREAM.INFO.S") })],
    ["JetStream temporarily unavailable", apiError(503, 10008, "JetStream system temporarily unavailable")],
    ["a consumer that is gone", apiError(404, 10014, "consumer not found")],
    ["a stream that is gone", apiError(404, 10059, "stream not found")],
    ["a consumer deleted under a pull", new NatsPullError(409, "Consumer Deleted", true)],
    ["an error nobody classified", new Error("something odd")],
  ])("retryable: %s", (_, error) => {
    expect(isRetryable(error)).toBe(true);
    expect(transportError("send", error)).toMatchObject({ retryable: true });
  });

  it.each([
    ["a permission violation", new PermissionViolationError("Permissions Violation for Publish to \"jobs\"", "publish", "jobs")],
    ["an authorization error", new AuthorizationError("Authorization Violation")],
    ["a payload over max_payload", InvalidArgumentError.format("payload", "max_payload size exceeded")],
    ["a protocol error", new ProtocolError("Maximum Payload Violation")],
    ["a connection the caller closed", new ClosedConnectionError()],
    ["an invalid stream config", apiError(400, 10052, "invalid stream config")],
    ["replicas on a single server", apiError(500, 10074, "replicas > 1 not supported in non-clustered mode")],
    ["a setup the transport cannot use", new NatsSetupError("consumer w of stream S is a push consumer")],
  ])("not retryable: %s", (_, error) => {
    const classified = transportError("send", error);
    expect(TransportError.isInstance(classified)).toBe(true);
    expect(classified).toMatchObject({ retryable: false });
  });

  it("names the operation, the cause chain and where; leaves ClosedError, TypeError and TransportError as they are", () => {
    const refused = new ConnectionError("connection refused", { cause: new Error("connect ECONNREFUSED 127.0.0.1:4299") });
    const error = transportError("connect", refused, "server nats://127.0.0.1:4299");
    expect(error.message).toBe("[tranche/nats] connect failed: connection refused: connect ECONNREFUSED 127.0.0.1:4299 (server nats://127.0.0.1:4299)");
    expect(error.cause).toBe(refused);
    for (const same of [new ClosedError("closed"), new TypeError("bad"), new TransportError("x", { retryable: true })]) expect(transportError("ack", same)).toBe(same);
  });

  it("tells no responders apart, also when the JetStream client reports it as 'not enabled'", () => {
    const noResponders = new RequestError("no responders", { cause: new NoRespondersError("jobs") });
    const notEnabled = Object.assign(new Error("jetstream is not enabled", { cause: noResponders }), { name: "JetStreamNotEnabled" });
    expect(isNoResponders(noResponders)).toBe(true);
    expect(isNoResponders(notEnabled)).toBe(true);
    expect(isNoResponders(new TimeoutError())).toBe(false);
  });

  it("a codec that throws is a non-retryable TransportError", () => {
    const error = (() => {
      try {
        encodeWith({ encode: JSON.stringify, decode: JSON.parse }, { n: 1n });
      } catch (e) {
        return e;
      }
    })();
    expect(TransportError.isInstance(error)).toBe(true);
    expect(error).toMatchObject({ retryable: false, message: expect.stringMatching(/cannot encode payload: .*BigInt/) });
  });
});

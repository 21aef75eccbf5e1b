import { createInbox, type Msg, type NatsConnection } from "@nats-io/transport-node";
import { NatsPullError } from "./errors.js";

/** Where a pull request goes and how much it asks for. */
export interface PullRequest {
  /** `$JS.API.CONSUMER.MSG.NEXT.<stream>.<consumer>`. */
  readonly subject: string;
  /** Most messages to return. */
  readonly batch: number;
  /** Longest wait in ms for a first message. */
  readonly expires: number;
}

// Status codes that end a pull request normally: no messages, the request expired, or a limit
// (max ack pending, max waiting, batch completed) that the next request may clear.
const BENIGN_409 = /exceeded|completed|max ?waiting|leadership/i;

/**
 * One JetStream pull request, the request `consumer.fetch` sends, with `no_wait` set alongside
 * `expires`: the server (2.9+) then waits up to `expires` for a first message and ends the
 * request as soon as nothing more is pending, instead of holding it open until the batch is full.
 * That is what lets a worker get a partial batch at once without cancelling a request, which
 * would race with messages already on the wire. Aborting unsubscribes, which ends the request
 * on the server; messages that arrived by then are handed to `onAbandoned`.
 */
export function pull(nc: NatsConnection, request: PullRequest, signal: AbortSignal, onAbandoned: (msgs: Msg[]) => void): Promise<Msg[]> {
  if (signal.aborted) return Promise.resolve([]);
  return new Promise<Msg[]>((resolve, reject) => {
    const inbox = createInbox();
    const msgs: Msg[] = [];
    let settled = false;
    const finish = (error?: Error, aborted = false): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      signal.removeEventListener("abort", onAbort);
      sub.unsubscribe();
      if (aborted) {
        if (msgs.length > 0) onAbandoned(msgs);
        resolve([]);
      } else if (error !== undefined) {
        if (msgs.length > 0) onAbandoned(msgs);
        reject(error);
      } else {
        resolve(msgs);
      }
    };
    const onAbort = (): void => finish(undefined, true);
    const sub = nc.subscribe(inbox, {
      callback: (error, msg) => {
        if (error !== null) return finish(error);
        const code = msg.headers?.code ?? 0;
        if (code !== 0 && msg.data.length === 0) {
          if (code === 100) return; // idle heartbeat
          if (code === 404 || code === 408 || (code === 409 && BENIGN_409.test(msg.headers?.description ?? ""))) return finish();
          return finish(new NatsPullError(code, msg.headers?.description ?? ""));
        }
        msgs.push(msg);
        if (msgs.length >= request.batch) finish();
      },
    });
    signal.addEventListener("abort", onAbort, { once: true });
    // The server ends the request at `expires`; this covers a request lost in a disconnect.
    const timer = setTimeout(() => finish(), request.expires + 2_000);
    const body = JSON.stringify({ batch: request.batch, expires: Math.round(request.expires * 1e6), no_wait: true });
    try {
      nc.publish(request.subject, body, { reply: inbox });
    } catch (cause) {
      finish(cause as Error);
    }
  });
}

/**
 * Headers tranche puts on its messages. The item id is not `Nats-Msg-Id`: the stream's
 * duplicate window would drop a re-send of the same id, which must re-enqueue the item.
 */
export const Header = {
  /** Item id, stable across redeliveries and re-sends. */
  id: "Tranche-Id",
  /** Epoch ms before which the item must not run (a delayed send). */
  notBefore: "Tranche-Not-Before",
  /** Dead letters: the error message that sent the item there. */
  reason: "Tranche-Reason",
  /** Dead letters: the error's `name`. */
  errorName: "Tranche-Error",
  /** Dead letters: the subject the item was consumed from. */
  subject: "Tranche-Subject",
  /** Dead letters: the delivery attempt that was dead-lettered. */
  attempt: "Tranche-Attempt",
  /** Dead letters: handler runs of the item that ended with a retry. */
  retries: "Tranche-Retries",
} as const;

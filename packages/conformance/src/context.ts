import { type Delivery, type Transport, type TransportCapabilities } from "@tranche/core";
import { invalidOption } from "@tranche/core/internal";
import { type ConformanceOptions, type ConformanceQueue, PREFIX } from "./options.js";
import type { TcpProxy } from "./tcp-proxy.js";

/** The suite's base lease and receive wait, in suite ms (scaled by `timeScale`). */
export const BASE_LEASE = 1000;
export const BASE_WAIT = 200;

/** Leases are "about" their length: a redelivery earlier than this share of it is a violation. */
export const LEASE_TOLERANCE = 0.9;

/** One `receive` result with the transport times around it. */
export interface Received {
  readonly delivery: Delivery<unknown>;
  /** When the `receive` call started: the lease began no earlier. */
  readonly start: number;
  /** When it resolved: the item was handed out no later. */
  readonly at: number;
}

/** What a case gets: a fresh queue and the suite's way of letting time pass. */
export class CaseContext {
  /** Transport ms per suite ms. */
  readonly scale: number;
  readonly lease: number;
  readonly wait: number;

  constructor(
    readonly queue: ConformanceQueue,
    /** The first consumer of the queue; `queue.connect()` makes more. */
    readonly transport: Transport<unknown>,
    readonly capabilities: TransportCapabilities,
    settings: { lease: number; wait: number },
    scale: number,
    /** The suite's options. */
    readonly options: ConformanceOptions,
    /** Between the transports and their server, in the connection-fault cases. */
    readonly proxy?: TcpProxy,
  ) {
    this.scale = scale;
    this.lease = settings.lease;
    this.wait = settings.wait;
  }

  /** Suite ms as transport ms. */
  ms(suiteMs: number): number {
    return Math.round(suiteMs * this.scale);
  }

  get simulated(): boolean {
    return this.queue.advance !== undefined;
  }

  now(): number {
    return this.queue.now?.() ?? Date.now();
  }

  /** Lets `ms` transport ms pass: the transport's clock moves, or the suite sleeps. */
  async sleep(ms: number): Promise<void> {
    if (this.queue.advance !== undefined) await this.queue.advance(ms);
    else await new Promise((resolve) => setTimeout(resolve, ms));
  }

  /** A longest time, in transport ms, for something that must happen "eventually". */
  get patience(): number {
    return this.lease * 3 + this.ms(5000);
  }

  /** The `max` for a receive: `want`, within the transport's `maxReceive`. */
  max(want: number): number {
    return Math.max(1, Math.min(want, this.capabilities.maxReceive));
  }

  /**
   * One `receive`. On a simulated clock the clock is moved in small steps until the call
   * resolves, since a waiting receive only ends when its timer runs.
   */
  async receive(transport: Transport<unknown>, max: number, signal: AbortSignal = new AbortController().signal): Promise<Received[]> {
    const start = this.now();
    const pending = transport.receive(max, signal);
    if (this.queue.advance !== undefined) {
      let done = false;
      const mark = (): void => {
        done = true;
      };
      pending.then(mark, mark);
      await this.queue.advance(0);
      const step = Math.max(1, Math.ceil(this.wait / 4));
      while (!done) await this.queue.advance(step);
    }
    const deliveries = await pending;
    const at = this.now();
    if (deliveries.length > max) throw new Error(`receive(${max}) returned ${deliveries.length} deliveries`);
    // A transport that returns at once must not make the suite spin without time passing.
    if (deliveries.length === 0 && at === start) await this.sleep(Math.max(1, this.ms(10)));
    return deliveries.map((delivery) => ({ delivery, start, at }));
  }

  /**
   * Whether `promise` settles within `ms` transport ms; on a simulated clock, without moving
   * time at all. Never waits longer than that, so a transport that hangs fails instead.
   */
  async settlesWithin<V>(promise: Promise<V>, ms: number): Promise<boolean> {
    let done = false;
    const mark = (): void => {
      done = true;
    };
    promise.then(mark, mark);
    if (this.queue.advance !== undefined) {
      await this.queue.advance(0);
      return done;
    }
    const deadline = Date.now() + ms;
    while (!done && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, Math.min(10, ms)));
    return done;
  }

  /**
   * Receives again and again, handing each delivery to `each`, until `done()` holds or `budget`
   * transport ms have passed. Returns everything received.
   */
  async collect(
    transport: Transport<unknown>,
    options: { done: (received: Received[]) => boolean; budget?: number; max?: number; each?: (received: Received) => void | Promise<void> },
  ): Promise<Received[]> {
    const deadline = this.now() + (options.budget ?? this.patience);
    const all: Received[] = [];
    for (;;) {
      for (const received of await this.receive(transport, this.max(options.max ?? 10))) {
        all.push(received);
        await options.each?.(received);
      }
      if (options.done(all) || this.now() >= deadline) return all;
    }
  }
}

/**
 * Makes the queue a case runs on, with the suite's settings (or a case's own); with `proxy`, its
 * transports connect through it.
 */
export async function openContext(
  options: ConformanceOptions,
  settings: { lease?: number; wait?: number } = {},
  proxy?: TcpProxy,
): Promise<{ context: CaseContext; queue: ConformanceQueue }> {
  const scale = options.timeScale ?? 1;
  if (typeof scale !== "number" || !(scale > 0) || scale === Infinity) {
    throw invalidOption("timeScale", "a number > 0", scale, PREFIX);
  }
  const resolved = { lease: Math.round((settings.lease ?? BASE_LEASE) * scale), wait: Math.round((settings.wait ?? BASE_WAIT) * scale) };
  const queue = await options.create(proxy === undefined ? resolved : { ...resolved, endpoint: { host: proxy.host, port: proxy.port } });
  try {
    const transport = await queue.connect();
    const capabilities = options.capabilities ?? transport.capabilities;
    return { context: new CaseContext(queue, transport, capabilities, resolved, scale, options, proxy), queue };
  } catch (error) {
    await queue.close();
    throw error;
  }
}

export function idsOf(received: Received[]): string[] {
  return received.map((r) => r.delivery.id);
}

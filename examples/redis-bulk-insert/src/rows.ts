/** One row the producer asks to insert. */
export interface Row {
  name: string;
  email: string;
}

/** Where both processes find Redis and the queue. */
export const REDIS_URL = process.env.REDIS_URL ?? "redis://127.0.0.1:6379";
export const STREAM = process.env.STREAM ?? "users-to-insert";
export const ROWS = Number(process.env.ROWS ?? 10_000);
/** Where the result store keeps each row's result (`<prefix><item id>`). */
export const RESULT_PREFIX = process.env.RESULT_PREFIX ?? "tranche:result:";

/**
 * The hand-rolled floor: the least a batching wrapper can do. Calls push into
 * an array that is swapped out at `batchSize` or at the end of the tick (one
 * microtask), each call gets one promise, and the handler's array settles them
 * in order. No options, no ids, no retries, no backpressure: anything a library
 * spends beyond this is the price of its features.
 */
export function floor<T, R>(handler: (values: T[]) => Promise<R[]>, batchSize: number): (value: T) => Promise<R> {
  let values: T[] = [];
  let resolvers: ((result: R) => void)[] = [];
  let rejecters: ((error: unknown) => void)[] = [];
  let scheduled = false;

  // One shared executor: a call allocates its promise and nothing else of its own.
  const executor = (resolve: (result: R) => void, reject: (error: unknown) => void): void => {
    resolvers.push(resolve);
    rejecters.push(reject);
  };

  const dispatch = (): void => {
    const batch = values;
    const resolve = resolvers;
    const reject = rejecters;
    values = [];
    resolvers = [];
    rejecters = [];
    handler(batch).then(
      (results) => {
        for (let i = 0; i < resolve.length; i++) (resolve[i] as (result: R) => void)(results[i] as R);
      },
      (error: unknown) => {
        for (const fail of reject) fail(error);
      },
    );
  };

  const endOfTick = (): void => {
    scheduled = false;
    if (values.length > 0) dispatch();
  };

  return (value: T): Promise<R> => {
    values.push(value);
    const promise = new Promise<R>(executor);
    if (values.length >= batchSize) dispatch();
    else if (!scheduled) {
      scheduled = true;
      queueMicrotask(endOfTick);
    }
    return promise;
  };
}

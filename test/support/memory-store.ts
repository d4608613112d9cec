import { StoreUnavailableError, type CounterStore } from '../../web/counter-store.js';

/**
 * An in-memory CounterStore for unit tests of the routes' counting rules only.
 * It follows the same contract as the Redis store (a repeated request id gets
 * its first number back) so the routes can be tested without a network.
 */
export function createMemoryStore() {
  let count = 0;
  let down = false;
  const seen = new Map<string, number>();
  const store: CounterStore = {
    async countVisit(requestId) {
      if (down) throw new StoreUnavailableError(new Error('down'));
      if (requestId !== undefined && seen.has(requestId)) return { number: seen.get(requestId)!, repeat: true };
      count += 1;
      if (requestId !== undefined) seen.set(requestId, count);
      return { number: count, repeat: false };
    },
    async read() {
      if (down) throw new StoreUnavailableError(new Error('down'));
      return count;
    },
    async reset(to = 0) {
      const previous = count;
      count = to;
      return { previous, current: to };
    },
    async ping() {
      if (down) throw new StoreUnavailableError(new Error('down'));
    },
  };
  return {
    store,
    get count() {
      return count;
    },
    setDown(value: boolean) {
      down = value;
    },
  };
}

// A replica built on a deliberately broken counter, for tests only: it shows
// that the accuracy checks catch what the real store prevents. Production has
// no setting that reaches this code. Run with: node --import tsx test/support/unsafe-replica.ts
//   UNSAFE_COUNTER=read-then-write   GET, then SET n+1: concurrent visits overwrite each other
//   UNSAFE_COUNTER=per-process       a number in this process's memory: replicas count apart
//   UNSAFE_COUNTER=crash-after-count the real store, but REPLICA_ID=$FAULTY_REPLICA dies (SIGKILL)
//                                    after counting, before answering, so nginx retries elsewhere
//   UNSAFE_COUNTER=stall-after-count the same, but it never answers (nginx times out, then retries)
//   UNSAFE_COUNTER=no-idempotency    like crash-after-count, but ignoring the request id
import { loadConfig } from '../../web/config.js';
import { createCounterStore as realStore, StoreUnavailableError, type CounterStore } from '../../web/counter-store.js';
import { startReplica, type StoreFactory } from '../../web/replica.js';
import { failStartup } from '../../web/startup-error.js';

const readThenWrite: StoreFactory = (redis, config) => ({
  ...realStore(redis, config),
  async countVisit() {
    try {
      const current = Number((await redis.get(config.COUNTER_KEY)) ?? 0);
      await redis.set(config.COUNTER_KEY, current + 1);
      return { number: current + 1, repeat: false };
    } catch (error) {
      throw new StoreUnavailableError(error);
    }
  },
});

const perProcess: StoreFactory = (redis, config) => {
  let count = 0;
  return { ...realStore(redis, config), read: async () => count, countVisit: async () => ({ number: ++count, repeat: false }) };
};

const faulty =
  (fault: 'crash' | 'stall', ignoreRequestId = false): StoreFactory =>
  (redis, config) => {
    const store = realStore(redis, config);
    const faultHere = config.REPLICA_ID === process.env.FAULTY_REPLICA;
    return {
      ...store,
      async countVisit(requestId) {
        const visit = await store.countVisit(ignoreRequestId ? undefined : requestId);
        if (faultHere && fault === 'crash') process.kill(process.pid, 'SIGKILL');
        if (faultHere && fault === 'stall') await new Promise(() => {});
        return visit;
      },
    } satisfies CounterStore;
  };

const factories: Record<string, StoreFactory> = {
  'read-then-write': readThenWrite,
  'per-process': perProcess,
  'crash-after-count': faulty('crash'),
  'stall-after-count': faulty('stall'),
  'no-idempotency': faulty('crash', true),
};

try {
  const factory = factories[process.env.UNSAFE_COUNTER ?? ''];
  if (!factory) throw new Error(`UNSAFE_COUNTER must be one of ${Object.keys(factories).join(', ')}`);
  await startReplica(loadConfig(process.env), factory);
} catch (error) {
  failStartup(error);
}

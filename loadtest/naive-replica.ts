// The naive Express replica: issue 11's baseline for `make bench`. It is the
// counter as people first write it, and nothing more: Express 5 with its
// defaults (ETag and X-Powered-By on), ioredis with its default options (no
// auto-pipelining), a plain INCR, a text answer. It has no request log, no
// exactly-once, no metrics, no live page and no error handler. It is never
// deployed. headcount, with every guarantee on, is measured against four of
// these behind the same nginx (docs/load-testing.md, "Naive Express baseline").
//
// The four lines are unchanged below. Three things were added so the
// local formation (formation/local-formation.ts) can run it, each marked
// "added":
// - REDIS_URL: the issue's `redis`, pointed at the formation's Redis as its
//   replica user. bench starts it with COUNTER_KEY=visitorCount, so that
//   user's ACL lets it INCR `visitorCount`.
// - GET /readyz: the formation starts nginx only after every replica answers
//   it with a 2xx, and then waits until the same probe gets through nginx. It
//   PINGs Redis, so "ready" means what it means for headcount: Redis answers.
// - listen on PORT and HOST: the port nginx's upstream names, on 127.0.0.1.
// Not added, because a naive app has none and the formation needs none: a
// SIGTERM handler (the supervisor stops replicas with SIGTERM, and Node's
// default, exiting at once, is enough for a benchmark), and keepAliveTimeout
// (Node's default of 5 s applies).
// NODE_ENV=production comes from the formation, as it does for every replica.
import express from 'express';
import { Redis } from 'ioredis';

// added: the formation's Redis (twelve-factor IV), with ioredis's default options.
const redis = new Redis(process.env.REDIS_URL ?? 'redis://127.0.0.1:6379');

const app = express();
app.get('/', async (req, res) => {
  const n = await redis.incr('visitorCount');
  res.send(`Welcome! Visitor Count: ${n}`);
});

// added: the formation's readiness probe (replica, then through nginx): 2xx once Redis answers.
app.get('/readyz', async (req, res) => {
  await redis.ping();
  res.send('ok');
});

// added: the port and address the formation gave this replica.
app.listen(Number(process.env.PORT ?? 3000), process.env.HOST ?? '127.0.0.1');

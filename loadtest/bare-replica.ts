// The benchmark's baseline (make bench): the least a replica can be, a bare
// node:http handler doing a plain INCR, with no framework, no logging and no
// exactly-once. Never deployed; it only sets the bar the real replica is
// measured against, in the same formation behind the same nginx.
import { createServer } from 'node:http';
import { Redis } from 'ioredis';

const id = process.env.REPLICA_ID ?? 'bare';
const key = process.env.COUNTER_KEY ?? 'headcount:visits';
const redis = new Redis(process.env.REDIS_URL ?? 'redis://127.0.0.1:6379', { enableAutoPipelining: true });

const server = createServer((req, res) => {
  const reply = (status: number, body: object) => {
    const text = JSON.stringify(body);
    res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), 'x-replica': id });
    res.end(text);
  };
  const done = req.url === '/readyz' || req.url === '/api/count' ? redis.get(key).then((n) => ({ count: Number(n ?? 0) })) : redis.incr(key).then((count) => ({ count, replica: id }));
  done.then((body) => reply(200, body), () => reply(503, { error: 'redis unavailable' }));
});
server.keepAliveTimeout = 65_000;
server.listen(Number(process.env.PORT ?? 3000), process.env.HOST ?? '127.0.0.1');
process.once('SIGTERM', () => server.close(() => redis.quit().finally(() => process.exit(0))));

// The real replica entry point (dist/web/server.js), except that a replica
// finds its own REDIS_URL in the file $OWN_REDIS_URL_DIR/<REPLICA_ID>, when
// that file exists as it starts: one replica's path to Redis can then go
// through a proxy a test controls, or carry a wrong password after a restart,
// while the others connect as the formation says.
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';

const file = path.join(process.env.OWN_REDIS_URL_DIR ?? '', process.env.REPLICA_ID ?? '');
if (process.env.OWN_REDIS_URL_DIR && existsSync(file)) process.env.REDIS_URL = readFileSync(file, 'utf8').trim();
await import('../../dist/web/server.js');

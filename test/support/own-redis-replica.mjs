// The real replica entry point (dist/web/server.js), except that a replica
// whose REPLICA_ID is named in OWN_REDIS_URL_<id> (with "-" as "_") takes that
// REDIS_URL instead of the formation's: one replica's path to Redis can then
// go through a proxy a test controls, while the others connect directly.
const own = process.env[`OWN_REDIS_URL_${(process.env.REPLICA_ID ?? '').replaceAll('-', '_')}`];
if (own) process.env.REDIS_URL = own;
await import('../../dist/web/server.js');

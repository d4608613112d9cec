// `make os-deps`: the programs the local formation runs (redis-server, nginx).
// `make test-deps` (node dist/formation/os-deps.js chromium): those, and what the tests need besides.
import { ensurePrerequisites, FORMATION_PROGRAMS } from './prerequisites.js';

process.exitCode = ensurePrerequisites(console.error, [...FORMATION_PROGRAMS, ...process.argv.slice(2)]) ? 0 : 1;

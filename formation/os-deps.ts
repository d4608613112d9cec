// `make os-deps`: the OS packages the formation and the tests use.
import { ensurePrerequisites, FORMATION_PROGRAMS } from './prerequisites.js';

process.exitCode = ensurePrerequisites(console.error, [...FORMATION_PROGRAMS, 'chromium']) ? 0 : 1;

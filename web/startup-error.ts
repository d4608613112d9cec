import { ConfigError } from './env.js';

/**
 * Ends a process that cannot start, with one line on stderr that names the
 * problem: no stack trace, no secret, and a non-zero exit code.
 */
export function failStartup(error: unknown): never {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  let line: string;
  if (error instanceof ConfigError) line = error.message;
  else if (code === 'EADDRINUSE' || code === 'EACCES' || code === 'EADDRNOTAVAIL') {
    const { address, port } = error as NodeJS.ErrnoException & { address?: string; port?: number };
    line = `cannot listen on ${address ?? '?'}:${port ?? '?'}: ${code === 'EADDRINUSE' ? 'address already in use' : code}`;
  } else line = error instanceof Error ? error.message : String(error);
  process.stderr.write(`headcount: ${line}\n`);
  process.exit(code === 'EADDRINUSE' ? 98 : 1);
}

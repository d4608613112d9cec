import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';

/**
 * What nginx's resolver sees while replicas come and go: the addresses Docker's
 * DNS gives for `web`, asked from inside the lb container every 200 ms, and
 * the engine's kill and die events of the web containers, both on the engine
 * host's clock in nanoseconds. `leaving()` then says, for each container that
 * was stopped, whether its address was still in DNS while it drained (between
 * SIGTERM and its exit) and when it left.
 */
export interface DnsWatch {
  stop(): void;
  leaving(ipOf: ReadonlyMap<string, string>): Leaving[];
  events(): readonly { at: number; id: string; action: string }[];
}

export interface Leaving {
  id: string;
  ip: string;
  /** From SIGTERM to exit: the drain. */
  drainMs: number;
  /** The address was in DNS while the container drained (between SIGTERM and exit). */
  inDnsWhileDraining: boolean;
  /** First DNS answer without it, after its exit; undefined if never seen gone. */
  goneAfterExitMs?: number;
}

interface Sample {
  at: number;
  ips: Set<string>;
}
interface Event {
  at: number;
  id: string;
  action: string;
  signal?: string;
}

export function watchDns(env: NodeJS.ProcessEnv, lbContainer: string, project: string): DnsWatch {
  const samples: Sample[] = [];
  const events: Event[] = [];
  // One exec that loops, not one exec per sample: cheap on a 2-core machine.
  const script = 'while :; do printf "%s %s\\n" "$(date +%s%N)" "$(getent ahostsv4 web | cut -d" " -f1 | sort -u | tr "\\n" " ")"; sleep 0.2; done';
  const dns = spawn('docker', ['exec', lbContainer, 'sh', '-c', script], { env, stdio: ['ignore', 'pipe', 'ignore'] });
  createInterface({ input: dns.stdout }).on('line', (line) => {
    const [at, ...ips] = line.trim().split(/\s+/);
    if (at && /^\d+$/.test(at)) samples.push({ at: Number(BigInt(at) / 1_000_000n), ips: new Set(ips) });
  });
  const ev = spawn(
    'docker',
    ['events', '--filter', 'type=container', '--filter', `label=com.docker.compose.project=${project}`, '--filter', 'label=com.docker.compose.service=web',
      '--filter', 'event=kill', '--filter', 'event=die', '--format', '{{json .}}'],
    { env, stdio: ['ignore', 'pipe', 'ignore'] },
  );
  createInterface({ input: ev.stdout }).on('line', (line) => {
    const e = JSON.parse(line) as { timeNano: number; Action: string; Actor: { ID: string; Attributes: Record<string, string> } };
    events.push({ at: Math.round(e.timeNano / 1e6), id: e.Actor.ID, action: e.Action, signal: e.Actor.Attributes.signal });
  });

  return {
    stop() {
      dns.kill();
      ev.kill();
    },
    events: () => events,
    leaving(ipOf) {
      const result: Leaving[] = [];
      for (const term of events.filter((e) => e.action === 'kill' && e.signal === '15')) {
        const died = events.find((e) => e.id === term.id && e.action === 'die' && e.at >= term.at);
        const ip = ipOf.get(term.id);
        if (!died || !ip) continue;
        const draining = samples.filter((s) => s.at >= term.at && s.at <= died.at);
        const gone = samples.find((s) => s.at > died.at && !s.ips.has(ip));
        result.push({
          id: term.id,
          ip,
          drainMs: died.at - term.at,
          inDnsWhileDraining: draining.some((s) => s.ips.has(ip)),
          goneAfterExitMs: gone ? gone.at - died.at : undefined,
        });
      }
      return result;
    },
  };
}

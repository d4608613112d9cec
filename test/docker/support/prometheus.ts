import type { ComposeFormation } from './compose-formation.js';

/** One sample of an instant query's answer. */
export type Sample = { metric: Record<string, string>; value: [number, string] };

/** An instant query against the Prometheus at `url` (its HTTP API); a PromQL error throws with Prometheus's message. */
export async function promQuery(url: string, promql: string): Promise<Sample[]> {
  const response = await fetch(`${url}/api/v1/query?query=${encodeURIComponent(promql)}`, { signal: AbortSignal.timeout(5_000) });
  const body = (await response.json()) as { status: string; error?: string; data: { result: Sample[] } };
  if (body.status !== 'success') throw new Error(`${promql}: ${body.error}`);
  return body.data.result;
}

/** The running web replicas' addresses on the compose network, as Docker's DNS answers `web` (what Prometheus scrapes). */
export async function replicaAddresses(formation: ComposeFormation): Promise<string[]> {
  const ids = (await formation.containers('web')).filter((c) => c.status === 'running').map((c) => c.id);
  const out = await formation.docker(['inspect', '--format', '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}', ...ids]);
  return out.stdout.split('\n').filter(Boolean).sort();
}

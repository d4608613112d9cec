import type { LiveSnapshot } from '../../web/live-hub.js';

/**
 * The first snapshot read after `since` from GET /api/live through the load
 * balancer. A new stream may first get the replica's last reading (up to two
 * ticks old), and later ones only when something changed: so the last one
 * seen within 3 s is current too.
 */
export async function readSnapshot(lbUrl: string, since = Date.now()): Promise<LiveSnapshot> {
  const controller = new AbortController();
  const response = await fetch(`${lbUrl}/api/live`, { signal: controller.signal });
  const timer = setTimeout(() => controller.abort(), 3_000);
  let text = '';
  let last: LiveSnapshot | undefined;
  const decoder = new TextDecoder();
  try {
    for await (const chunk of response.body!) {
      text += decoder.decode(chunk as Uint8Array, { stream: true });
      const frames = text.split('\n\n').filter((f) => f.startsWith('event: snapshot\n'));
      last = frames.length ? (JSON.parse(frames.at(-1)!.split('data: ')[1]!) as LiveSnapshot) : last;
      if (last && last.at >= since) return last;
    }
  } catch (error) {
    if (!controller.signal.aborted) throw error;
  } finally {
    clearTimeout(timer);
    controller.abort();
  }
  if (last) return last;
  throw new Error(`no snapshot from /api/live (status ${response.status}): ${text}`);
}

import http from 'node:http';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { startTestFormation, type TestFormation } from '../support/formation.js';

// GET /api/live at nginx (lb/nginx.conf.template, `location = /api/live`):
// limit_conn per client address, no limit_req, streams that end on their own.
// Locally every client is 127.0.0.1, which the formation exempts from limits
// (the load tests run from it); a limited client sends from another loopback address.

interface OpenStream {
  status: number;
  /** Resolves with what the stream sent and how long it lived, once it ends. */
  ended: Promise<{ text: string; ms: number }>;
  close(): void;
}

/** Opens GET /api/live from `localAddress` on its own connection; resolves once the headers arrive. */
function openStream(lbPort: number, localAddress: string): Promise<OpenStream> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const request = http.request({ host: '127.0.0.1', port: lbPort, path: '/api/live', localAddress, agent: false }, (response) => {
      let text = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => (text += chunk));
      const ended = new Promise<{ text: string; ms: number }>((done) => {
        response.on('close', () => done({ text, ms: performance.now() - started }));
      });
      resolve({ status: response.statusCode ?? 0, ended, close: () => request.destroy() });
    });
    request.on('error', reject);
    request.end();
  });
}

describe('GET /api/live through nginx', () => {
  let formation: TestFormation;
  const open: OpenStream[] = [];
  beforeAll(async () => {
    formation = await startTestFormation({ replicas: 2, replicaEnv: { LIVE_STREAM_MAX_SECONDS: '3' } });
  });
  afterAll(async () => {
    open.forEach((s) => s.close());
    await formation?.destroy();
  });
  const track = (stream: OpenStream) => (open.push(stream), stream);

  test('When one client address holds 8 streams, then a 9th is refused with 429, while the load-test address (exempt) opens 20', async () => {
    const limited = await Promise.all(Array.from({ length: 8 }, () => openStream(formation.lbPort, '127.0.0.5').then(track)));
    const ninth = track(await openStream(formation.lbPort, '127.0.0.5'));
    const exempt = await Promise.all(Array.from({ length: 20 }, () => openStream(formation.lbPort, '127.0.0.1').then(track)));

    expect(limited.map((s) => s.status)).toEqual(Array(8).fill(200));
    expect(ninth.status).toBe(429);
    expect(exempt.map((s) => s.status)).toEqual(Array(20).fill(200));
    open.splice(0).forEach((s) => s.close());
  });

  test('When a client opens and closes 60 streams one after another, far above the rate limit (20 r/s, burst 40), then none is refused: no limit_req here', async () => {
    const statuses: number[] = [];
    for (let i = 0; i < 60; i++) {
      const stream = await openStream(formation.lbPort, '127.0.0.6');
      statuses.push(stream.status);
      stream.close();
      await stream.ended;
    }

    expect(statuses).toEqual(Array(60).fill(200));
  });

  test('When LIVE_STREAM_MAX_SECONDS is 3, then a stream ends by itself after 3 s ± 20 %, having sent retry: and snapshots through nginx unbuffered', async () => {
    const streams = await Promise.all(Array.from({ length: 6 }, () => openStream(formation.lbPort, '127.0.0.1')));
    const ended = await Promise.all(streams.map((s) => s.ended));

    for (const { text, ms } of ended) {
      expect(text.startsWith('retry: 2000\n\n')).toBe(true);
      expect(text).toMatch(/event: snapshot\ndata: \{"total":\d+/);
      expect(ms).toBeGreaterThan(2_400 - 100);
      expect(ms).toBeLessThan(3_600 + 500);
    }
    // Jitter: they do not all end at the same moment.
    expect(Math.max(...ended.map((e) => e.ms)) - Math.min(...ended.map((e) => e.ms))).toBeGreaterThan(50);
  });
});

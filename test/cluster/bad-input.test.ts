import { randomUUID } from 'node:crypto';
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { startTestFormation, type TestFormation } from '../support/formation.js';

// Bad input sent through the real load balancer (nginx in front of real
// replicas and Redis). Whatever a client sends, the count must not move, no
// answer may be a 5xx and no replica may stop. Requests are written as raw
// bytes (node:net), because a well-behaved HTTP client refuses to send most of
// them. test/cluster/never-counted.test.ts covers the well-formed requests
// that must not count (DELETE /, GET /admin, POST /reset, ...).

interface Answer {
  status: number | undefined;
  headers: Record<string, string>;
  /** The server closed the connection (rather than the client giving up). */
  closedByServer: boolean;
  ms: number;
}

/**
 * Writes `request` on a fresh connection and reads the answer: resolves once
 * the response head has arrived, or, with `awaitClose`, once the server
 * closes the connection. Gives up after `limitMs` either way.
 */
function exchange(port: number, request: string | Buffer, { awaitClose = false, limitMs = 5_000 } = {}): Promise<Answer> {
  return new Promise((resolve) => {
    const started = Date.now();
    const socket = net.connect({ host: '127.0.0.1', port });
    let text = '';
    const finish = (closedByServer: boolean) => {
      clearTimeout(timer);
      socket.destroy();
      const [statusLine = '', ...lines] = text.split('\r\n\r\n')[0]!.split('\r\n');
      const headers = Object.fromEntries(
        lines.map((line) => [line.slice(0, line.indexOf(':')).toLowerCase(), line.slice(line.indexOf(':') + 1).trim()]),
      );
      const status = /^HTTP\/1\.[01] (\d{3})/.exec(statusLine)?.[1];
      resolve({ status: status === undefined ? undefined : Number(status), headers, closedByServer, ms: Date.now() - started });
    };
    const timer = setTimeout(() => finish(false), limitMs);
    socket.on('data', (chunk) => {
      text += chunk.toString('latin1');
      if (!awaitClose && text.includes('\r\n\r\n')) finish(false);
    });
    socket.on('close', () => finish(true));
    socket.on('error', () => {}); // a reset shows up as a close
    socket.write(request);
  });
}

const filler = (bytes: number) => 'x'.repeat(bytes);
const head = (lines: string[]) => `${lines.join('\r\n')}\r\n\r\n`;

/** Lines the formation printed that contain every one of `parts`, waiting for buffered logs (nginx flushes each second). */
async function linesWith(formation: TestFormation, parts: string[], atLeast = 1, waitMs = 4_000): Promise<string[]> {
  const deadline = Date.now() + waitMs;
  for (;;) {
    const found = formation.lines.filter((line) => parts.every((part) => line.includes(part)));
    if (found.length >= atLeast || Date.now() > deadline) return found;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

const jsonOf = (line: string) => JSON.parse(line.slice(line.indexOf('|') + 1)) as Record<string, unknown>;

describe('bad input through nginx: refused, never counted, never a 5xx, no replica stops', () => {
  let formation: TestFormation;
  let pids: (number | undefined)[];

  beforeAll(async () => {
    // Production keeps 10 s; 1 s proves the same cut-off quickly.
    formation = await startTestFormation({ replicas: 4, replicaEnv: { LOG_LEVEL: 'info' }, lbEnv: { LB_CLIENT_HEADER_TIMEOUT: '1s' } });
    pids = formation.replicas.map((replica) => replica.service.pid);
  });
  afterAll(() => formation?.destroy());

  /** Every replica still runs as the same process, never restarted, and is ready. */
  async function expectReplicasUnharmed() {
    for (const [i, replica] of formation.replicas.entries()) {
      expect({ id: replica.id, crashes: replica.service.crashes, pid: replica.service.pid }).toEqual({ id: replica.id, crashes: 0, pid: pids[i] });
      expect((await fetch(`${replica.url}/readyz`)).status).toBe(200);
    }
  }

  const port = () => formation.lbPort;
  const lbHost = () => `Host: 127.0.0.1:${formation.lbPort}`;

  // Refused by nginx itself: the answer carries no X-Replica, so no replica saw it.
  test.each([
    ['a request line over 8 KiB', 414, () => head([`GET /${filler(9_000)} HTTP/1.1`, lbHost()])],
    ['one header line over 8 KiB', 400, () => head(['GET / HTTP/1.1', lbHost(), `Cookie: a=${filler(9_000)}`])],
    ['headers over 4 x 8 KiB in all', 400, () => head(['GET / HTTP/1.1', lbHost(), ...[1, 2, 3, 4, 5].map((n) => `X-Pad-${n}: ${filler(7_000)}`)])],
    ['a 20 KB body announced on GET / (limit 16 KiB)', 413, () => head(['GET / HTTP/1.1', lbHost(), 'Content-Length: 20000'])],
    ['a 20 KB chunked body on GET /', 413, () => `${head(['GET / HTTP/1.1', lbHost(), 'Transfer-Encoding: chunked'])}4e20\r\n${filler(20_000)}\r\n0\r\n\r\n`],
    ['binary garbage', 400, () => Buffer.from([0x00, 0x01, 0x02, 0xff, 0xfe, 0x0d, 0x0a, 0x0d, 0x0a])],
    ['a line of text that is not HTTP', 400, () => 'hello there\r\n\r\n'],
    ['a lowercase method', 400, () => head(['get / HTTP/1.1', lbHost()])],
    ['HTTP/2.0 as text (nginx says 505; the config makes it 400)', 400, () => head(['GET / HTTP/2.0', lbHost()])],
    ['the HTTP/2 prior-knowledge preface', 400, () => 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'],
    ['an incomplete percent-escape, /%E0%A4%A', 400, () => head(['GET /%E0%A4%A HTTP/1.1', lbHost()])],
    ['a percent-escape that is not hex, /%zz', 400, () => head(['GET /%zz HTTP/1.1', lbHost()])],
    ['an escaped NUL, /%00', 400, () => head(['GET /%00 HTTP/1.1', lbHost()])],
    ['a path above the root, /../../etc/passwd', 400, () => head(['GET /../../etc/passwd HTTP/1.1', lbHost()])],
    ['two Host headers', 400, () => head(['GET / HTTP/1.1', lbHost(), 'Host: evil.example'])],
    ['HTTP/1.1 without Host', 400, () => head(['GET / HTTP/1.1'])],
    ['both Content-Length and Transfer-Encoding (smuggling)', 400, () => `${head(['POST /api/visits HTTP/1.1', lbHost(), 'Content-Length: 4', 'Transfer-Encoding: chunked'])}0\r\n\r\n`],
    ['a Content-Length that is not a number', 400, () => head(['POST /api/visits HTTP/1.1', lbHost(), 'Content-Length: abc'])],
    ['a header folded onto two lines', 400, () => head(['GET / HTTP/1.1', lbHost(), 'X-Folded: a', ' b'])],
    ['TRACE', 405, () => head(['TRACE / HTTP/1.1', lbHost()])],
    ['CONNECT', 400, () => head(['CONNECT localhost:80 HTTP/1.1', lbHost()])],
  ])('When a client sends %s, then nginx answers %i itself, nothing is counted and every replica keeps running', async (_name, status, request) => {
    const before = await formation.count();

    const answers = await Promise.all([1, 2, 3].map(() => exchange(port(), request())));

    expect(answers.map((a) => ({ status: a.status, replica: a.headers['x-replica'] }))).toEqual(Array(3).fill({ status, replica: undefined }));
    expect(await formation.count()).toBe(before);
    await expectReplicasUnharmed();
  });

  test('When a client sends garbage, then nginx answers 400 and closes the connection', async () => {
    const answer = await exchange(port(), Buffer.from('\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03garbage-after-a-TLS-hello\r\n\r\n', 'latin1'), {
      awaitClose: true,
    });

    expect(answer).toMatchObject({ status: 400, closedByServer: true });
    await expectReplicasUnharmed();
  });

  test('When headers fit nginx (3 x 7 KiB) but not the replica (16 KiB), then 20 at once all get the replica\'s 431, never a 5xx', async () => {
    const before = await formation.count();
    const request = head(['GET / HTTP/1.1', lbHost(), 'Accept: application/json', ...[1, 2, 3].map((n) => `X-Pad-${n}: ${filler(7_000)}`)]);

    const answers = await Promise.all(Array.from({ length: 20 }, () => exchange(port(), request)));

    expect(answers.map((a) => a.status)).toEqual(Array(20).fill(431));
    expect(await formation.count()).toBe(before);
    await expectReplicasUnharmed();
  });

  test.each([
    ['PATCH', '/', 405],
    ['OPTIONS', '/', 405],
    ['PROPFIND', '/', 405],
    ['PATCH', '/api/visits', 405],
    ['DELETE', '/api/count', 405],
    ['OPTIONS', '/api/visits', 405],
    // An unknown method token: nginx passes it on, Node's HTTP parser refuses it.
    ['FOO', '/', 400],
  ])('When %s %s goes through the load balancer, then a replica answers %i and nothing is counted', async (method, path, status) => {
    const before = await formation.count();

    const answers = await Promise.all([1, 2, 3, 4].map(() => exchange(port(), head([`${method} ${path} HTTP/1.1`, lbHost(), 'Connection: close']))));

    expect(answers.map((a) => a.status)).toEqual(Array(4).fill(status));
    if (status === 405) for (const answer of answers) expect(answer.headers).toMatchObject({ 'x-replica': expect.stringMatching(/^web-\d$/), allow: expect.any(String) });
    expect(await formation.count()).toBe(before);
    await expectReplicasUnharmed();
  });

  test.each([
    ['GET', '/admin/reset-count'],
    ['POST', '/admin/reset-count'],
    ['POST', '/admin'],
    ['GET', '/admin/'],
    ['GET', '/reset'],
    ['POST', '/api/reset'],
    ['POST', '/api/visits/reset'],
    ['GET', '//admin'],
    ['GET', '/api/../admin/reset-count'],
    ['GET', '/ADMIN/RESET-COUNT'],
  ])('When %s %s goes through the load balancer, then a replica answers 404: admin is never reachable over HTTP', async (method, path) => {
    const before = await formation.count();

    const answers = await Promise.all([1, 2].map(() => exchange(port(), head([`${method} ${path} HTTP/1.1`, lbHost(), 'Content-Length: 0', 'Connection: close']))));

    for (const answer of answers) expect(answer).toMatchObject({ status: 404, headers: { 'x-replica': expect.stringMatching(/^web-\d$/) } });
    expect(await formation.count()).toBe(before);
    await expectReplicasUnharmed();
  });

  test('When 20 slow clients trickle their headers, then nginx closes each after client_header_timeout (1 s here) and a normal visit meanwhile is served', async () => {
    const before = await formation.count();
    const slowClient = () =>
      new Promise<{ closedByServer: boolean; ms: number; answer: string }>((resolve) => {
        const started = Date.now();
        const socket = net.connect({ host: '127.0.0.1', port: port() });
        let answer = '';
        // One header byte every 200 ms, for 8 s at most: never a complete header.
        const trickle = setInterval(() => socket.write('x'), 200);
        const giveUp = setTimeout(() => finish(false), 8_000);
        const finish = (closedByServer: boolean) => {
          clearInterval(trickle);
          clearTimeout(giveUp);
          socket.destroy();
          resolve({ closedByServer, ms: Date.now() - started, answer });
        };
        socket.on('data', (chunk) => (answer += chunk.toString('latin1')));
        socket.on('close', () => finish(true));
        socket.on('error', () => {});
        socket.write(`GET / HTTP/1.1\r\n${lbHost()}\r\nX-Slow: `);
      });

    const slow = Array.from({ length: 20 }, slowClient);
    const visit = await fetch(`${formation.lbUrl}/`, { headers: { accept: 'application/json' } });
    const results = await Promise.all(slow);

    expect(visit.status).toBe(200);
    for (const result of results) {
      expect(result.closedByServer).toBe(true);
      // Not refused at once, and cut long before the trickle would have ended.
      expect(result.ms).toBeGreaterThanOrEqual(500);
      expect(result.ms).toBeLessThan(8_000);
      expect(result.answer).not.toMatch(/^HTTP\/1\.1 5/);
    }
    expect(await formation.count()).toBe(before + 1);
    // nginx logs each cut-off as a 408 (it sends no answer to a client that never finished asking).
    expect((await linesWith(formation, ['nginx |', '"status":408'], 20)).length).toBeGreaterThanOrEqual(20);
    await expectReplicasUnharmed();
  });

  describe('the Host header: only the service\'s own names are proxied', () => {
    test.each(['evil.example', 'localhost.evil.example', '127.0.0.2', '10.0.0.1:8080', 'xn--80ak6aa92e.example'])(
      'When a request names Host %s, then the catch-all server answers 421 without proxying, and nothing is counted',
      async (host) => {
        const before = await formation.count();
        const probe = `/?probe=${randomUUID()}`;

        const answer = await exchange(port(), head([`GET ${probe} HTTP/1.1`, `Host: ${host}`, 'Accept: application/json', 'Connection: close']));

        expect(answer).toMatchObject({ status: 421 });
        expect(answer.headers['x-replica']).toBeUndefined();
        expect(await formation.count()).toBe(before);
        const [logged] = await linesWith(formation, ['nginx |', probe]);
        expect(jsonOf(logged!)).toMatchObject({ status: 421, upstream_addr: '' });
      },
    );

    test('When an HTTP/1.0 request has no Host at all, then the catch-all answers 421', async () => {
      const before = await formation.count();

      const answer = await exchange(port(), head(['GET / HTTP/1.0', 'Accept: application/json']));

      expect(answer).toMatchObject({ status: 421 });
      expect(await formation.count()).toBe(before);
    });

    test.each([
      ['localhost:PORT', (p: number) => `localhost:${p}`],
      ['127.0.0.1:PORT', (p: number) => `127.0.0.1:${p}`],
      ['LocalHost (any case)', () => 'LocalHost'],
    ])('When a browser on the LB URL sends Host %s, then the visit is proxied and counted once', async (_name, host) => {
      const before = await formation.count();

      const answer = await exchange(port(), head(['GET / HTTP/1.1', `Host: ${host(port())}`, 'Accept: application/json', 'Connection: close']));

      expect(answer).toMatchObject({ status: 200, headers: { 'x-replica': expect.stringMatching(/^web-\d$/) } });
      expect(await formation.count()).toBe(before + 1);
    });
  });

  test('When a client sends its own X-Request-Id (twice), then the replica logs and counts under nginx\'s id, once', async () => {
    const before = await formation.count();
    const probe = `/?probe=${randomUUID()}`;
    const clientId = 'client-picked-id-0123456789';

    const answer = await exchange(
      port(),
      head([`GET ${probe} HTTP/1.1`, lbHost(), 'Accept: application/json', `X-Request-Id: ${clientId}`, `X-Request-Id: ${clientId}-2`, 'Connection: close']),
    );

    expect(answer.status).toBe(200);
    const nginxId = answer.headers['x-request-id'];
    expect(nginxId).toMatch(/^[0-9a-f]{32}$/);
    const [replicaLine] = await linesWith(formation, ['"msg":"request"', `"url":"${probe}"`]);
    expect(jsonOf(replicaLine!)).toMatchObject({ reqId: nginxId, status: 200 });
    expect(formation.lines.some((line) => line.includes(clientId))).toBe(false);
    expect(await formation.count()).toBe(before + 1);
  });
});

// What a replica receives, seen through a stand-in that echoes the request
// headers back: the real replica does not expose them. nginx, its rendered
// config and the formation are the real ones; only the upstream differs.
const ECHO_REPLICA = `
const http = require('node:http');
http.createServer((req, res) => {
  res.setHeader('content-type', 'application/json');
  res.end(JSON.stringify(req.headers));
}).listen(Number(process.env.PORT), process.env.HOST);
`;

describe('forwarding headers a client cannot forge', () => {
  let formation: TestFormation;
  beforeAll(async () => {
    formation = await startTestFormation({ replicas: 1, replicaCommand: [process.execPath, '-e', ECHO_REPLICA] });
  });
  afterAll(() => formation?.destroy());

  test('When a client sends X-Forwarded-For, X-Real-IP, X-Forwarded-Proto and X-Request-Id, then the replica sees nginx\'s values instead', async () => {
    const forged = ['X-Forwarded-For: 6.6.6.6', 'X-Real-IP: 6.6.6.6', 'X-Forwarded-Proto: https', 'X-Request-Id: forged-request-id-0001'];

    // From 127.0.0.2, so the forwarded address is the client's own, not a constant.
    const seen = await new Promise<{ headers: Record<string, string>; responseId: string }>((resolve, reject) => {
      const socket = net.connect({ host: '127.0.0.1', port: formation.lbPort, localAddress: '127.0.0.2' });
      let text = '';
      socket.on('data', (chunk) => (text += chunk.toString()));
      socket.on('end', () => {
        const [headPart = '', body = ''] = text.split('\r\n\r\n');
        resolve({ headers: JSON.parse(body) as Record<string, string>, responseId: /x-request-id: (\w+)/i.exec(headPart)?.[1] ?? '' });
      });
      socket.on('error', reject);
      socket.write(head(['GET / HTTP/1.1', `Host: 127.0.0.1:${formation.lbPort}`, ...forged, 'Connection: close']));
    });

    expect(seen.headers).toMatchObject({
      'x-forwarded-for': '127.0.0.2',
      'x-real-ip': '127.0.0.2',
      'x-forwarded-proto': 'http',
      'x-request-id': seen.responseId,
    });
    expect(seen.responseId).toMatch(/^[0-9a-f]{32}$/);
  });
});

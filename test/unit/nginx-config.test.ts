import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parse } from 'yaml';
import { describe, test, expect } from 'vitest';
import { checkNginxConfig } from '../../formation/local-formation.js';
import {
  BACKUP_SERVER_PARAMS,
  TEMPLATE_PATH,
  UPSTREAM_SERVER_PARAMS,
  localLbValues,
  renderLocalNginxConfig,
  renderTemplate,
  withoutAccessLog,
} from '../../formation/nginx-config.js';
import { fromRoot } from '../../formation/paths.js';
import { requireExecutable } from '../../formation/prerequisites.js';

// The load balancer's one template, rendered both ways it is used (the local
// formation's values and docker-compose.yml's), and checked by nginx itself.
// nginx is required, not optional: without it this fails with the command that
// installs it (`make os-deps` does the same).

const template = readFileSync(TEMPLATE_PATH, 'utf8');

/** A fresh folder for one test's rendered config and nginx scratch files, always removed. */
function withTempDir<T>(use: (dir: string) => Promise<T>): Promise<T> {
  const dir = mkdtempSync(path.join(tmpdir(), 'headcount-nginx-test-'));
  return use(dir).finally(() => rmSync(dir, { recursive: true, force: true }));
}

/**
 * `nginx -t` on a rendered config, with every path nginx writes inside dir.
 * `args`: nginx's command-line arguments, whose `-c` is pointed at the file written here.
 */
async function nginxTest(dir: string, config: string, args: readonly string[] = ['-c', '', '-e', 'stderr']): Promise<void> {
  const confPath = path.join(dir, 'nginx.conf');
  writeFileSync(confPath, config);
  const withConf = args.map((arg, i) => (args[i - 1] === '-c' ? confPath : arg));
  expect(withConf).toContain(confPath);
  await checkNginxConfig(requireExecutable('nginx'), ['-p', dir, ...withConf]);
}

const lbService = () =>
  (parse(readFileSync(fromRoot('docker-compose.yml'), 'utf8'), { merge: true }) as {
    services: { lb: { environment: Record<string, string>; command: string[] } };
  }).services.lb;

/**
 * The LB_* values docker-compose.yml gives the lb service, as Compose
 * interpolates them when the shell sets none of the knobs: `${NAME:-default}`
 * becomes the default.
 */
function dockerLbValues(): Record<string, string> {
  return Object.fromEntries(
    Object.entries(lbService().environment)
      .filter(([name]) => name.startsWith('LB_'))
      .map(([name, value]) => [name, value.replace(/\$\{[A-Z0-9_]+:-([^}]*)\}/g, '$1')]),
  );
}

const localValues = (runtimeDir: string) =>
  localLbValues({ lbPort: 18080, replicaPorts: [13001, 13002, 13003, 13004], runtimeDir, statusPort: 18081 });

/** The config without comments, so a setting only mentioned in a comment does not count. */
const directives = (config: string) => config.replace(/(^|\s)#.*$/gm, '$1');

const nginxVariables = (text: string) => new Set([...directives(text).matchAll(/\$[a-z_][a-z0-9_]*/g)].map((m) => m[0]));

describe('renderTemplate: envsubst as the nginx image runs it', () => {
  test('When a template mixes nginx variables and LB_ placeholders, then only the placeholders change, in both ${X} and $X forms', () => {
    const text = 'listen ${LB_PORT}; root $LB_ROOT/html;\nproxy_set_header X-Request-Id $request_id; proxy_set_header Host $host; return 200 "${remote_addr}";';

    const rendered = renderTemplate(text, { LB_PORT: '8080', LB_ROOT: '/srv' });

    expect(rendered).toBe(
      'listen 8080; root /srv/html;\nproxy_set_header X-Request-Id $request_id; proxy_set_header Host $host; return 200 "${remote_addr}";',
    );
  });

  test('When a placeholder has no value, then rendering throws an error naming it', () => {
    const render = () => renderTemplate('pid ${LB_RUNTIME_DIR}/nginx.pid; listen $LB_PORT;', { LB_PORT: '8080' });

    expect(render).toThrow(/LB_RUNTIME_DIR/);
  });

  test('When the real template is rendered, then no LB_ placeholder is left and every nginx variable survives', () => {
    const rendered = renderTemplate(template, localValues('/tmp/headcount-lb'));

    expect(rendered).not.toMatch(/\$\{?LB_[A-Z]/);
    expect([...nginxVariables(rendered)].sort()).toEqual([...nginxVariables(template)].filter((v) => !v.startsWith('$LB_')).sort());
    expect(nginxVariables(rendered)).toContain('$request_id');
  });
});

describe('nginx -t on the rendered template', () => {
  test('When the template is rendered for a local formation of 4 replicas, then nginx accepts it', async () => {
    await withTempDir(async (dir) => {
      const config = renderTemplate(template, localValues(dir));

      await nginxTest(dir, config);

      // Each replica twice: in the rotation, and as a backup.
      expect(directives(config).match(/^\s*server 127\.0\.0\.1:\d+ .*;$/gm)).toHaveLength(8);
    });
  });

  // Debian's nginx here is 1.22; the image runs 1.27.3 or later. Only what 1.22
  // cannot load, or what exists only inside Docker, is substituted, and nothing
  // else: the ` resolve` server parameter (nginx >= 1.27.3), the host name `web`
  // (Docker's DNS only) for 127.0.0.1, LB_RUNTIME_DIR (the container's tmpfs)
  // for a temp folder so nginx writes nothing outside it, and the path after
  // the command's -c for the file written there. The resolver line, worker
  // settings, log format, timeouts, retry policy and the lb command's other
  // switches (-e stderr, -g "daemon off;") are checked exactly as Docker runs them.
  test('When the template is rendered with docker-compose.yml\'s lb values and checked with its command, less `resolve`, with `web` as 127.0.0.1 and a temp runtime dir (what nginx 1.22 here cannot load), then nginx accepts it', async () => {
    await withTempDir(async (dir) => {
      const docker = dockerLbValues();
      const [binary, ...args] = lbService().command;
      const upstream = docker.LB_UPSTREAM_SERVERS ?? '';
      expect(upstream).toBe(`server web:3000 resolve ${UPSTREAM_SERVER_PARAMS}; server web:3000 resolve ${BACKUP_SERVER_PARAMS};`);
      expect(binary).toBe('nginx');
      const loadable = { ...docker, LB_UPSTREAM_SERVERS: upstream.replaceAll(' resolve', '').replaceAll('server web:', 'server 127.0.0.1:'), LB_RUNTIME_DIR: dir };

      const config = renderTemplate(template, loadable);
      await nginxTest(dir, config, args);

      expect(directives(config)).toContain('resolver 127.0.0.11 valid=2s ipv6=off;');
      expect(directives(config)).toContain(`server 127.0.0.1:3000 ${UPSTREAM_SERVER_PARAMS}; server 127.0.0.1:3000 ${BACKUP_SERVER_PARAMS};`);
      // No `user` line: the container's nginx runs unprivileged (uid 101) and
      // cannot switch users; a `user` line would only print a warning.
      expect(directives(config)).not.toMatch(/^\s*user\s/m);
    });
  });

  test('When a rendered config is broken, then the check fails and shows what nginx said', async () => {
    await withTempDir(async (dir) => {
      const config = renderTemplate(template, localValues(dir)).replace('worker_connections 16384;', 'worker_connections;');

      await expect(nginxTest(dir, config)).rejects.toThrow(/worker_connections/);
    });
  });
});

describe('the rendered config keeps the promised settings', () => {
  const config = directives(renderTemplate(template, localValues('/tmp/headcount-lb')));
  const upstream = /upstream\s+web\s*\{([\s\S]*?)\n\s*\}/.exec(config)?.[1] ?? '';

  test('When a replica fails to connect, times out, or answers 500 or 503 (Redis refuses it or is out of its reach), then nginx tries one other replica, for POST too, never on 502/504', () => {
    expect(config).toMatch(/^\s*proxy_next_upstream error timeout http_500 http_503 non_idempotent;$/m);
    expect(config).toMatch(/^\s*proxy_next_upstream_tries 2;$/m);
    expect(config).not.toMatch(/http_50[24]/);
  });

  test('When nginx itself answers 502 (no replica answered: nginx/nginx#1656 while DNS changes), then the visit gets one more pass, and only that one', () => {
    // The proxied `location /` (the catch-all server has one that only returns 421).
    const slash = [...config.matchAll(/location \/ \{([\s\S]*?)\n\s*\}/g)].map((m) => m[1]!).find((body) => body.includes('proxy_pass')) ?? '';
    const nextPass = /location @next_pass \{([\s\S]*?)\n\s*\}/.exec(config)?.[1] ?? '';

    expect(slash).toMatch(/^\s*error_page 502 = @next_pass;$/m);
    expect(nextPass).toMatch(/^\s*proxy_pass http:\/\/web;$/m);
    expect(nextPass).not.toMatch(/error_page|limit_req/);
    expect(config).not.toMatch(/recursive_error_pages on/);
  });

  test('When every replica is counted out (Redis down for all), then nginx turns to the same replicas as backups that are never counted out', () => {
    const servers = [...upstream.matchAll(/^\s*server (\S+) (.*);$/gm)].map(([, address, params]) => ({ address, params }));

    expect(servers.filter((s) => s.params === UPSTREAM_SERVER_PARAMS).map((s) => s.address)).toEqual([
      '127.0.0.1:13001',
      '127.0.0.1:13002',
      '127.0.0.1:13003',
      '127.0.0.1:13004',
    ]);
    expect(servers.filter((s) => s.params === BACKUP_SERVER_PARAMS).map((s) => s.address)).toEqual([
      '127.0.0.1:13001',
      '127.0.0.1:13002',
      '127.0.0.1:13003',
      '127.0.0.1:13004',
    ]);
    expect(BACKUP_SERVER_PARAMS).toBe('backup max_fails=0');
  });

  test('When requests reach the replicas, then upstream connections are reused and each carries nginx\'s own request id', () => {
    expect(upstream).toMatch(/^\s*keepalive \d+;$/m);
    expect(config).toContain('proxy_http_version 1.1;');
    expect(config).toContain('proxy_set_header Connection "";');
    expect(config).toContain('proxy_set_header X-Request-Id $request_id;');
  });

  test('When many clients connect, then one worker holds more than 1024 connections and keep-alive lasts for many requests', () => {
    const workerConnections = Number(/^\s*worker_connections (\d+);/m.exec(config)?.[1]);
    const keepaliveRequests = [...config.matchAll(/^\s*keepalive_requests (\d+);/gm)].map((m) => Number(m[1]));

    expect(workerConnections).toBeGreaterThan(1024);
    expect(keepaliveRequests).toHaveLength(2); // towards clients, and in the upstream
    for (const value of keepaliveRequests) expect(value).toBeGreaterThanOrEqual(10_000);
  });

  test('When a request is logged, then it is one JSON line on stdout with the request id and the replica tried', () => {
    const format = /log_format (\w+) escape=json([\s\S]*?);\n/.exec(config);

    expect(format).not.toBeNull();
    expect(format![2]).toContain('"request_id":"$request_id"');
    expect(format![2]).toContain('"upstream_addr":"$upstream_addr"');
    expect(config).toMatch(new RegExp(`^\\s*access_log /dev/stdout ${format![1]}\\b`, 'm'));
    expect(config).toMatch(/^\s*server_tokens off;$/m);
  });
});

// make bench's naive Express baseline (issue 11) runs behind the same nginx
// with its access log off; every other formation keeps the log.
describe('the access log switch (accessLog: false, for the bench\'s naive baseline only)', () => {
  const lb = (runtimeDir: string) => ({ lbPort: 18080, replicaPorts: [13001, 13002, 13003, 13004], runtimeDir, statusPort: 18081, env: {} });
  const httpLevelLog = (config: string) => directives(config).match(/^ {4}access_log .*;$/gm);

  test('When the local config is rendered without the option, then it is the template as before, with the JSON access log', async () => {
    const config = await renderLocalNginxConfig(lb('/tmp/headcount-lb'));

    expect(config).toBe(renderTemplate(template, localLbValues(lb('/tmp/headcount-lb'))));
    expect(httpLevelLog(config)).toEqual(['    access_log /dev/stdout headcount_json buffer=64k flush=1s;']);
  });

  test('When it is rendered with accessLog false, then only the http-level access_log line changes, to off, and nginx accepts it', async () => {
    await withTempDir(async (dir) => {
      const on = (await renderLocalNginxConfig(lb(dir))).split('\n');
      const off = (await renderLocalNginxConfig({ ...lb(dir), accessLog: false })).split('\n');

      await nginxTest(dir, off.join('\n'));

      expect(off).toHaveLength(on.length);
      const changed = on.flatMap((line, i) => (line === off[i] ? [] : [[line, off[i]]]));
      expect(changed).toEqual([['    access_log /dev/stdout headcount_json buffer=64k flush=1s;', '    access_log off;']]);
      expect(directives(off.join('\n'))).not.toMatch(/access_log \/dev\/stdout/);
    });
  });

  test('When a config has no such access_log line, or two, then turning it off throws instead of leaving a log on', () => {
    const config = renderTemplate(template, localValues('/tmp/headcount-lb'));
    const line = '    access_log /dev/stdout headcount_json buffer=64k flush=1s;';

    expect(() => withoutAccessLog(config.replace(line, '    access_log /dev/stdout headcount_json;\n' + line))).toThrow(/found 2/);
    expect(() => withoutAccessLog(config.replace(line, ''))).toThrow(/found 0/);
  });
});

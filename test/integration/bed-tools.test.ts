/**
 * The bed's servers from KUBEBUILDER_ASSETS (envtest's layout): used when they report the pinned
 * versions, and said so; one of another version ignored, with a line saying which and why.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import type { BedState } from '../bed/bed.ts';
import { ensureTools, type ToolPaths, toolPaths, VERSIONS } from '../bed/tools.ts';

const execFileAsync = promisify(execFile);
const ROOT = join(import.meta.dirname, '..', '..');

describe('test bed: KUBEBUILDER_ASSETS', () => {
  let cached: ToolPaths;
  let work: string;
  before(() => {
    // The bed's own binaries, built once if this machine has none yet.
    cached = ensureTools(['kube', 'etcd'], { env: { ...process.env, KUBEBUILDER_ASSETS: '' } });
    work = mkdtempSync(join(tmpdir(), 'oidc-assets-'));
  });
  after(() => rmSync(work, { recursive: true, force: true }));

  /** A folder laid out as setup-envtest lays out its assets, of symlinks to the given binaries. */
  function assets(name: string, links: Partial<Record<'kube-apiserver' | 'kubectl' | 'etcd', string>>) {
    const dir = join(work, name);
    mkdirSync(dir);
    for (const [file, target] of Object.entries(links)) symlinkSync(target, join(dir, file));
    return dir;
  }

  it('uses the three binaries when they report the pinned versions, and says so', () => {
    const dir = assets('pinned', {
      'kube-apiserver': cached.kubeApiserver,
      kubectl: cached.kubectl,
      etcd: cached.etcd,
    });
    const lines: string[] = [];
    const paths = ensureTools(['kube', 'etcd'], {
      env: { ...process.env, KUBEBUILDER_ASSETS: dir },
      report: (l) => lines.push(l),
    });
    assert.equal(paths.kubeApiserver, join(dir, 'kube-apiserver'));
    assert.equal(paths.kubectl, join(dir, 'kubectl'));
    assert.equal(paths.etcd, join(dir, 'etcd'));
    assert.equal(paths.minio, toolPaths().minio, 'the others stay those of the bed');
    assert.deepEqual(lines, [
      `test bed: using kube-apiserver ${VERSIONS.kube}, kubectl ${VERSIONS.kube}, etcd ${VERSIONS.etcd} ` +
        `from KUBEBUILDER_ASSETS=${dir}`,
    ]);
  });

  it('takes a relative KUBEBUILDER_ASSETS from the current folder, as absolute paths the bed can start anywhere', () => {
    const dir = assets('relative', { kubectl: cached.kubectl });
    const paths = ensureTools(['kube'], {
      env: { ...process.env, KUBEBUILDER_ASSETS: relative(process.cwd(), dir) },
      report: () => {},
    });
    assert.equal(paths.kubectl, join(dir, 'kubectl'));
  });

  it('ignores a kube-apiserver of another version and a missing etcd, each with a line, and keeps kubectl', () => {
    // A stand-in: a real kube-apiserver of another version would be a second 12-minute build from
    // source. It answers --version the way kube-apiserver does.
    const dir = assets('other-version', { kubectl: cached.kubectl });
    const stale = join(dir, 'kube-apiserver');
    writeFileSync(stale, '#!/bin/sh\necho "Kubernetes v1.34.1"\n');
    chmodSync(stale, 0o755);
    const lines: string[] = [];
    const paths = ensureTools(['kube', 'etcd'], {
      env: { ...process.env, KUBEBUILDER_ASSETS: dir },
      report: (l) => lines.push(l),
    });
    assert.equal(paths.kubeApiserver, cached.kubeApiserver, 'the kube-apiserver of the bed instead');
    assert.equal(paths.etcd, cached.etcd, 'the etcd of the bed instead');
    assert.equal(paths.kubectl, join(dir, 'kubectl'), 'kubectl of the pinned version is still used');
    assert.deepEqual(lines, [
      `test bed: ignoring ${stale} of KUBEBUILDER_ASSETS: it reports v1.34.1, the bed pins ${VERSIONS.kube}; ` +
        "using the bed's own",
      `test bed: KUBEBUILDER_ASSETS=${dir} has no executable etcd; using the bed's own`,
      `test bed: using kubectl ${VERSIONS.kube} from KUBEBUILDER_ASSETS=${dir}`,
    ]);
  });

  it('ignores a binary that reports no version it can read (another program under the name)', () => {
    // etcd's name on kube-apiserver: a real binary, whose --version is not etcd's.
    const dir = assets('wrong-program', { etcd: cached.kubeApiserver });
    const lines: string[] = [];
    const paths = ensureTools(['etcd'], {
      env: { ...process.env, KUBEBUILDER_ASSETS: dir },
      report: (l) => lines.push(l),
    });
    assert.equal(paths.etcd, cached.etcd);
    assert.deepEqual(lines, [
      `test bed: ignoring ${join(dir, 'etcd')} of KUBEBUILDER_ASSETS: it reports no version, ` +
        `the bed pins ${VERSIONS.etcd}; using the bed's own`,
    ]);
  });

  it('runs a bed on them: `testbed up` prints the line and its servers are those of the folder', async () => {
    const dir = assets('bed', {
      'kube-apiserver': cached.kubeApiserver,
      kubectl: cached.kubectl,
      etcd: cached.etcd,
    });
    const bedDir = join(work, 'bed-dir');
    const node = process.execPath;
    const cli = join(ROOT, 'test', 'bed', 'cli.ts');
    const env = { ...process.env, KUBEBUILDER_ASSETS: dir };
    try {
      const up = await execFileAsync(node, [cli, 'up', '--dir', bedDir], { env, cwd: ROOT });
      const line =
        `test bed: using kube-apiserver ${VERSIONS.kube}, kubectl ${VERSIONS.kube}, etcd ${VERSIONS.etcd} ` +
        `from KUBEBUILDER_ASSETS=${dir}`;
      assert.ok(
        up.stderr.split('\n').includes(line),
        `testbed up printed ${JSON.stringify(line)}:\n${up.stderr}`,
      );
      const state = JSON.parse(readFileSync(join(bedDir, 'bed.json'), 'utf8')) as BedState;
      assert.equal(state.apiserver.binary, join(dir, 'kube-apiserver'));
      assert.equal(state.kubectl, join(dir, 'kubectl'));
      assert.equal(state.etcd.proc.spec.command, join(dir, 'etcd'));
      const ready = await execFileAsync(state.kubectl, ['get', '--raw', '/readyz'], {
        env: { ...process.env, KUBECONFIG: state.admin.kubeconfig },
      });
      assert.equal(ready.stdout.trim(), 'ok');
    } finally {
      await execFileAsync(node, [cli, 'down', '--dir', bedDir], { env, cwd: ROOT }).catch(() => undefined);
    }
  });
});

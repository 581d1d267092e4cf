/**
 * The documentation's commands work: every ```sh runnable block of README.md
 * and docs/*.md runs with bash (-euo pipefail) against the bed, in document
 * order, as a user would run it after replacing the variables its first
 * comment names. The operator runs as its own ServiceAccount (standing in for
 * the Deployment the bed cannot schedule), so `kubectl wait` for Ready, the
 * status and the public URL show what they show a user.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Bed } from '../bed/bed.ts';
import { useBed } from '../bed/shared.ts';
import { type CodeBlock, documentationFiles, readDoc, runnableBlocks } from '../unit/markdown.ts';
import { installOperator, OPERATOR_NAMESPACE, OperatorProcess, ROOT, waitForReady } from './harness.ts';

/** The OidcPublisher the README's blocks create and the guides' blocks look at. */
const PUBLISHER = 'cluster-issuer';
const BLOCK_TIMEOUT_MS = 180_000;

interface Run {
  code: number;
  output: string;
}

/** Runs a block with bash in `cwd`; the whole process group is killed when it takes too long. */
function runBlock(block: CodeBlock, cwd: string, env: NodeJS.ProcessEnv): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn('bash', ['--noprofile', '--norc', '-euo', 'pipefail', '-c', block.text], {
      cwd,
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    let output = '';
    const collect = (c: Buffer) => {
      output += c.toString('utf8');
    };
    child.stdout.on('data', collect);
    child.stderr.on('data', collect);
    const timer = setTimeout(() => {
      output += `\n[killed after ${BLOCK_TIMEOUT_MS} ms]`;
      if (child.pid) process.kill(-child.pid, 'SIGKILL');
    }, BLOCK_TIMEOUT_MS);
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      resolve({ code: code ?? (signal ? 128 : 1), output });
    });
  });
}

const files = documentationFiles().filter((f) => runnableBlocks(readDoc(f), f).length > 0);

describe('the runnable shell blocks of README.md and docs/*.md, against the bed', () => {
  let bed: Bed;
  let op: OperatorProcess | undefined;
  let work: string;
  let env: NodeJS.ProcessEnv;
  const useShared = useBed(undefined, {
    beforeStop: async () => {
      // The operator removes its finalizer, so the OidcPublisher goes while it still runs.
      try {
        await bed?.kubectl([
          'delete',
          'oidcpublisher',
          PUBLISHER,
          '--ignore-not-found',
          '--wait=true',
          '--timeout=60s',
        ]);
        await bed?.kubectl(['-n', OPERATOR_NAMESPACE, 'delete', 'secret', 's3-writer', '--ignore-not-found']);
      } finally {
        await op?.stop('SIGTERM');
      }
    },
  });

  before(async () => {
    bed = useShared();
    const kubeconfig = await installOperator(bed);
    op = await OperatorProcess.start(bed, kubeconfig, ['--leader-elect', 'false']);

    // A working directory like a checkout (the blocks apply crds/), whose files they may write.
    work = mkdtempSync(join(tmpdir(), 'oidc-docs-'));
    for (const dir of ['crds', 'config', 'charts']) symlinkSync(join(ROOT, dir), join(work, dir));
    const bin = join(work, '.bin');
    mkdirSync(bin);
    symlinkSync(bed.state.kubectl, join(bin, 'kubectl'));
    // The operator's command, as a user who installed it has it on PATH.
    writeFileSync(
      join(bin, 'oidc-publisher'),
      `#!/bin/sh\nexec ${JSON.stringify(process.execPath)} ${JSON.stringify(join(ROOT, 'src', 'cli.ts'))} "$@"\n`,
    );
    chmodSync(join(bin, 'oidc-publisher'), 0o755);

    const s3 = bed.state.s3;
    const issuerPath = new URL(bed.issuer).pathname.replace(/^\/+/, '');
    assert.ok(issuerPath.startsWith(`${s3.bucket}/`), `the bed's issuer is a path-style URL of ${s3.bucket}`);
    env = {
      PATH: `${bin}:${process.env.PATH ?? '/usr/bin:/bin'}`,
      HOME: process.env.HOME ?? work,
      LANG: 'C.UTF-8',
      KUBECONFIG: bed.adminKubeconfig,
      ISSUER: bed.issuer,
      BUCKET: s3.bucket,
      REGION: s3.region,
      PREFIX: issuerPath.slice(s3.bucket.length + 1),
      S3_ENDPOINT: s3.endpoint,
      AWS_ACCESS_KEY_ID: s3.accessKeyId,
      AWS_SECRET_ACCESS_KEY: s3.secretAccessKey,
      // The bed's servers have certificates of the bed's CA; in real life these are publicly trusted.
      CURL_CA_BUNDLE: bed.state.caFile,
      NODE_EXTRA_CA_CERTS: bed.state.caFile,
      CA: bed.state.caFile,
    };
  });

  after(() => {
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it('finds runnable blocks in README.md and in the guides', () => {
    assert.ok(files.includes('README.md'), 'README.md has runnable blocks');
    assert.ok(
      files.some((f) => f.startsWith('docs/')),
      'docs/ has runnable blocks',
    );
  });

  for (const file of files) {
    describe(file, () => {
      if (file !== 'README.md') {
        before(async () => {
          // The guides start where the README leaves a user: an OidcPublisher that is Ready.
          await waitForReady(bed, PUBLISHER, 'True', undefined, 60_000);
        });
      }
      for (const block of runnableBlocks(readDoc(file), file)) {
        const first = block.text.split('\n').find((l) => l.trim() !== '' && !l.startsWith('#')) ?? '';
        it(`${file}:${block.line} exits 0 (${first.trim().slice(0, 60)})`, async (t) => {
          const res = await runBlock(block, work, env);
          t.diagnostic(res.output.trimEnd().split('\n').slice(-15).join('\n'));
          assert.equal(
            res.code,
            0,
            `the block at ${file}:${block.line} exited ${res.code}:\n${block.text}\n--- its output:\n${res.output}\n--- the operator's last lines:\n${op?.output.slice(-10).join('\n')}`,
          );
        });
      }
    });
  }
});

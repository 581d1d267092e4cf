/**
 * The operator as the image runs it: src/ compiled by tsconfig.build.json to
 * JavaScript, into a directory of the benchmark's own (dist/ is left alone).
 * Running src/cli.ts directly would measure Node's type stripping too.
 */
import { spawnSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT } from '../test/e2e/harness.ts';

/** Compiles src/ and returns the path of the built cli.js. */
export function buildOperator(): string {
  const outDir = join(ROOT, 'node_modules', '.cache', 'oidc-publisher-bench', 'dist');
  rmSync(outDir, { recursive: true, force: true });
  const res = spawnSync(
    join(ROOT, 'node_modules', '.bin', 'tsc'),
    ['-p', join(ROOT, 'tsconfig.build.json'), '--outDir', outDir, '--sourceMap', 'false'],
    { cwd: ROOT, encoding: 'utf8' },
  );
  if (res.status !== 0) throw new Error(`building the operator failed:\n${res.stdout}${res.stderr}`);
  return join(outDir, 'src', 'cli.js');
}

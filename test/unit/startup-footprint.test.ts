/**
 * What the operator loads before its first sync. Every package and Node
 * bundle here costs memory for the life of the process (docs/performance.md):
 * client-node, the cloud SDKs and Node's bundled undici must wait until
 * something needs them; prom-client is loaded at start, for /metrics.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath, pathToFileURL } from 'node:url';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** Imports `module` in a fresh process; the packages it resolved and whether undici was loaded. */
function footprint(module: string): { packages: string[]; undici: boolean } {
  const script = `
    const { registerHooks } = process.getBuiltinModule('node:module');
    const urls = new Set();
    registerHooks({ resolve(specifier, context, next) { const r = next(specifier, context); urls.add(r.url); return r; } });
    await import(${JSON.stringify(pathToFileURL(join(ROOT, module)).href)});
    const packages = new Set();
    for (const url of urls) {
      const m = /\\/node_modules\\/((?:@[^/]+\\/)?[^/]+)\\//.exec(url);
      if (m) packages.add(m[1]);
    }
    process.stdout.write(JSON.stringify({
      packages: [...packages].sort(),
      undici: process.moduleLoadList.some((m) => m.includes('undici')),
    }));
  `;
  const out = execFileSync(process.execPath, ['--input-type=module', '-e', script], {
    cwd: ROOT,
    encoding: 'utf8',
  });
  return JSON.parse(out) as { packages: string[]; undici: boolean };
}

/** The packages and everything they depend on, from their package.json files. */
function withDependencies(roots: string[]): Set<string> {
  const out = new Set<string>();
  const todo = [...roots];
  for (let name = todo.pop(); name !== undefined; name = todo.pop()) {
    if (out.has(name)) continue;
    out.add(name);
    const pkg = JSON.parse(readFileSync(join(ROOT, 'node_modules', name, 'package.json'), 'utf8')) as {
      dependencies?: Record<string, string>;
    };
    todo.push(...Object.keys(pkg.dependencies ?? {}));
  }
  return out;
}

describe('startup footprint', () => {
  const operator = footprint('src/main.ts');

  it('loads only pino, prom-client (with their dependencies) and yaml among the packages when the operator starts', () => {
    const allowed = withDependencies(['pino', 'prom-client', 'yaml']);
    assert.deepEqual(
      operator.packages.filter((p) => !allowed.has(p)),
      [],
      `loaded at start: ${operator.packages.join(', ')}`,
    );
    for (const p of ['pino', 'prom-client']) {
      assert.ok(operator.packages.includes(p), `expected ${p} among ${operator.packages.join(', ')}`);
    }
  });

  it('does not load client-node or a cloud SDK', () => {
    for (const p of operator.packages) {
      assert.doesNotMatch(p, /^(@kubernetes\/|@aws-sdk\/|@smithy\/|@google-cloud\/|@azure\/)/);
    }
  });

  it("does not load Node's bundled undici (an ESM import of node:http would)", () => {
    assert.equal(operator.undici, false);
  });

  it('leaves @aws-sdk/client-iam to `register aws`: neither the operator nor the register command loads it', () => {
    assert.ok(
      !operator.packages.includes('@aws-sdk/client-iam'),
      `loaded at start: ${operator.packages.join(', ')}`,
    );
    const register = footprint('src/commands/register.ts');
    assert.ok(
      !register.packages.some((p) => p.startsWith('@aws-sdk/')),
      `register (gcp, azure, arguments) loads ${register.packages.join(', ')}`,
    );
    const iam = footprint('src/commands/iam-providers.ts');
    assert.ok(
      iam.packages.includes('@aws-sdk/client-iam'),
      `the IAM module loads it: ${iam.packages.join(', ')}`,
    );
  });

  it('sees the packages a store loads, so the checks above can fail', () => {
    const s3 = footprint('src/stores/s3.ts');
    assert.ok(s3.packages.includes('@aws-sdk/client-s3'), `got ${s3.packages.join(', ')}`);
    const esmHttp = execFileSync(
      process.execPath,
      [
        '--input-type=module',
        '-e',
        "import 'node:http'; process.stdout.write(String(process.moduleLoadList.some((m) => m.includes('undici'))))",
      ],
      { encoding: 'utf8' },
    );
    assert.equal(esmHttp, 'true', 'the undici check detects what it is meant to');
  });
});

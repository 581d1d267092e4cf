/**
 * No credential leaves the operator. It runs through a scenario that touches
 * every credential it handles (storage keys from a Secret, right and wrong; a
 * kubeconfig Secret with an inline token, valid, rejected, malformed; a
 * kubeconfig that would run a command; basic-auth and GCS key material; its
 * own ServiceAccount token; the canary tokens it requests), and then none of
 * the secret values appears in
 * anything it produced: its stdout and stderr at the most verbose log level,
 * the Events, the OidcPublisher objects and their status, /metrics.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { Writable } from 'node:stream';
import { before, describe, it } from 'node:test';
import { createLogger } from '../../src/log.ts';
import type { Bed } from '../bed/bed.ts';
import { useBed } from '../bed/shared.ts';
import {
  applyYaml,
  condition,
  createSecret,
  eventually,
  getPublisher,
  installOperator,
  OperatorProcess,
  type PublisherView,
  samplePublisher,
  waitForReady,
} from './harness.ts';

/** A secret value nobody could produce by accident. */
function secretValue(label: string): string {
  return `${label}-${randomBytes(18).toString('base64url')}`;
}

/** The publishers whose credentials are wrong, malformed or refused. */
const FAILING = [
  'refused-token',
  'malformed',
  'exec',
  'basic-auth',
  'unknown-key',
  'wrong-secret',
  'gcs-key',
];

interface Credential {
  what: string;
  value: string;
}

/** The forms a leaked value would take: as is, base64 (Secret data), and a JWT's signature alone. */
function forms(value: string): string[] {
  const out = [value, Buffer.from(value).toString('base64')];
  const parts = value.split('.');
  if (parts.length === 3 && (parts[2]?.length ?? 0) > 20) out.push(parts[2]!);
  return out;
}

const CANARY_AUDIENCE = 'oidc-publisher-canary';

/**
 * Every JWT payload of the canary audience in `text`: the operator requests those tokens itself, so
 * no test knows their values, but a leaked one (whole, or its payload with or without a signature)
 * decodes to a payload with that audience.
 */
function canaryTokens(where: string, text: string): string[] {
  const found: string[] = [];
  for (const m of text.matchAll(/eyJ[A-Za-z0-9_-]{10,}/g)) {
    try {
      const payload = JSON.parse(Buffer.from(m[0], 'base64url').toString('utf8')) as { aud?: unknown };
      const aud = Array.isArray(payload.aud) ? payload.aud : [payload.aud];
      if (aud.includes(CANARY_AUDIENCE)) found.push(`a canary token in ${where}: ${m[0].slice(0, 40)}…`);
    } catch {
      // Not a JWT segment.
    }
  }
  return found;
}

/** Every place a credential (in any of its forms) appears in `text`. */
function leaks(credentials: readonly Credential[], where: string, text: string): string[] {
  const found: string[] = [];
  for (const c of credentials) {
    for (const f of forms(c.value)) {
      const at = text.indexOf(f);
      if (at >= 0) {
        found.push(`${c.what} in ${where}: …${text.slice(Math.max(0, at - 80), at + f.length + 20)}…`);
        break;
      }
    }
  }
  return found;
}

describe('redaction: no credential in logs, Events, status or metrics', () => {
  let bed: Bed;
  let op: OperatorProcess;
  const credentials: Credential[] = [];
  const useOwn = useBed(
    { gcs: false },
    {
      beforeStop: async () => {
        await op?.stop('SIGTERM');
      },
    },
  );

  function publisher(name: string, prefix: string, spec: Record<string, unknown>): string {
    return JSON.stringify(samplePublisher(bed, { name, spec, s3: { prefix } }));
  }

  async function waitForCondition(name: string, type: string, status: string, ...reasons: string[]) {
    let last: PublisherView | undefined;
    try {
      return await eventually(`${name}: ${type}=${status}/${reasons.join('|')}`, async () => {
        last = await getPublisher(bed, name);
        const c = condition(last, type);
        return c?.status === status && reasons.includes(c.reason) ? last : undefined;
      });
    } catch (err) {
      throw new Error(`${(err as Error).message}; last: ${JSON.stringify(last?.status?.conditions)}`);
    }
  }

  before(async () => {
    bed = useOwn();
    const kubeconfig = await installOperator(bed);
    const ownToken = readFileSync(kubeconfig, 'utf8').match(/^\s*token: (\S+)$/m)?.[1];
    assert.ok(ownToken, "the operator's kubeconfig holds its ServiceAccount token");
    credentials.push({ what: "the operator's own ServiceAccount token", value: ownToken });

    // Storage keys: the right ones, and two wrong pairs (unknown key id with a session token; right id, wrong secret).
    const s3 = bed.state.s3;
    credentials.push(
      { what: 'the S3 access key id', value: s3.accessKeyId },
      { what: 'the S3 secret access key', value: s3.secretAccessKey },
    );
    await createSecret(bed, 's3-writer', {
      AWS_ACCESS_KEY_ID: s3.accessKeyId,
      AWS_SECRET_ACCESS_KEY: s3.secretAccessKey,
    });
    const wrongId = `AKIA${randomBytes(8).toString('hex').toUpperCase()}`;
    const wrongKey = secretValue('wrong-secret-key');
    const sessionToken = secretValue('session-token');
    const otherWrongKey = secretValue('other-wrong-secret-key');
    credentials.push(
      { what: 'a wrong access key id', value: wrongId },
      { what: 'a wrong secret access key', value: wrongKey },
      { what: 'a session token', value: sessionToken },
      { what: 'a wrong secret access key for the right key id', value: otherWrongKey },
    );
    await createSecret(bed, 's3-unknown-key', {
      AWS_ACCESS_KEY_ID: wrongId,
      AWS_SECRET_ACCESS_KEY: wrongKey,
      AWS_SESSION_TOKEN: sessionToken,
    });
    await createSecret(bed, 's3-wrong-secret', {
      AWS_ACCESS_KEY_ID: s3.accessKeyId,
      AWS_SECRET_ACCESS_KEY: otherWrongKey,
    });

    // Kubeconfig Secrets: a working inline token, a refused token, malformed YAML around a token,
    // a command (exec) carrying a secret in its env and args, basic auth.
    await bed.serviceAccountKubeconfig('issuer-readers', 'reader');
    await applyYaml(
      bed,
      JSON.stringify({
        apiVersion: 'rbac.authorization.k8s.io/v1',
        kind: 'ClusterRoleBinding',
        metadata: { name: 'redaction-issuer-reader' },
        roleRef: {
          apiGroup: 'rbac.authorization.k8s.io',
          kind: 'ClusterRole',
          name: 'system:service-account-issuer-discovery',
        },
        subjects: [{ kind: 'ServiceAccount', name: 'reader', namespace: 'issuer-readers' }],
      }),
    );
    const readerToken = await bed.mintToken({ namespace: 'issuer-readers', serviceAccount: 'reader' });
    const forgedToken = `${readerToken.split('.').slice(0, 2).join('.')}.${randomBytes(256).toString('base64url')}`;
    const brokenToken = secretValue('broken-yaml-token');
    const execSecret = secretValue('exec-secret');
    const password = secretValue('basic-auth-password');
    credentials.push(
      { what: 'the kubeconfig Secret token', value: readerToken },
      { what: 'a refused kubeconfig token', value: forgedToken },
      { what: 'a token in malformed kubeconfig YAML', value: brokenToken },
      { what: 'a secret in an exec kubeconfig', value: execSecret },
      { what: 'a basic-auth password', value: password },
    );
    const good = bed.inlineKubeconfig(readerToken);
    const tokenLine = `    token: ${readerToken}\n`;
    assert.ok(good.includes(tokenLine));
    await createSecret(bed, 'kc-good', { kubeconfig: good });
    await createSecret(bed, 'kc-refused-token', { kubeconfig: bed.inlineKubeconfig(forgedToken) });
    await createSecret(bed, 'kc-malformed', {
      kubeconfig: good.replace(tokenLine, `    token: ${brokenToken}: [\n`),
    });
    await createSecret(bed, 'kc-exec', {
      kubeconfig: good.replace(
        tokenLine,
        `    exec:\n      apiVersion: client.authentication.k8s.io/v1\n      command: /bin/echo\n      args: ["${execSecret}"]\n      env:\n      - name: TOKEN\n        value: ${execSecret}\n`,
      ),
    });
    await createSecret(bed, 'kc-basic-auth', {
      kubeconfig: good.replace(tokenLine, `    username: admin\n    password: ${password}\n`),
    });

    // GCS key material that is not valid JSON.
    const privateKey = secretValue('gcs-private-key');
    credentials.push({ what: 'a GCS private key', value: privateKey });
    await createSecret(bed, 'gcs-key', {
      'credentials.json': `{"type":"service_account","private_key":"${privateKey}",`,
    });

    op = await OperatorProcess.start(bed, kubeconfig, ['--log-level', 'trace', '--leader-elect', 'false']);
    const kc = (name: string) => ({ source: { kubeconfigSecretRef: { name } } });
    await applyYaml(
      bed,
      publisher('own-cluster', 'public/cluster-a', {
        verification: { canary: { serviceAccountRef: { name: 'oidc-publisher-canary' } } },
      }),
    );
    await applyYaml(bed, publisher('via-kubeconfig', 'public/via-kubeconfig', kc('kc-good')));
    await applyYaml(bed, publisher('refused-token', 'public/refused-token', kc('kc-refused-token')));
    await applyYaml(bed, publisher('malformed', 'public/malformed', kc('kc-malformed')));
    await applyYaml(bed, publisher('exec', 'public/exec', kc('kc-exec')));
    await applyYaml(bed, publisher('basic-auth', 'public/basic-auth', kc('kc-basic-auth')));
    await applyYaml(
      bed,
      publisher('unknown-key', 'public/unknown-key', {
        storage: {
          s3: {
            bucket: s3.bucket,
            region: s3.region,
            prefix: 'public/unknown-key',
            endpoint: s3.endpoint,
            forcePathStyle: true,
            credentialsSecretRef: { name: 's3-unknown-key' },
          },
        },
      }),
    );
    await applyYaml(
      bed,
      publisher('wrong-secret', 'public/wrong-secret', {
        storage: {
          s3: {
            bucket: s3.bucket,
            region: s3.region,
            prefix: 'public/wrong-secret',
            endpoint: s3.endpoint,
            forcePathStyle: true,
            credentialsSecretRef: { name: 's3-wrong-secret' },
          },
        },
      }),
    );
    await applyYaml(
      bed,
      publisher('gcs-key', '', {
        // Objects the public issuer does not serve yet, so the sync needs storage and its key.
        cacheControl: 'public, max-age=17',
        storage: {
          gcs: {
            bucket: 'oidc-bed',
            prefix: 'gcs-elsewhere',
            endpoint: 'https://127.0.0.1:1',
            credentialsSecretRef: { name: 'gcs-key' },
          },
        },
      }),
    );
  });

  it('reaches the state each credential leads to (so every one was really used)', async () => {
    const own = await waitForReady(bed, 'own-cluster', 'True', 'Ready');
    assert.match(
      condition(own, 'Verified')?.message ?? '',
      /a token the API server issued \(kid .*\) verifies/,
      'the canary token was requested and verified',
    );
    await waitForCondition('own-cluster', 'Published', 'True', 'DocumentsPublished', 'UpToDate');
    await waitForCondition('via-kubeconfig', 'SourceAvailable', 'True', 'DocumentsFetched');
    await waitForCondition('via-kubeconfig', 'Published', 'True', 'DocumentsPublished', 'UpToDate');
    await waitForCondition('refused-token', 'SourceAvailable', 'False', 'SourceUnauthorized');
    await waitForCondition('malformed', 'SourceAvailable', 'False', 'KubeconfigInvalid');
    await waitForCondition('exec', 'SourceAvailable', 'False', 'KubeconfigRefused');
    await waitForCondition('basic-auth', 'SourceAvailable', 'False', 'KubeconfigRefused');
    await waitForCondition('unknown-key', 'Published', 'False', 'StorageAccessDenied');
    await waitForCondition('wrong-secret', 'Published', 'False', 'StorageAccessDenied');
    await waitForCondition('gcs-key', 'Published', 'False', 'StorageCredentialsInvalid');
    // One more round of syncs and retries, then a clean shutdown: its logs are part of the output too.
    const lines = op.logs().length;
    await eventually(
      'another round of syncs',
      async () => {
        const again = new Set(
          op.logs().flatMap((l, i) => (i >= lines && l.msg === 'sync failed' ? [l.oidcpublisher] : [])),
        );
        return FAILING.every((n) => again.has(n)) ? true : undefined;
      },
      30_000,
    );
    assert.ok(
      op.logs().some((l) => l.level === 'trace' || l.level === 'debug'),
      'the most verbose log levels were on',
    );
  });

  it('leaks none of them into stdout/stderr, Events, OidcPublishers or /metrics', async (t) => {
    const metrics = await op.metrics();
    const readyz = await (await fetch(`http://127.0.0.1:${op.healthPort}/readyz`)).text();
    assert.equal(await op.stop('SIGTERM'), 0, 'the operator exits 0 on SIGTERM');
    const output = op.output.join('\n');
    const coreEvents = await bed.kubectl(['get', 'events', '-A', '-o', 'json']);
    const events = await bed.kubectl(['get', 'events.events.k8s.io', '-A', '-o', 'json']);
    const publishers = await bed.kubectl(['get', 'oidcpublishers', '-o', 'json']);
    assert.ok((JSON.parse(events) as { items: unknown[] }).items.length >= 5, 'Events were recorded');
    for (const name of FAILING) {
      assert.ok(
        op.logs().some((l) => l.oidcpublisher === name && l.msg === 'sync failed'),
        `the operator logged the failure of ${name}`,
      );
    }
    const found = [
      ...leaks(credentials, 'operator stdout/stderr', output),
      ...leaks(credentials, 'Events (core/v1)', coreEvents),
      ...leaks(credentials, 'Events (events.k8s.io/v1)', events),
      ...leaks(credentials, 'OidcPublishers', publishers),
      ...leaks(credentials, '/metrics', metrics),
      ...leaks(credentials, '/readyz', readyz),
      ...canaryTokens('operator stdout/stderr', output),
      ...canaryTokens('Events (core/v1)', coreEvents),
      ...canaryTokens('Events (events.k8s.io/v1)', events),
      ...canaryTokens('OidcPublishers', publishers),
      ...canaryTokens('/metrics', metrics),
    ];
    t.diagnostic(
      `checked ${credentials.length} credentials in ${output.length} bytes of logs, ${events.length + coreEvents.length} of Events, ${publishers.length} of OidcPublishers, ${metrics.length} of metrics`,
    );
    assert.deepEqual(found, [], 'credentials found');
  });

  it('would see a leaked canary token: the detector finds one the API server issues, whole or without its signature', async () => {
    const token = await bed.mintToken({
      namespace: 'oidc-publisher-system',
      serviceAccount: 'oidc-publisher-canary',
      audience: CANARY_AUDIENCE,
      durationSeconds: 600,
    });
    assert.equal(canaryTokens('sample', `x "${token}" y`).length, 1, 'the whole token');
    assert.equal(
      canaryTokens('sample', `x ${token.split('.').slice(0, 2).join('.')} y`).length,
      1,
      'no signature',
    );
    const other = await bed.mintToken({
      namespace: 'issuer-readers',
      serviceAccount: 'reader',
      audience: 'other',
    });
    assert.equal(canaryTokens('sample', other).length, 0, 'a token of another audience');
  });

  it('would see a leak: the detector finds each credential, raw and base64', () => {
    for (const c of credentials) {
      for (const f of forms(c.value)) {
        assert.equal(leaks([c], 'sample', `x ${f} y`).length, 1, `${c.what} as ${f.slice(0, 12)}…`);
      }
    }
  });
});

describe("redaction: the logger's second line of defence", () => {
  it('redacts every credential field the operator handles, at the top level and one level down', async () => {
    const lines: string[] = [];
    const destination = new Writable({
      write(chunk: Buffer, _enc, done) {
        lines.push(chunk.toString('utf8'));
        done();
      },
    });
    const log = createLogger({ level: 'trace', destination });
    const secret = secretValue('logged-by-mistake');
    // The shapes credentials take inside the operator: S3 credentials, the Secret's keys, kubeconfig
    // users, HTTP headers (Node and the AWS SDK spell Authorization either way), GCS keys.
    const fields = [
      'token',
      'authorization',
      'Authorization',
      'kubeconfig',
      'credentials',
      'secretAccessKey',
      'sessionToken',
      'AWS_SECRET_ACCESS_KEY',
      'AWS_SESSION_TOKEN',
      'password',
      'client-key-data',
      'privateKey',
      'private_key',
    ];
    for (const f of fields) {
      log.info({ [f]: secret }, 'top level');
      log.info({ nested: { [f]: secret } }, 'one level down');
    }
    log.info({ headers: { Authorization: `Bearer ${secret}` } }, 'headers');
    log.info({ req: { headers: { authorization: `Bearer ${secret}` } } }, 'request headers');
    await new Promise((r) => setImmediate(r));
    assert.equal(lines.length, fields.length * 2 + 2, 'every line was written');
    const leaked = lines.filter((l) => l.includes(secret));
    assert.deepEqual(leaked, [], 'lines that carry the secret');
  });
});

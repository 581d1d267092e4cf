/**
 * Who may make the operator touch what, end to end against the bed: an
 * OidcPublisher overwrites and deletes only objects it wrote; of two on one
 * target the earlier keeps it; a Secret is used only by the publishers it
 * names; a jwksURI stays on the issuer's origin; and the sample
 * ValidatingAdmissionPolicy limits who may name which bucket.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import { HeadObjectCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import type { Bed } from '../bed/bed.ts';
import { createS3Client } from '../bed/s3.ts';
import { useBed } from '../bed/shared.ts';
import {
  applyYaml,
  condition,
  createSecret,
  eventually,
  getPublisher,
  installOperator,
  OPERATOR_NAMESPACE,
  OperatorProcess,
  ROOT,
  samplePublisher,
  waitForReady,
} from './harness.ts';

const FOREIGN_BODY =
  '{"issuer":"https://someone-else.example","jwks_uri":"https://someone-else.example/keys"}';

describe('operator end to end: ownership of published objects and targets', () => {
  let bed: Bed;
  let op: OperatorProcess;
  let s3: S3Client;
  const useOwn = useBed(
    { gcs: false },
    {
      beforeStop: async () => {
        await op?.stop('SIGTERM');
      },
    },
  );

  function publisher(
    name: string,
    prefix: string,
    extra: Record<string, unknown> = {},
    s3Extra: Record<string, unknown> = {},
  ): string {
    return JSON.stringify(
      samplePublisher(bed, {
        name,
        spec: { verification: { enabled: false }, ...extra },
        s3: { prefix, ...s3Extra },
      }),
    );
  }

  const head = (key: string) => s3.send(new HeadObjectCommand({ Bucket: bed.state.s3.bucket, Key: key }));
  const exists = async (key: string) => {
    try {
      return await head(key);
    } catch (err) {
      if ((err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode === 404)
        return undefined;
      throw err;
    }
  };
  const uidOf = async (name: string) =>
    (await bed.kubectl(['get', 'oidcpublisher', name, '-o', 'jsonpath={.metadata.uid}'])).trim();
  const gone = (name: string) =>
    eventually(
      `oidcpublisher/${name} to be gone`,
      async () =>
        (await bed.kubectl(['get', 'oidcpublisher', name, '--ignore-not-found'])).trim() === ''
          ? true
          : undefined,
      30_000,
    );
  async function events(name: string): Promise<string[]> {
    const list = JSON.parse(
      await bed.kubectl(['get', 'events.events.k8s.io', '-n', 'default', '-o', 'json']),
    ) as {
      items: {
        regarding?: { name?: string; kind?: string };
        reason?: string;
        type?: string;
        note?: string;
      }[];
    };
    return list.items
      .filter((e) => e.regarding?.kind === 'OidcPublisher' && e.regarding.name === name)
      .map((e) => `${e.type}/${e.reason}: ${e.note}`);
  }

  before(async () => {
    bed = useOwn();
    s3 = createS3Client(bed.state.s3, bed.ca);
    const kubeconfig = await installOperator(bed);
    await createSecret(bed, 's3-writer', {
      AWS_ACCESS_KEY_ID: bed.state.s3.accessKeyId,
      AWS_SECRET_ACCESS_KEY: bed.state.s3.secretAccessKey,
    });
    op = await OperatorProcess.start(bed, kubeconfig);
  });

  describe('published objects', () => {
    const PREFIX = 'owned/foreign';
    const KEY = `${PREFIX}/.well-known/openid-configuration`;

    it('does not overwrite an object someone else wrote at the prefix: ObjectNotOwned, nothing written', async () => {
      await s3.send(
        new PutObjectCommand({
          Bucket: bed.state.s3.bucket,
          Key: KEY,
          Body: FOREIGN_BODY,
          ContentType: 'application/json',
        }),
      );
      await applyYaml(bed, publisher('foreign-target', PREFIX, { deletionPolicy: 'Delete' }));
      const p = await waitForReady(bed, 'foreign-target', 'False', 'ObjectNotOwned', 60_000);
      assert.equal(condition(p, 'Published')?.reason, 'ObjectNotOwned');
      assert.match(condition(p, 'Published')?.message ?? '', /was not written by this OidcPublisher/);
      const res = await s3.send(
        new (await import('@aws-sdk/client-s3')).GetObjectCommand({ Bucket: bed.state.s3.bucket, Key: KEY }),
      );
      assert.equal(await res.Body?.transformToString(), FOREIGN_BODY, 'the foreign object is untouched');
      assert.equal(
        await exists(`${PREFIX}/openid/v1/jwks`),
        undefined,
        'not even the absent JWKS was written',
      );
      await eventually('a Warning Event ObjectNotOwned', async () =>
        (await events('foreign-target')).some((e) => e.startsWith('Warning/ObjectNotOwned'))
          ? true
          : undefined,
      );
    });

    it('leaves the foreign object in place on deletion with deletionPolicy: Delete, and still lets the finalizer go', async () => {
      await bed.kubectl(['delete', 'oidcpublisher', 'foreign-target', '--wait=false']);
      await gone('foreign-target');
      const res = await exists(KEY);
      assert.ok(res, 'the foreign object survives deletionPolicy: Delete');
      assert.equal(res.Metadata?.['oidc-publisher-owner-uid'], undefined);
      const notes = await events('foreign-target');
      assert.ok(
        notes.some((e) => /^Warning\/ObjectNotOwned: deletionPolicy: Delete left/.test(e)),
        `events: ${notes.join('\n')}`,
      );
    });

    it('records its UID and name in the metadata of what it writes, and deletes only that', async () => {
      await applyYaml(bed, publisher('owner-check', 'owned/mine', { deletionPolicy: 'Delete' }));
      await waitForReady(bed, 'owner-check', 'True', 'Ready', 60_000);
      const uid = await uidOf('owner-check');
      for (const key of ['owned/mine/.well-known/openid-configuration', 'owned/mine/openid/v1/jwks']) {
        const meta = (await head(key)).Metadata ?? {};
        assert.equal(meta['oidc-publisher-owner-uid'], uid, `${key} records the owner's UID`);
        assert.equal(meta['oidc-publisher-owner-name'], 'owner-check');
        assert.match(meta['oidc-publisher-sha256'] ?? '', /^[0-9a-f]{64}$/);
      }
      await bed.kubectl(['delete', 'oidcpublisher', 'owner-check', '--wait=false']);
      await gone('owner-check');
      assert.equal(await exists('owned/mine/openid/v1/jwks'), undefined, 'its own objects are deleted');
    });
  });

  describe('two publishers on one target', () => {
    const PREFIX = 'owned/shared';

    it('refuses the later one with TargetConflict and leaves the earlier one working', async () => {
      await applyYaml(bed, publisher('first-on-target', PREFIX, { deletionPolicy: 'Delete' }));
      await waitForReady(bed, 'first-on-target', 'True', 'Ready', 60_000);
      // A later creationTimestamp: the API server stamps whole seconds.
      await new Promise((r) => setTimeout(r, 1100));
      // A long syncInterval: taking over later must come from being woken, not from a regular sync.
      await applyYaml(bed, publisher('second-on-target', `${PREFIX}/`, { syncInterval: '5m' }));
      const p = await waitForReady(bed, 'second-on-target', 'False', 'TargetConflict', 60_000);
      assert.match(
        condition(p, 'Published')?.message ?? '',
        /OidcPublisher "first-on-target", created earlier, publishes to the same objects/,
      );
      const firstUID = await uidOf('first-on-target');
      // Several syncs of both: the objects stay the first one's, and it stays Ready.
      await new Promise((r) => setTimeout(r, 12_000));
      for (const key of [`${PREFIX}/.well-known/openid-configuration`, `${PREFIX}/openid/v1/jwks`]) {
        assert.equal((await head(key)).Metadata?.['oidc-publisher-owner-uid'], firstUID);
      }
      const first = await getPublisher(bed, 'first-on-target');
      assert.equal(condition(first, 'Ready')?.status, 'True');
      const second = await getPublisher(bed, 'second-on-target');
      assert.equal(condition(second, 'Ready')?.reason, 'TargetConflict', 'still refused after more syncs');
    });

    it('hands the target to the later one once the earlier one is deleted', async () => {
      await bed.kubectl(['delete', 'oidcpublisher', 'first-on-target', '--wait=false']);
      await gone('first-on-target');
      // Long before the second one's next regular sync (5m): it is woken when the first goes.
      await waitForReady(bed, 'second-on-target', 'True', 'Ready', 20_000);
      const secondUID = await uidOf('second-on-target');
      assert.equal(
        (await head(`${PREFIX}/openid/v1/jwks`)).Metadata?.['oidc-publisher-owner-uid'],
        secondUID,
      );
    });
  });

  describe('Secrets opt in', () => {
    it('refuses a credentials Secret without the allowed-publishers annotation, and uses it once it names the publisher', async () => {
      await createSecret(
        bed,
        's3-unannotated',
        { AWS_ACCESS_KEY_ID: bed.state.s3.accessKeyId, AWS_SECRET_ACCESS_KEY: bed.state.s3.secretAccessKey },
        { allowedPublishers: null },
      );
      await applyYaml(
        bed,
        publisher('secret-check', 'owned/secret', {}, { credentialsSecretRef: { name: 's3-unannotated' } }),
      );
      const p = await waitForReady(bed, 'secret-check', 'False', 'SecretNotAllowed', 60_000);
      assert.match(
        condition(p, 'Published')?.message ?? '',
        /Secret oidc-publisher-system\/s3-unannotated does not allow OidcPublisher "secret-check"/,
      );
      assert.equal(await exists('owned/secret/openid/v1/jwks'), undefined, 'nothing was written with it');
      // Naming another publisher is not enough.
      await createSecret(
        bed,
        's3-unannotated',
        { AWS_ACCESS_KEY_ID: bed.state.s3.accessKeyId, AWS_SECRET_ACCESS_KEY: bed.state.s3.secretAccessKey },
        { allowedPublishers: 'someone-else' },
      );
      await new Promise((r) => setTimeout(r, 11_000));
      assert.equal(condition(await getPublisher(bed, 'secret-check'), 'Ready')?.reason, 'SecretNotAllowed');
      await bed.kubectl([
        '-n',
        OPERATOR_NAMESPACE,
        'annotate',
        '--overwrite',
        'secret',
        's3-unannotated',
        'oidcpublisher.io/allowed-publishers=someone-else,secret-check',
      ]);
      await waitForReady(bed, 'secret-check', 'True', 'Ready', 30_000);
    });

    it('refuses a kubeconfig Secret without the annotation as the source', async () => {
      const token = await bed.mintToken({ namespace: OPERATOR_NAMESPACE, serviceAccount: 'oidc-publisher' });
      await createSecret(
        bed,
        'kc-unannotated',
        { kubeconfig: bed.inlineKubeconfig(token) },
        { allowedPublishers: null },
      );
      await applyYaml(
        bed,
        publisher('kc-secret-check', 'owned/kc', {
          source: { kubeconfigSecretRef: { name: 'kc-unannotated' } },
        }),
      );
      const p = await waitForReady(bed, 'kc-secret-check', 'False', 'SecretNotAllowed', 60_000);
      assert.equal(condition(p, 'SourceAvailable')?.reason, 'SecretNotAllowed');
    });
  });

  describe('jwksURI', () => {
    it('refuses a jwksURI on another origin than the issuer as InvalidSpec', async () => {
      await applyYaml(
        bed,
        publisher('foreign-jwks', 'owned/jwks', { jwksURI: 'https://keys.attacker.example/jwks' }),
      );
      const p = await waitForReady(bed, 'foreign-jwks', 'False', 'InvalidSpec', 60_000);
      assert.match(condition(p, 'Ready')?.message ?? '', /is not under the issuer URL/);
      assert.equal(await exists('owned/jwks/.well-known/openid-configuration'), undefined);
    });

    it("refuses a jwksURI in another bucket on the issuer's own host (path-style storage) as InvalidSpec", async () => {
      // The bed's issuer is path-style (https://<MinIO>/<bucket>/<prefix>): another bucket on the
      // same host has the same origin, and would be anyone's keys.
      const other = `${new URL(bed.issuer).origin}/attacker-bucket/openid/v1/jwks`;
      await applyYaml(bed, publisher('other-bucket-jwks', 'owned/jwks2', { jwksURI: other }));
      const p = await waitForReady(bed, 'other-bucket-jwks', 'False', 'InvalidSpec', 60_000);
      assert.match(condition(p, 'Ready')?.message ?? '', /is not under the issuer URL/);
      assert.equal(await exists('owned/jwks2/.well-known/openid-configuration'), undefined);
    });
  });

  describe('S3 endpoints', () => {
    it('refuses an endpoint that names another bucket in its host as InvalidSpec, and writes nothing', async () => {
      // With path style every request would go to victim-bucket, the spec's bucket and prefix
      // becoming its key prefix, signed with the operator's identity.
      await applyYaml(
        bed,
        publisher(
          'bucket-in-host',
          'owned/bucket-in-host',
          {},
          {
            endpoint: 'https://victim-bucket.s3.us-east-1.amazonaws.com',
            region: 'us-east-1',
            forcePathStyle: true,
          },
        ),
      );
      const p = await waitForReady(bed, 'bucket-in-host', 'False', 'InvalidSpec', 60_000);
      assert.match(condition(p, 'Ready')?.message ?? '', /names the bucket "victim-bucket" in its host/);
      assert.equal(await exists('owned/bucket-in-host/.well-known/openid-configuration'), undefined);
      await bed.kubectl(['delete', 'oidcpublisher', 'bucket-in-host', '--wait=false']);
    });
  });

  describe('the sample ValidatingAdmissionPolicy (config/policy)', () => {
    const as = (user: string, ...groups: string[]) => [
      `--as=${user}`,
      ...groups.map((g) => `--as-group=${g}`),
    ];
    const draft = (name: string, bucket: string, s3: Record<string, unknown> = {}) =>
      JSON.stringify({
        apiVersion: 'oidcpublisher.io/v1alpha1',
        kind: 'OidcPublisher',
        metadata: { name },
        spec: {
          issuerURL: 'https://issuer.example.com',
          verification: { enabled: false },
          storage: { s3: { bucket, region: 'eu-west-1', prefix: 'policy', ...s3 } },
        },
      });
    const applyAs = (yaml: string, user: string, ...groups: string[]) =>
      bed.kubectl(['apply', '-f', '-', ...as(user, ...groups)], { input: yaml });

    before(async () => {
      // Users who may edit OidcPublishers, as a platform team would grant it.
      await applyYaml(
        bed,
        `apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: oidcpublisher-editor
rules:
- apiGroups: [oidcpublisher.io]
  resources: [oidcpublishers]
  verbs: [get, list, create, update, patch, delete]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: oidcpublisher-editors
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: ClusterRole
  name: oidcpublisher-editor
subjects:
- apiGroup: rbac.authorization.k8s.io
  kind: Group
  name: developers
- apiGroup: rbac.authorization.k8s.io
  kind: Group
  name: oidcpublisher-admins
`,
      );
      await bed.kubectl(['apply', '-k', join(ROOT, 'config', 'policy')]);
      await bed.kubectl([
        '-n',
        OPERATOR_NAMESPACE,
        'patch',
        'configmap',
        'oidcpublisher-storage-allowlist',
        '--type=merge',
        '-p',
        JSON.stringify({ data: { s3: 'allowed-bucket, other-allowed' } }),
      ]);
    });

    it('refuses a developer an OidcPublisher on a bucket that is not in the list', async () => {
      // The API server compiles a new policy and its binding within a second or so.
      const err = await eventually('the policy to refuse', async () => {
        try {
          await applyAs(draft('policy-forbidden', 'forbidden-bucket'), 'dev', 'developers');
          await bed.kubectl(['delete', 'oidcpublisher', 'policy-forbidden', '--ignore-not-found']);
          return undefined;
        } catch (e) {
          return String(e);
        }
      });
      assert.match(err, /ValidatingAdmissionPolicy 'oidcpublisher-storage-allowlist'/);
      assert.match(err, /s3:\/\/forbidden-bucket is not in the storage allowlist/);
      assert.equal(
        (await bed.kubectl(['get', 'oidcpublisher', 'policy-forbidden', '--ignore-not-found'])).trim(),
        '',
      );
    });

    it('lets a developer use a listed bucket, and an admin any bucket', async () => {
      await applyAs(draft('policy-allowed', 'allowed-bucket'), 'dev', 'developers');
      await applyAs(draft('policy-admin', 'forbidden-bucket'), 'admin', 'oidcpublisher-admins');
      assert.ok(await getPublisher(bed, 'policy-allowed'));
      assert.ok(await getPublisher(bed, 'policy-admin'));
    });

    it('refuses a developer a listed bucket through an endpoint that reaches another bucket', async () => {
      const endpoints: [string, boolean][] = [
        ['https://forbidden-bucket.s3.us-east-1.amazonaws.com', false],
        ['https://FORBIDDEN-BUCKET.S3.US-EAST-1.AMAZONAWS.COM.', false],
        ['https://forbidden.bucket.s3.dualstack.us-east-1.amazonaws.com', false],
        ['https://s3.us-east-1.amazonaws.com:8443', false],
        ['https://ap-1.s3-accesspoint.us-east-1.amazonaws.com', false],
        ['https://forbidden-bucket.s3-website-us-east-1.amazonaws.com', false],
        ['https://s3.us-east-1.amazonaws.com', true],
        ['https://S3.DUALSTACK.EU-WEST-1.AMAZONAWS.COM', true],
        ['https://minio.example.com:9000', true],
      ];
      for (const [i, [endpoint, allowed]] of endpoints.entries()) {
        const name = `policy-endpoint-${i}`;
        const apply = applyAs(
          draft(name, 'allowed-bucket', { endpoint, forcePathStyle: true }),
          'dev',
          'developers',
        );
        if (allowed) {
          await apply;
          await bed.kubectl(['delete', 'oidcpublisher', name, '--wait=false']);
        } else {
          await assert.rejects(
            apply,
            /s3:\/\/allowed-bucket through endpoint .* which reaches another bucket is not in the storage allowlist/,
            `${endpoint} was admitted`,
          );
        }
      }
    });

    it("refuses a developer moving an admin's publisher to an unlisted bucket, but lets the operator manage finalizers", async () => {
      await assert.rejects(
        applyAs(draft('policy-allowed', 'forbidden-bucket'), 'dev', 'developers'),
        /is not in the storage allowlist/,
      );
      // Changes that leave spec.storage alone (labels, the operator's finalizers) are not checked.
      await bed.kubectl(['label', 'oidcpublisher', 'policy-admin', 'team=a', ...as('dev', 'developers')]);
      for (const name of ['policy-allowed', 'policy-admin']) {
        await bed.kubectl(['delete', 'oidcpublisher', name, '--wait=false']);
      }
    });
  });
});

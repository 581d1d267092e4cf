/**
 * One issuer for several clusters (spec.sources), end to end: the bed's API server
 * and a second one started with the same --service-account-issuer and its own key
 * ("green", read through a kubeconfig Secret with a ServiceAccount token of green)
 * publish one merged JWKS; a relying party verifies tokens of both through the
 * bucket-hosted issuer. Green stops: SourcesStale names it and its key stays
 * published. A third API server replaces it in spec.sources: its key is published,
 * green's is retired and kept for keyRetention, and every token still verifies.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createLocalJWKSet, type JSONWebKeySet, jwtVerify } from 'jose';
import type { Bed, ConsumerApiserver } from '../bed/bed.ts';
import { request } from '../bed/http.ts';
import { useBed } from '../bed/shared.ts';
import {
  applyYaml,
  condition,
  createSecret,
  eventually,
  getPublisher,
  installOperator,
  OperatorProcess,
  samplePublisher,
  waitForReady,
} from './harness.ts';

const NAME = 'shared-issuer';
const AUDIENCE = 'relying-party';

describe('spec.sources: several clusters with one issuer publish one key set', () => {
  let bed: Bed;
  let op: OperatorProcess | undefined;
  const others: ConsumerApiserver[] = [];
  const useOwn = useBed(
    { gcs: false },
    {
      beforeStop: async () => {
        await Promise.all([op?.stop('SIGTERM'), ...others.map((o) => o.stop())]);
      },
    },
  );

  /** A ServiceAccount `reader` in `cluster`, and a token of it for `audience` (default: the API server's own). */
  async function tokenOf(cluster: ConsumerApiserver, audience?: string): Promise<string> {
    const k = { kubeconfig: cluster.kubeconfig };
    await bed.kubectl(['apply', '-f', '-'], {
      ...k,
      input: 'apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: reader\n  namespace: default\n',
    });
    const args = ['create', 'token', 'reader', '-n', 'default', '--duration', '3600s'];
    if (audience) args.push('--audience', audience);
    return (await bed.kubectl(args, k)).trim();
  }

  /** Starts another API server with the bed's issuer, and a kubeconfig Secret for it (a reader's token). */
  async function joinCluster(name: string): Promise<ConsumerApiserver> {
    const cluster = await bed.startConsumerApiserver({ name, sameIssuer: true });
    others.push(cluster);
    assert.equal(cluster.issuer, bed.issuer);
    // The reader may get the issuer documents through the default system:service-account-issuer-discovery binding.
    await createSecret(bed, name, { kubeconfig: bed.inlineKubeconfig(await tokenOf(cluster), cluster.url) });
    return cluster;
  }

  function setSources(secrets: string[]): Promise<string> {
    return applyYaml(
      bed,
      JSON.stringify(
        samplePublisher(bed, {
          name: NAME,
          spec: { sources: [{}, ...secrets.map((name) => ({ kubeconfigSecretRef: { name } }))] },
        }),
      ),
    );
  }

  async function publishedKids(): Promise<string[]> {
    const res = await request(`${bed.issuer}/openid/v1/jwks`, { ca: bed.ca });
    assert.equal(res.status, 200);
    return (res.json() as { keys: { kid: string }[] }).keys.map((k) => k.kid).sort();
  }

  /** Verifies `token` as a relying party: the published JWKS, fetched now, the issuer and audience. */
  async function verify(token: string): Promise<string> {
    const res = await request(`${bed.issuer}/openid/v1/jwks`, { ca: bed.ca });
    const { payload } = await jwtVerify(token, createLocalJWKSet(res.json() as JSONWebKeySet), {
      issuer: bed.issuer,
      audience: AUDIENCE,
    });
    return String(payload.sub);
  }

  it('merges, keeps a stopped cluster’s key published with SourcesStale, and takes a replacement', async (t) => {
    bed = useOwn();
    const kubeconfig = await installOperator(bed);
    await createSecret(bed, 's3-writer', {
      AWS_ACCESS_KEY_ID: bed.state.s3.accessKeyId,
      AWS_SECRET_ACCESS_KEY: bed.state.s3.secretAccessKey,
    });
    op = await OperatorProcess.start(bed, kubeconfig, ['--leader-elect', 'false']);
    await applyYaml(
      bed,
      'apiVersion: v1\nkind: Namespace\nmetadata:\n  name: workload\n---\napiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: app\n  namespace: workload\n',
    );
    const green = await joinCluster('green');
    await setSources(['green']);
    await waitForReady(bed, NAME, 'True', 'Ready', 60_000);
    assert.deepEqual(await publishedKids(), [bed.signingKey.kid, green.signingKey.kid].sort());

    const fromA = await bed.mintToken({ namespace: 'workload', serviceAccount: 'app', audience: AUDIENCE });
    const fromGreen = await tokenOf(green, AUDIENCE);
    assert.equal(await verify(fromA), 'system:serviceaccount:workload:app');
    assert.equal(await verify(fromGreen), 'system:serviceaccount:default:reader');

    // Green goes away: the bed keeps publishing, green's key stays, and status says which source is stale.
    await green.stop();
    const stale = await eventually(
      'SourceAvailable=False/SourcesStale',
      async () => {
        const c = condition(await getPublisher(bed, NAME), 'SourceAvailable');
        return c?.reason === 'SourcesStale' ? c.message : undefined;
      },
      60_000,
    );
    t.diagnostic(stale);
    assert.match(stale, /^source secret\/green: /);
    assert.equal(condition(await getPublisher(bed, NAME), 'Ready')?.reason, 'SourcesStale');
    assert.ok((await publishedKids()).includes(green.signingKey.kid), "green's key stays published");
    assert.equal(await verify(fromGreen), 'system:serviceaccount:default:reader');

    // A third API server replaces green.
    const purple = await joinCluster('purple');
    await setSources(['purple']);
    await waitForReady(bed, NAME, 'True', 'Ready', 60_000);
    assert.deepEqual(
      await publishedKids(),
      [bed.signingKey.kid, green.signingKey.kid, purple.signingKey.kid].sort(),
      "purple's key is published, green's still within keyRetention",
    );
    const keys = (await getPublisher(bed, NAME)).status?.keys as
      | { kid: string; retiredAt?: string; expiresAt?: string }[]
      | undefined;
    const greenRecord = keys?.find((k) => k.kid === green.signingKey.kid);
    assert.ok(greenRecord?.retiredAt && greenRecord.expiresAt, 'green’s key is retired, with an expiry');
    t.diagnostic(
      `green's key retired at ${greenRecord.retiredAt}, leaves the JWKS at ${greenRecord.expiresAt}`,
    );
    assert.equal(await verify(await tokenOf(purple, AUDIENCE)), 'system:serviceaccount:default:reader');
    assert.equal(await verify(fromGreen), 'system:serviceaccount:default:reader');
    assert.equal(await verify(fromA), 'system:serviceaccount:workload:app');
  });

  it('leaves out a source that reports another issuer, naming it, and publishes none of its keys', async (t) => {
    // A cluster with its own issuer (not the bed's) in spec.sources.
    const stranger = await bed.startConsumerApiserver({ name: 'stranger' });
    others.push(stranger);
    await createSecret(bed, 'stranger', {
      kubeconfig: bed.inlineKubeconfig(await tokenOf(stranger), stranger.url),
    });
    await setSources(['purple', 'stranger']);
    const message = await eventually(
      'SourcesStale naming the stranger',
      async () => {
        const c = condition(await getPublisher(bed, NAME), 'SourceAvailable');
        return c?.reason === 'SourcesStale' && c.message.includes('stranger') ? c.message : undefined;
      },
      60_000,
    );
    t.diagnostic(message);
    assert.match(message, /source secret\/stranger: its issuer ".*\/stranger" differs from spec\.issuerURL/);
    assert.ok(
      !(await publishedKids()).includes(stranger.signingKey.kid),
      "the stranger's key is not published",
    );
  });
});

/**
 * The operator survives its API server going away: the informer restarts by
 * itself (client-node's does not) and changes made after the restart are
 * reconciled.
 */
import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import type { Bed } from '../bed/bed.ts';
import { request } from '../bed/http.ts';
import { useBed } from '../bed/shared.ts';
import {
  applyYaml,
  createSecret,
  eventually,
  installOperator,
  OperatorProcess,
  samplePublisher,
  waitForReady,
} from './harness.ts';

describe('operator recovery: API server restart', () => {
  let bed: Bed;
  let op: OperatorProcess;
  const useOwn = useBed(
    { gcs: false },
    {
      // The operator stops before the bed, so it sees its API server until the end.
      beforeStop: async () => {
        assert.equal(await op?.stop(), 0);
      },
    },
  );

  before(async () => {
    bed = useOwn();
    const kubeconfig = await installOperator(bed);
    await createSecret(bed, 's3-writer', {
      AWS_ACCESS_KEY_ID: bed.state.s3.accessKeyId,
      AWS_SECRET_ACCESS_KEY: bed.state.s3.secretAccessKey,
    });
    // Leader election off: this test is about the watch. With it on, an API server outage longer than
    // --renew-deadline makes the operator give up leadership and exit, as controller-runtime does.
    op = await OperatorProcess.start(bed, kubeconfig, ['--leader-elect', 'false']);
    await applyYaml(bed, JSON.stringify(samplePublisher(bed, { name: 'recovers' })));
    await waitForReady(bed, 'recovers', 'True', 'Ready');
  });

  it('restarts its watch after the API server comes back and reconciles later changes', async () => {
    await bed.stopApiserver();
    await eventually(
      'the operator to notice the lost watch',
      async () =>
        op.logs().some((l) => l.msg === 'watch of OidcPublishers failed; restarting') ? true : undefined,
      30_000,
    );
    const notReady = await fetch(`http://127.0.0.1:${op.healthPort}/readyz`);
    assert.equal(notReady.status, 503, '/readyz reports the lost watch');
    await bed.startApiserver();
    await eventually(
      '/readyz to recover',
      async () =>
        (await fetch(`http://127.0.0.1:${op.healthPort}/readyz`)).status === 200 ? true : undefined,
      60_000,
    );
    await bed.kubectl([
      'patch',
      'oidcpublisher',
      'recovers',
      '--type=merge',
      '-p',
      '{"spec":{"cacheControl":"public, max-age=120"}}',
    ]);
    await eventually('the changed Cache-Control to be published', async () => {
      const res = await request(`${bed.issuer}/openid/v1/jwks`, { ca: bed.ca });
      return res.headers['cache-control'] === 'public, max-age=120' ? true : undefined;
    });
    await waitForReady(bed, 'recovers', 'True', 'Ready');
  });
});

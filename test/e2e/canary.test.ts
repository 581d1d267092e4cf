/**
 * The canary end to end: the operator, as its least-privilege ServiceAccount,
 * requests a token of the canary ServiceAccount and verifies it against the
 * public issuer in MinIO. When the API server signs with a key its issuer does
 * not publish (a new --service-account-signing-key-file whose public half is not
 * in --service-account-key-file), the documents are still served exactly as
 * published, and only the canary sees that relying parties refuse the
 * cluster's tokens.
 */
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import type { Bed } from '../bed/bed.ts';
import { createSigningKey, type SigningKey } from '../bed/pki.ts';
import { useBed } from '../bed/shared.ts';
import {
  applyYaml,
  condition,
  createSecret,
  installOperator,
  kidOf,
  OPERATOR_NAMESPACE,
  OperatorProcess,
  type PublisherView,
  samplePublisher,
  waitForReady,
} from './harness.ts';

const NAME = 'canary';
const CANARY_SA = 'oidc-publisher-canary';

function signingKeyID(p: PublisherView): string | undefined {
  return (p.status?.verification as { signingKeyID?: string } | undefined)?.signingKeyID;
}

describe('the canary: a token the API server issues, verified against the public issuer', () => {
  let bed: Bed;
  let kubeconfig: string;
  let op: OperatorProcess | undefined;
  let published: SigningKey[];
  const useOwn = useBed(
    { gcs: false },
    {
      beforeStop: async () => {
        await op?.stop('SIGTERM');
      },
    },
  );

  async function startOperator(): Promise<void> {
    op = await OperatorProcess.start(bed, kubeconfig, ['--leader-elect', 'false']);
  }

  /** A token the API server issues now, of the canary ServiceAccount. */
  async function issuedKid(): Promise<string> {
    return kidOf(
      await bed.mintToken({ namespace: OPERATOR_NAMESPACE, serviceAccount: CANARY_SA, audience: 'x' }),
    );
  }

  before(async () => {
    bed = useOwn();
    kubeconfig = await installOperator(bed);
    published = [...bed.state.apiserver.keys];
    await createSecret(bed, 's3-writer', {
      AWS_ACCESS_KEY_ID: bed.state.s3.accessKeyId,
      AWS_SECRET_ACCESS_KEY: bed.state.s3.secretAccessKey,
    });
    await startOperator();
    await applyYaml(
      bed,
      JSON.stringify(
        samplePublisher(bed, {
          name: NAME,
          spec: { verification: { canary: { serviceAccountRef: { name: CANARY_SA } } } },
        }),
      ),
    );
  });

  it('is Verified with the canary, and status.verification.signingKeyID is the kid the API server signs with', async () => {
    const p = await waitForReady(bed, NAME, 'True', 'Ready', 60_000);
    const kid = await issuedKid();
    assert.equal(kid, bed.signingKey.kid);
    assert.equal(signingKeyID(p), kid, 'status.verification.signingKeyID');
    assert.match(
      condition(p, 'Verified')?.message ?? '',
      new RegExp(`a token the API server issued \\(kid "${kid}"\\) verifies against them`),
    );
  });

  it('is CanaryRejected when the API server signs with a key its issuer does not publish, though the documents are served as published', async () => {
    // The new private key signs; --service-account-key-file still names only the published key.
    const unpublished = createSigningKey(mkdtempSync(join(tmpdir(), 'canary-')), 'unpublished');
    const old = published.at(-1);
    assert.ok(old);
    bed.state.apiserver.keys = [{ ...unpublished, publicKeyFile: old.publicKeyFile }];
    await bed.restartApiserver();
    const kid = await issuedKid();
    assert.equal(kid, unpublished.kid, 'the API server signs with the unpublished key');
    // A new process: the old one would reuse its token for half its lifetime.
    await op?.stop('SIGTERM');
    await startOperator();
    const p = await waitForReady(bed, NAME, 'False', 'CanaryRejected', 60_000);
    const verified = condition(p, 'Verified');
    assert.equal(verified?.status, 'False');
    assert.equal(verified?.reason, 'CanaryRejected');
    assert.match(
      verified?.message ?? '',
      new RegExp(
        `\\(kid "${kid}"\\) does not verify .*holds no key with kid "${kid}" \\(it holds "${old.kid}"\\)`,
      ),
    );
    assert.equal(condition(p, 'Published')?.status, 'True', 'the documents are published');
    assert.equal(signingKeyID(p), kid, 'signingKeyID names the key the API server signs with now');
  });

  it('is Verified again once the API server signs with a published key', async () => {
    bed.state.apiserver.keys = published;
    await bed.restartApiserver();
    const p = await waitForReady(bed, NAME, 'True', 'Ready', 60_000);
    assert.equal(condition(p, 'Verified')?.reason, 'Verified');
    assert.equal(signingKeyID(p), await issuedKid());
    assert.equal(signingKeyID(p), published.at(-1)?.kid);
  });
});

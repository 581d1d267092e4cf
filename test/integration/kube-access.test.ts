/**
 * The operator's own way to the API server, against the bed's real one: the
 * in-cluster ServiceAccount (token and CA files as a Pod mounts them), a
 * projected token the kubelet rotates, and a kubeconfig whose client
 * certificate and CA are files, all without client-node.
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { inClusterSpec, loadKubeAccess, StaticAccess } from '../../src/kube/access.ts';
import { KubeHttp, KubeHttpError } from '../../src/kube/http.ts';
import type { Bed } from '../bed/bed.ts';
import { useBed } from '../bed/shared.ts';

/** Who the API server says the caller is (SelfSubjectReview, allowed to every authenticated user). */
async function whoami(http: KubeHttp): Promise<string> {
  const review = (await http.send('POST', '/apis/authentication.k8s.io/v1/selfsubjectreviews', {
    apiVersion: 'authentication.k8s.io/v1',
    kind: 'SelfSubjectReview',
  })) as { status?: { userInfo?: { username?: string } } };
  return review.status?.userInfo?.username ?? '';
}

describe('API server access without client-node', () => {
  const useShared = useBed();
  let bed: Bed;
  const dir = mkdtempSync(join(tmpdir(), 'kube-access-it-'));
  const sa = join(dir, 'serviceaccount');
  let env: NodeJS.ProcessEnv;
  let tokenA: string;
  let tokenB: string;

  before(async () => {
    bed = useShared();
    await bed.serviceAccountKubeconfig('access-check', 'pod-a');
    await bed.serviceAccountKubeconfig('access-check', 'pod-b');
    tokenA = await bed.mintToken({ namespace: 'access-check', serviceAccount: 'pod-a' });
    tokenB = await bed.mintToken({ namespace: 'access-check', serviceAccount: 'pod-b' });
    mkdirSync(sa, { recursive: true });
    writeFileSync(join(sa, 'ca.crt'), bed.ca);
    writeFileSync(join(sa, 'token'), tokenA);
    const url = new URL(bed.apiserverURL);
    env = {
      HOME: join(dir, 'no-home'),
      KUBERNETES_SERVICE_HOST: url.hostname.replace(/^\[|\]$/g, ''),
      KUBERNETES_SERVICE_PORT: url.port,
    };
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('runs in a Pod: finds the in-cluster ServiceAccount and is authenticated as it', async () => {
    const access = await loadKubeAccess(undefined, env, { serviceAccountDir: sa });
    assert.equal(access.viaClientNode, undefined);
    const http = new KubeHttp(access);
    try {
      assert.equal(await whoami(http), 'system:serviceaccount:access-check:pod-a');
    } finally {
      http.close();
    }
  });

  it('reads a rotated token file once the cached one is stale, on the same connection pool', async () => {
    const spec = inClusterSpec(env, sa);
    assert.ok(spec, 'expected the in-cluster spec');
    const http = new KubeHttp(new StaticAccess(spec, { refreshMs: 300 }));
    try {
      assert.equal(await whoami(http), 'system:serviceaccount:access-check:pod-a');
      writeFileSync(join(sa, 'token'), tokenB);
      assert.equal(await whoami(http), 'system:serviceaccount:access-check:pod-a', 'still the cached token');
      await new Promise((r) => setTimeout(r, 350));
      assert.equal(await whoami(http), 'system:serviceaccount:access-check:pod-b');
      writeFileSync(join(sa, 'token'), 'not-a-token');
      await new Promise((r) => setTimeout(r, 350));
      await assert.rejects(
        whoami(http),
        (err: unknown) => err instanceof KubeHttpError && err.status === 401,
        'a bad token file is sent as it is, and the API server refuses it',
      );
    } finally {
      writeFileSync(join(sa, 'token'), tokenA);
      http.close();
    }
  });

  it('uses a kubeconfig whose CA, client certificate and key are files', async () => {
    const access = await loadKubeAccess(bed.adminKubeconfig, {});
    assert.equal(access.viaClientNode, undefined);
    const http = new KubeHttp(access);
    try {
      const user = await whoami(http);
      assert.ok(user && !user.startsWith('system:serviceaccount:'), `expected the bed's admin, got ${user}`);
    } finally {
      http.close();
    }
  });
});

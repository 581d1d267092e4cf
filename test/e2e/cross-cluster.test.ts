/**
 * Cross-cluster trust end to end: the operator publishes cluster A's issuer to
 * S3 (MinIO); `oidc-publisher authn-config` renders an AuthenticationConfiguration;
 * cluster B (a second kube-apiserver started with --authentication-config)
 * accepts A's service-account tokens through the published issuer, maps them to
 * prefixed users and groups, and follows A's key rotations.
 */
import assert from 'node:assert/strict';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { SignJWT } from 'jose';
import { stringify } from 'yaml';
import type { Bed, ConsumerApiserver } from '../bed/bed.ts';
import { request } from '../bed/http.ts';
import { useBed } from '../bed/shared.ts';
import {
  applyYaml,
  createSecret,
  eventually,
  getPublisher,
  installOperator,
  kidOf,
  OPERATOR_NAMESPACE,
  OPERATOR_SA,
  OperatorProcess,
  runCli,
  samplePublisher,
  waitForReady,
} from './harness.ts';

const NAME = 'cluster-issuer';
const AUDIENCE = 'cluster-b';
const SYNC_INTERVAL_MS = 10_000;
/**
 * kube-apiserver refetches a JWKS for an unknown kid only when its cached copy expires within 30s;
 * a max-age of at most 30s keeps new keys usable in B as soon as they are published.
 */
const SHORT_CACHE_CONTROL = 'public, max-age=30';
/** kube-apiserver caches a successful token authentication for 10s (its TokenSuccessCacheTTL). */
const TOKEN_CACHE_MS = 10_000;

interface SelfSubjectReview {
  status: { userInfo: { username: string; groups?: string[]; extra?: Record<string, string[]> } };
}

interface KeyStatus {
  kid: string;
  retiredAt?: string;
  expiresAt?: string;
}

describe('cross-cluster trust: cluster B accepts cluster A tokens through the published issuer', () => {
  let bed: Bed;
  let op: OperatorProcess;
  let b: ConsumerApiserver | undefined;
  let authnConfig: string;
  let prefix: string;
  const useOwn = useBed(
    { gcs: false },
    {
      beforeStop: async () => {
        await b?.stop();
        const code = await op?.stop('SIGTERM');
        assert.equal(
          code,
          0,
          `the operator exits 0 on SIGTERM; its last lines:\n${op?.output.slice(-10).join('\n')}`,
        );
      },
    },
  );

  /** The S3 sample from config/samples, pointed at the bed, as s3.test.ts applies it. */
  function sample(): string {
    return stringify(samplePublisher(bed, { name: NAME }));
  }

  async function serviceAccount(namespace: string, name: string): Promise<void> {
    await applyYaml(
      bed,
      `apiVersion: v1\nkind: Namespace\nmetadata:\n  name: ${namespace}\n---\napiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: ${name}\n  namespace: ${namespace}\n`,
    );
  }

  /** HTTP status of a SelfSubjectReview in cluster B with this bearer token: 201 accepted, 401 refused. */
  async function statusInB(token: string): Promise<number> {
    assert.ok(b, 'cluster B runs');
    const res = await request(`${b.url}/apis/authentication.k8s.io/v1/selfsubjectreviews`, {
      method: 'POST',
      ca: bed.ca,
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ apiVersion: 'authentication.k8s.io/v1', kind: 'SelfSubjectReview' }),
    });
    return res.status;
  }

  /** `kubectl auth whoami -o json` against cluster B with a kubeconfig holding only this token. */
  async function whoamiInB(token: string, file: string): Promise<SelfSubjectReview> {
    assert.ok(b, 'cluster B runs');
    const kubeconfig = join(bed.dir, file);
    writeFileSync(kubeconfig, bed.inlineKubeconfig(token, b.url), { mode: 0o600 });
    return JSON.parse(
      await bed.kubectl(['auth', 'whoami', '-o', 'json'], { kubeconfig }),
    ) as SelfSubjectReview;
  }

  async function publishedKids(): Promise<string[]> {
    const res = await request(`${bed.issuer}/openid/v1/jwks`, { ca: bed.ca });
    assert.equal(res.status, 200, `anonymous GET of the published JWKS: HTTP ${res.status}`);
    return (res.json() as { keys: { kid: string }[] }).keys.map((k) => k.kid).sort();
  }

  /** Timestamp (ms) of cluster B's last successful JWKS fetch for A's issuer, from its metrics. */
  async function lastJwksFetchInB(): Promise<number> {
    assert.ok(b, 'cluster B runs');
    const res = await request(`${b.url}/metrics`, {
      ca: bed.ca,
      cert: readFileSync(bed.state.admin.cert),
      key: readFileSync(bed.state.admin.key),
    });
    assert.equal(res.status, 200, `B /metrics: HTTP ${res.status}`);
    const m = res
      .text()
      .match(
        /^apiserver_authentication_jwt_authenticator_jwks_fetch_last_timestamp_seconds\{[^}]*result="success"[^}]*\} ([\d.e+]+)$/m,
      );
    return m ? Number(m[1]) * 1000 : 0;
  }

  async function keyStatus(kid: string): Promise<KeyStatus | undefined> {
    const p = await getPublisher(bed, NAME);
    return (p.status?.keys as KeyStatus[] | undefined)?.find((k) => k.kid === kid);
  }

  /**
   * Once A drops the key that signed the operator's token, A refuses the operator. The kubelet
   * would refresh a projected token; here the operator restarts with a fresh one.
   */
  async function refreshOperatorToken(): Promise<void> {
    const code = await op.stop('SIGTERM');
    assert.equal(
      code,
      0,
      `the operator exits 0 on SIGTERM; its last lines:\n${op.output.slice(-10).join('\n')}`,
    );
    const kubeconfig = await bed.serviceAccountKubeconfig(OPERATOR_NAMESPACE, OPERATOR_SA);
    op = await OperatorProcess.start(bed, kubeconfig, ['--leader-elect', 'false']);
  }

  /**
   * Restarts A with a new signing key, mints a token of it and waits until the operator has
   * published the key: when A came back, when the key was first seen in the bucket.
   */
  async function rotateA(o: { dropOldKeys: boolean }) {
    const previous = bed.signingKey.kid;
    await bed.restartApiserver({ rotate: true, dropOldKeys: o.dropOldKeys });
    const restarted = Date.now();
    if (o.dropOldKeys) await refreshOperatorToken();
    const kid = bed.signingKey.kid;
    assert.notEqual(kid, previous);
    const token = await mint('workload', 'app');
    assert.equal(kidOf(token), kid, 'A signs with the new key');
    const publishedAt = await eventually(
      'the operator to publish the new key',
      async () => ((await publishedKids()).includes(kid) ? Date.now() : undefined),
      SYNC_INTERVAL_MS * 3,
    );
    return { kid, token, restarted, publishedAt };
  }

  function mint(namespace: string, serviceAccount: string, audience = AUDIENCE): Promise<string> {
    return bed.mintToken({ namespace, serviceAccount, audience });
  }

  before(async () => {
    bed = useOwn();
    const kubeconfig = await installOperator(bed);
    await createSecret(bed, 's3-writer', {
      AWS_ACCESS_KEY_ID: bed.state.s3.accessKeyId,
      AWS_SECRET_ACCESS_KEY: bed.state.s3.secretAccessKey,
    });
    // Leader election off: these tests restart A's API server, and an outage longer than
    // --renew-deadline makes a leader give up and exit (see recovery.test.ts).
    op = await OperatorProcess.start(bed, kubeconfig, ['--leader-elect', 'false']);
    await applyYaml(bed, sample());
    await waitForReady(bed, NAME, 'True', undefined, 60_000);
    await Promise.all([
      serviceAccount('workload', 'app'),
      serviceAccount('batch', 'job'),
      serviceAccount('outsider', 'app'),
    ]);
    const rendered = await runCli([
      'authn-config',
      '--issuer',
      bed.issuer,
      '--audience',
      AUDIENCE,
      '--certificate-authority-file',
      bed.state.caFile,
      '--namespace-allow',
      'workload',
      '--namespace-allow',
      'batch',
    ]);
    assert.equal(rendered.code, 0, `authn-config exits 0: ${rendered.stderr}`);
    authnConfig = rendered.stdout;
    prefix = `${bed.issuer.replace(/^https:\/\//, '')}:`;
    b = await bed.startConsumerApiserver({ authenticationConfig: authnConfig });
  });

  it('renders the same configuration from --from oidcpublisher/<name>, and exits 2 on an http issuer', async () => {
    const fromCluster = await runCli([
      'authn-config',
      '--from',
      `oidcpublisher/${NAME}`,
      '--kubeconfig',
      bed.adminKubeconfig,
      '--audience',
      AUDIENCE,
      '--certificate-authority-file',
      bed.state.caFile,
      '--namespace-allow',
      'workload',
      '--namespace-allow',
      'batch',
    ]);
    assert.equal(fromCluster.code, 0, fromCluster.stderr);
    assert.equal(fromCluster.stdout, authnConfig);
    const missing = await runCli([
      'authn-config',
      '--from',
      'oidcpublisher/missing',
      '--kubeconfig',
      bed.adminKubeconfig,
      '--audience',
      AUDIENCE,
    ]);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /^oidc-publisher authn-config: read oidcpublisher\/missing: HTTP 404/);
    const http = await runCli(['authn-config', '--issuer', 'http://127.0.0.1/x', '--audience', AUDIENCE]);
    assert.equal(http.code, 2);
    assert.equal(http.stdout, '');
    assert.match(
      http.stderr,
      /^oidc-publisher authn-config: --issuer: "http:\/\/127\.0\.0\.1\/x" is not an https URL.*\n$/,
    );
  });

  it('kubectl auth whoami in B shows an A token as the prefixed service account with its namespace group', async (t) => {
    const token = await mint('workload', 'app');
    const started = Date.now();
    // B's JWT authenticator initialises in the background after /readyz; give it a moment.
    await eventually('B to accept the token', async () =>
      (await statusInB(token)) === 201 ? true : undefined,
    );
    t.diagnostic(`B accepted its first A token ${Date.now() - started} ms after it was minted`);
    const review = await whoamiInB(token, 'b-workload.kubeconfig');
    const user = review.status.userInfo;
    assert.equal(user.username, `${prefix}system:serviceaccount:workload:app`);
    assert.deepEqual(
      [...(user.groups ?? [])].sort(),
      [
        `${prefix}system:serviceaccounts`,
        `${prefix}system:serviceaccounts:workload`,
        'system:authenticated',
      ].sort(),
    );
  });

  it('B refuses (401) a token for another audience, A tokens of its default audience, and a forged token', async () => {
    assert.equal(await statusInB(await mint('workload', 'app', 'someone-else')), 401, 'aud someone-else');
    assert.equal(
      await statusInB(await bed.mintToken({ namespace: 'workload', serviceAccount: 'app' })),
      401,
      "A's default audience (its own issuer) is not cluster-b",
    );
    const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const forged = await new SignJWT({
      sub: 'system:serviceaccount:workload:app',
      'kubernetes.io': { namespace: 'workload', serviceaccount: { name: 'app', uid: 'x' } },
    })
      .setProtectedHeader({ alg: 'RS256', kid: bed.signingKey.kid })
      .setIssuer(bed.issuer)
      .setAudience(AUDIENCE)
      .setIssuedAt()
      .setExpirationTime('10m')
      .sign(privateKey);
    assert.equal(await statusInB(forged), 401, 'a token signed by a foreign key under the real kid');
  });

  it('B accepts service accounts of namespaces in --namespace-allow and refuses (401) the others', async () => {
    assert.equal(await statusInB(await mint('batch', 'job')), 201, 'batch is allowed');
    assert.equal(await statusInB(await mint('outsider', 'app')), 401, 'outsider is not allowed');
    const review = await whoamiInB(await mint('batch', 'job'), 'b-batch.kubeconfig');
    assert.equal(review.status.userInfo.username, `${prefix}system:serviceaccount:batch:job`);
  });

  it('refuses system: usernames through userValidationRules even if the username mapping loses its prefix', async () => {
    // Hand-edited: the username becomes the bare sub (system:serviceaccount:...). The claim
    // rules still pass, so only the userValidationRules stand between the token and the user.
    const tampered = authnConfig.replace(/^( +username:\n +expression: ).*$/m, '$1claims.sub');
    assert.notEqual(tampered, authnConfig, 'the username mapping was replaced');
    const c = await bed.startConsumerApiserver({ authenticationConfig: tampered, name: 'cluster-c' });
    try {
      const token = await mint('workload', 'app');
      const status = async () =>
        (
          await request(`${c.url}/apis/authentication.k8s.io/v1/selfsubjectreviews`, {
            method: 'POST',
            ca: bed.ca,
            headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
            body: JSON.stringify({ apiVersion: 'authentication.k8s.io/v1', kind: 'SelfSubjectReview' }),
          })
        ).status;
      assert.equal(await statusInB(token), 201, 'the same token is accepted by B');
      // C's authenticator initialises in the background; wait until it has judged the token.
      await eventually('C to log its decision', async () =>
        readFileSync(c.logFile, 'utf8').includes('usernames from this issuer must not start with system:') ||
        (await status()) !== 401
          ? true
          : undefined,
      );
      assert.equal(await status(), 401);
    } finally {
      await c.stop();
    }
  });

  it("with the sample's Cache-Control max-age=300, B keeps refusing a new key after it is published (kube-apiserver honours the JWKS max-age)", async (t) => {
    const rotated = await rotateA({ dropOldKeys: false });
    const { token, publishedAt } = rotated;
    const fetchedBefore = await lastJwksFetchInB();
    // kube-apiserver v1.35 verifies with go-oidc v2's remoteKeySet: on an unknown kid it fetches the
    // JWKS again only when its cached copy expires within 30s, and the copy expires after the
    // response's max-age. With max-age=300 that is up to 270s after B's last fetch.
    const watchUntil = Date.now() + 15_000;
    let accepted = 0;
    while (Date.now() < watchUntil) {
      if ((await statusInB(token)) === 201) accepted++;
      await sleep(500);
    }
    const fetchedAfter = await lastJwksFetchInB();
    t.diagnostic(
      `max-age=300: new key published ${publishedAt - rotated.restarted} ms after A's restart; B still refused it ${Date.now() - publishedAt} ms after publication; B's last JWKS fetch was ${Math.round((publishedAt - fetchedAfter) / 1000)} s before publication`,
    );
    assert.equal(accepted, 0, 'B accepted the new key although its cached JWKS had not expired');
    assert.equal(fetchedAfter, fetchedBefore, 'B did not fetch the JWKS while its copy was fresh');
    assert.ok(fetchedAfter > 0 && fetchedAfter < publishedAt, "B's only JWKS fetch predates the new key");

    // The rest of the suite uses a max-age within kube-apiserver's 30s refresh window. B restarts
    // to drop the copy it fetched with max-age=300 (or it would wait out the 270s).
    await bed.kubectl([
      'patch',
      'oidcpublisher',
      NAME,
      '--type=merge',
      '-p',
      JSON.stringify({ spec: { cacheControl: SHORT_CACHE_CONTROL } }),
    ]);
    await eventually('the JWKS to be published with the short Cache-Control', async () => {
      const res = await request(`${bed.issuer}/openid/v1/jwks`, { ca: bed.ca });
      return res.headers['cache-control'] === SHORT_CACHE_CONTROL ? true : undefined;
    });
    await b?.stop();
    b = await bed.startConsumerApiserver({ authenticationConfig: authnConfig });
    await eventually('the restarted B to accept the new key', async () =>
      (await statusInB(token)) === 201 ? true : undefined,
    );
  });

  it('with Cache-Control max-age=30, B accepts new-key tokens within one sync interval of the rotation, and keeps accepting them once A drops the old key', async (t) => {
    const oldKid = bed.signingKey.kid;
    const oldToken = await mint('workload', 'app');
    assert.equal(await statusInB(oldToken), 201);
    const { token, kid: newKid, restarted, publishedAt } = await rotateA({ dropOldKeys: false });
    let refusals = 0;
    const accepted = await eventually(
      'B to accept a token of the new key',
      async () => {
        if ((await statusInB(token)) === 201) return Date.now();
        refusals++;
        return undefined;
      },
      SYNC_INTERVAL_MS * 3,
    );
    const lastFetch = await lastJwksFetchInB();
    t.diagnostic(
      `max-age=30: new key published ${publishedAt - restarted} ms after A restarted with it; accepted by B ${accepted - restarted} ms after the restart (${accepted - publishedAt} ms after publication, ${refusals} refusals after publication); B fetched the JWKS ${lastFetch - publishedAt} ms after publication`,
    );
    assert.ok(
      accepted - restarted <= SYNC_INTERVAL_MS + 3000,
      `B accepted the new key ${accepted - restarted} ms after A's restart: expected within one sync interval (${SYNC_INTERVAL_MS} ms) and a little`,
    );
    assert.ok(lastFetch >= publishedAt - 1000, 'B fetched the JWKS again when it saw the unknown kid');
    const kids = await publishedKids();
    assert.ok(
      kids.includes(oldKid) && kids.includes(newKid),
      `old and new key published while A serves both: ${kids}`,
    );
    assert.equal(await statusInB(oldToken), 201, 'old-key tokens still work while A serves both keys');

    await bed.restartApiserver({ dropOldKeys: true });
    await refreshOperatorToken();
    assert.equal(bed.signingKey.kid, newKid);
    const fresh = await mint('batch', 'job');
    assert.equal(kidOf(fresh), newKid);
    assert.equal(await statusInB(fresh), 201, 'a fresh new-key token works at once: B has the key cached');
    assert.equal(
      (
        await request(`${bed.apiserverURL}/api`, {
          ca: bed.ca,
          headers: { authorization: `Bearer ${oldToken}` },
        })
      ).status,
      401,
      'A itself no longer accepts the old key',
    );
  });

  it('with spec.keyRetention 30s, B accepts tokens of a retired key until retention ends and refuses them after', async (t) => {
    await bed.kubectl([
      'patch',
      'oidcpublisher',
      NAME,
      '--type=merge',
      '-p',
      '{"spec":{"keyRetention":"30s"}}',
    ]);
    await waitForReady(bed, NAME, 'True', undefined, 60_000);

    const retiringKid = bed.signingKey.kid;
    const oldToken = await mint('workload', 'app');
    assert.equal(kidOf(oldToken), retiringKid);
    await eventually('B to accept the token of the key about to retire', async () =>
      (await statusInB(oldToken)) === 201 ? true : undefined,
    );
    const lastOldSuccess = Date.now();

    await bed.restartApiserver({ rotate: true, dropOldKeys: true });
    await refreshOperatorToken();
    const nextKid = bed.signingKey.kid;
    const retired = await eventually(
      `status.keys to record ${retiringKid} as retired`,
      async () => {
        const k = await keyStatus(retiringKid);
        return k?.retiredAt && k.expiresAt ? k : undefined;
      },
      SYNC_INTERVAL_MS * 3,
    ).catch(async (err: Error) => {
      const p = await getPublisher(bed, NAME);
      throw new Error(
        `${err.message}\nstatus.keys: ${JSON.stringify(p.status?.keys)}\nconditions: ${JSON.stringify(p.status?.conditions)}`,
      );
    });
    const expiresAt = Date.parse(retired.expiresAt ?? '');
    const retiredAt = Date.parse(retired.retiredAt ?? '');
    assert.equal(expiresAt - retiredAt, 30_000, 'expiresAt = retiredAt + keyRetention');

    // A token of the next key is unknown to B: B fetches the JWKS, which must now hold the next
    // key and the retained one.
    const nextToken = await mint('workload', 'app');
    assert.equal(kidOf(nextToken), nextKid);
    await eventually('B to accept a token of the next key', async () =>
      (await statusInB(nextToken)) === 201 ? true : undefined,
    );
    // (Keys retired by the previous test may still be within their own retention.)
    const kids = await publishedKids();
    assert.ok(
      kids.includes(retiringKid) && kids.includes(nextKid),
      `the retired key is still published next to the new one: ${kids}`,
    );
    // Past B's token cache, so the old token is verified again against the key set B just fetched.
    await sleep(Math.max(0, lastOldSuccess + TOKEN_CACHE_MS + 1000 - Date.now()));
    assert.ok(Date.now() < expiresAt - 1000, 'still within retention (the test ran slower than retention)');
    assert.equal(await statusInB(oldToken), 201, 'a retired key is accepted by B during retention');
    const lastRetainedSuccess = Date.now();
    t.diagnostic(`retired at ${retired.retiredAt}, expires at ${retired.expiresAt}`);

    // The retired key stays published until expiresAt, then leaves the JWKS.
    const removed = await eventually(
      `${retiringKid} to leave the published JWKS`,
      async () => {
        const kids = await publishedKids();
        if (kids.includes(retiringKid)) return undefined;
        return Date.now();
      },
      expiresAt - Date.now() + SYNC_INTERVAL_MS + 5000,
    );
    assert.ok(removed >= expiresAt, `removed ${expiresAt - removed} ms before expiresAt`);
    t.diagnostic(`the retired key left the published JWKS ${removed - expiresAt} ms after expiresAt`);

    // kube-apiserver keeps the key set it fetched last and fetches again only for an unknown kid:
    // until then, the retired key still verifies in B.
    await sleep(Math.max(0, lastRetainedSuccess + TOKEN_CACHE_MS + 1000 - Date.now()));
    assert.equal(
      await statusInB(oldToken),
      201,
      'B still holds the retired key in its cache until it refetches',
    );

    // A token with an unknown kid makes B fetch the JWKS again; from then on the retired key is gone.
    const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const unknownKid = await new SignJWT({ sub: 'system:serviceaccount:workload:app' })
      .setProtectedHeader({ alg: 'RS256', kid: randomBytes(16).toString('base64url') })
      .setIssuer(bed.issuer)
      .setAudience(AUDIENCE)
      .setIssuedAt()
      .setExpirationTime('10m')
      .sign(privateKey);
    const refetchAt = Date.now();
    assert.equal(await statusInB(unknownKid), 401);
    assert.ok((await lastJwksFetchInB()) >= refetchAt - 1000, 'the unknown kid made B fetch the JWKS');
    const refused = await eventually(
      'B to refuse the token of the expired key',
      async () => ((await statusInB(oldToken)) === 401 ? Date.now() : undefined),
      TOKEN_CACHE_MS + 5000,
    );
    t.diagnostic(
      `B refused the expired key's token ${refused - refetchAt} ms after its JWKS refetch (its 10s cache of the token's last success had to expire)`,
    );
    assert.equal(await statusInB(nextToken), 201, 'the current key still works');
  });
});

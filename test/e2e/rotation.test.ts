/**
 * Key rotation with no rejected token, end to end. The API server's signing key is
 * rotated twice following docs/rotation.md (publish the new public key, wait until
 * the operator says KeysTrusted, switch the signing key, drop the old key) while a
 * loop keeps minting fresh tokens and verifying them at three relying parties
 * that cache the JWKS: cluster B (a second kube-apiserver with structured
 * authentication), an STS (MinIO, AssumeRoleWithWebIdentity) and a jose verifier
 * that keeps the JWKS for its Cache-Control max-age and never refetches earlier.
 * Every verification is counted: zero rejections over both rotations, and the
 * retired keys are refused once their retention ended. A second run switches the
 * signing key at once, and shows the rejections the procedure avoids and the
 * operator's SigningKeyNotTrusted Warning.
 */
import assert from 'node:assert/strict';
import { generateKeyPairSync, randomUUID } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { createLocalJWKSet, type JSONWebKeySet, jwtVerify, SignJWT } from 'jose';
import type { Bed, ConsumerApiserver } from '../bed/bed.ts';
import { request } from '../bed/http.ts';
import { keyIdOf, type SigningKey } from '../bed/pki.ts';
import { useBed } from '../bed/shared.ts';
import { assumeRoleWithWebIdentity, type StsMinio, startStsMinio } from '../bed/sts.ts';
import {
  applyYaml,
  condition,
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

const NAME = 'rotating';
const CANARY_SA = 'oidc-publisher-canary';
const B_AUDIENCE = 'cluster-b';
const STS_CLIENT_ID = 'minio-sts';
const JOSE_AUDIENCE = 'jose-verifier';
/**
 * Longer than kube-apiserver's 30 s window (it refetches a JWKS for an unknown kid only when its
 * copy expires within 30 s), so cluster B really serves new keys from its cache; short enough
 * for a quick test. Production default: 300 s.
 */
const MAX_AGE_S = 45;
/** Retired keys stay published this long; in production, at least the longest token lifetime. */
const KEY_RETENTION_S = 60;
const SYNC_INTERVAL_S = 10;

type Party = 'clusterB' | 'sts' | 'jose';
const PARTIES: readonly Party[] = ['clusterB', 'sts', 'jose'];

interface Verification {
  at: number;
  party: Party;
  kid: string;
  accepted: boolean;
  why?: string;
}

interface Tally {
  verified: number;
  rejected: number;
  byParty: Record<Party, { verified: number; rejected: number }>;
  mintFailures: number;
  kids: string[];
  firstRejections: string[];
}

/**
 * A relying party as many libraries build one: the JWKS is fetched, kept for its Cache-Control
 * max-age and not fetched again before, whatever kid a token names.
 */
class CachingJoseVerifier {
  fetches = 0;
  #cached: { keys: ReturnType<typeof createLocalJWKSet>; until: number } | undefined;
  readonly #jwksURI: string;
  readonly #issuer: string;
  readonly #ca: Buffer;

  constructor(issuer: string, ca: Buffer) {
    this.#issuer = issuer;
    this.#jwksURI = `${issuer}/openid/v1/jwks`;
    this.#ca = ca;
  }

  async verify(token: string): Promise<string | undefined> {
    if (!this.#cached || Date.now() >= this.#cached.until) {
      const res = await request(this.#jwksURI, { ca: this.#ca });
      if (res.status !== 200) return `JWKS fetch: HTTP ${res.status}`;
      const maxAge = Number(/max-age=(\d+)/.exec(String(res.headers['cache-control']))?.[1] ?? 0);
      this.#cached = {
        keys: createLocalJWKSet(res.json() as JSONWebKeySet),
        until: Date.now() + maxAge * 1000,
      };
      this.fetches++;
    }
    try {
      await jwtVerify(token, this.#cached.keys, { issuer: this.#issuer, audience: JOSE_AUDIENCE });
      return undefined;
    } catch (err) {
      return (err as Error).message;
    }
  }
}

describe('key rotation: no valid token rejected by relying parties that cache the JWKS', () => {
  let bed: Bed;
  let op: OperatorProcess | undefined;
  let b: ConsumerApiserver | undefined;
  let sts: StsMinio | undefined;
  let jose: CachingJoseVerifier;
  let admin: { cert: Buffer; key: Buffer };
  const useOwn = useBed(
    { gcs: false },
    {
      beforeStop: async () => {
        await Promise.all([b?.stop(), sts?.stop(), op?.stop('SIGTERM')]);
      },
    },
  );

  /** A token A issues now for the workload, with this audience. */
  async function mint(audience: string, seconds = 3600): Promise<string> {
    const res = await request(`${bed.apiserverURL}/api/v1/namespaces/workload/serviceaccounts/app/token`, {
      method: 'POST',
      ca: bed.ca,
      cert: admin.cert,
      key: admin.key,
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        apiVersion: 'authentication.k8s.io/v1',
        kind: 'TokenRequest',
        spec: { audiences: [audience], expirationSeconds: seconds },
      }),
      timeoutMs: 5000,
    });
    if (res.status !== 201) throw new Error(`TokenRequest: HTTP ${res.status}`);
    return (res.json() as { status: { token: string } }).status.token;
  }

  /** Whether `party` accepts `token`: undefined when it does, else why not. */
  async function verifyAt(party: Party, token: string): Promise<string | undefined> {
    if (party === 'jose') return jose.verify(token);
    if (party === 'clusterB') {
      assert.ok(b, 'cluster B runs');
      const res = await request(`${b.url}/apis/authentication.k8s.io/v1/selfsubjectreviews`, {
        method: 'POST',
        ca: bed.ca,
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        body: JSON.stringify({ apiVersion: 'authentication.k8s.io/v1', kind: 'SelfSubjectReview' }),
      });
      return res.status === 201 ? undefined : `SelfSubjectReview: HTTP ${res.status}`;
    }
    assert.ok(sts, 'the STS runs');
    const answer = await assumeRoleWithWebIdentity(sts, bed.ca, { token });
    return answer.ok
      ? undefined
      : `AssumeRoleWithWebIdentity: ${answer.status} ${answer.code} ${answer.message}`;
  }

  const AUDIENCES: Record<Party, string> = { clusterB: B_AUDIENCE, sts: STS_CLIENT_ID, jose: JOSE_AUDIENCE };

  /**
   * Mints fresh tokens at A and verifies each at every relying party, over and over, until
   * stopped. A token A could not issue (it restarts) is counted apart: no token, no rejection.
   */
  function verifyContinuously(): { stop(): Promise<Tally>; log: Verification[] } {
    const log: Verification[] = [];
    let mintFailures = 0;
    let running = true;
    const loop = (async () => {
      while (running) {
        for (const party of PARTIES) {
          let token: string;
          try {
            token = await mint(AUDIENCES[party]);
          } catch {
            mintFailures++;
            await sleep(200);
            continue;
          }
          const why = await verifyAt(party, token).catch((err: Error) => `error: ${err.message}`);
          log.push({
            at: Date.now(),
            party,
            kid: kidOf(token),
            accepted: why === undefined,
            ...(why ? { why } : {}),
          });
        }
        await sleep(100);
      }
    })();
    return {
      log,
      stop: async () => {
        running = false;
        await loop;
        const byParty = Object.fromEntries(
          PARTIES.map((p) => {
            const mine = log.filter((v) => v.party === p);
            return [p, { verified: mine.length, rejected: mine.filter((v) => !v.accepted).length }];
          }),
        ) as Tally['byParty'];
        const rejected = log.filter((v) => !v.accepted);
        return {
          verified: log.length,
          rejected: rejected.length,
          byParty,
          mintFailures,
          kids: [...new Set(log.map((v) => v.kid))],
          firstRejections: rejected.slice(0, 5).map((v) => `${v.party} kid=${v.kid}: ${v.why}`),
        };
      },
    };
  }

  /** A token like A's, signed by a key nobody published, under a kid nobody knows. */
  async function unknownKidToken(audience: string): Promise<string> {
    const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const now = Math.floor(Date.now() / 1000);
    return new SignJWT({
      'kubernetes.io': { namespace: 'workload', serviceaccount: { name: 'app', uid: randomUUID() } },
    })
      .setProtectedHeader({ alg: 'RS256', kid: `unknown-${randomUUID()}` })
      .setIssuer(bed.issuer)
      .setSubject('system:serviceaccount:workload:app')
      .setAudience(audience)
      .setIssuedAt(now)
      .setNotBefore(now)
      .setExpirationTime(now + 600)
      .sign(privateKey);
  }

  async function keysTrusted(): Promise<{ status?: string; reason?: string; message?: string }> {
    return condition(await getPublisher(bed, NAME), 'KeysTrusted') ?? {};
  }

  async function publishedKids(): Promise<string[]> {
    const res = await request(`${bed.issuer}/openid/v1/jwks`, { ca: bed.ca });
    return (res.json() as { keys: { kid: string }[] }).keys.map((k) => k.kid).sort();
  }

  async function eventsOf(reason: string): Promise<string[]> {
    const list = JSON.parse(
      await bed.kubectl(['get', 'events.events.k8s.io', '-n', 'default', '-o', 'json']),
    ) as { items: { regarding?: { name?: string }; reason?: string; type?: string; note?: string }[] };
    return list.items
      .filter((e) => e.regarding?.name === NAME && e.reason === reason)
      .map((e) => `${e.type}: ${e.note}`);
  }

  /** The operator with a fresh token of its ServiceAccount, signed by A's current key (as the kubelet would refresh it). */
  async function restartOperator(): Promise<void> {
    const code = await op?.stop('SIGTERM');
    assert.equal(code ?? 0, 0, `the operator exits 0 on SIGTERM:\n${op?.output.slice(-10).join('\n')}`);
    const kubeconfig = await bed.serviceAccountKubeconfig(OPERATOR_NAMESPACE, OPERATOR_SA);
    op = await OperatorProcess.start(bed, kubeconfig, ['--leader-elect', 'false']);
  }

  /**
   * docs/rotation.md, step by step: returns when the old key is retired (still published for
   * keyRetention) and the new one signs.
   */
  async function rotateByTheBook(
    t: { diagnostic(m: string): void },
    current: SigningKey,
  ): Promise<SigningKey> {
    const next = bed.createServiceAccountKey();
    const kept = bed.state.apiserver.keys.filter((k) => k.kid !== current.kid);
    // 1. Publish: A serves the new public key, and still signs with the current one.
    await bed.restartApiserverWithKeys([...kept, current, next], current);
    const added = Date.now();
    // 2. Wait until the operator says every served key is trusted.
    const trusted = await eventually(
      `KeysTrusted=True with ${next.kid} published`,
      async () => {
        const p = await getPublisher(bed, NAME);
        const k = (p.status?.keys as { kid: string; trustedAt?: string }[] | undefined)?.find(
          (r) => r.kid === next.kid,
        );
        return k?.trustedAt && condition(p, 'KeysTrusted')?.status === 'True' ? k.trustedAt : undefined;
      },
      (SYNC_INTERVAL_S + MAX_AGE_S + 30) * 1000,
    );
    t.diagnostic(
      `key ${next.kid}: KeysTrusted=True ${Date.now() - added} ms after A served it (trustedAt ${trusted})`,
    );
    assert.ok(Date.now() >= Date.parse(trusted), 'KeysTrusted turns True only after trustedAt');
    // 3. Switch the signing key.
    await bed.restartApiserverWithKeys([...kept, current, next], next);
    await restartOperator();
    // 4. Retire the old key: A stops serving it; the operator keeps it published for keyRetention.
    await bed.restartApiserverWithKeys([next], next);
    return next;
  }

  before(async () => {
    bed = useOwn();
    admin = { cert: readFileSync(bed.state.admin.cert), key: readFileSync(bed.state.admin.key) };
    const kubeconfig = await installOperator(bed);
    await createSecret(bed, 's3-writer', {
      AWS_ACCESS_KEY_ID: bed.state.s3.accessKeyId,
      AWS_SECRET_ACCESS_KEY: bed.state.s3.secretAccessKey,
    });
    op = await OperatorProcess.start(bed, kubeconfig, ['--leader-elect', 'false']);
    await applyYaml(
      bed,
      JSON.stringify(
        samplePublisher(bed, {
          name: NAME,
          spec: {
            syncInterval: `${SYNC_INTERVAL_S}s`,
            cacheControl: `public, max-age=${MAX_AGE_S}`,
            keyRetention: `${KEY_RETENTION_S}s`,
            verification: { canary: { serviceAccountRef: { name: CANARY_SA } } },
          },
        }),
      ),
    );
    await applyYaml(
      bed,
      'apiVersion: v1\nkind: Namespace\nmetadata:\n  name: workload\n---\napiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: app\n  namespace: workload\n',
    );
    await waitForReady(bed, NAME, 'True', 'Ready', 60_000);
    const rendered = await runCli([
      'authn-config',
      '--issuer',
      bed.issuer,
      '--audience',
      B_AUDIENCE,
      '--certificate-authority-file',
      bed.state.caFile,
      '--namespace-allow',
      'workload',
    ]);
    assert.equal(rendered.code, 0, rendered.stderr);
    [b, sts] = await Promise.all([
      bed.startConsumerApiserver({ authenticationConfig: rendered.stdout }),
      startStsMinio(bed, { clientId: STS_CLIENT_ID }),
    ]);
    jose = new CachingJoseVerifier(bed.issuer, bed.ca);
    // Every relying party accepts A's tokens before anything rotates (B initialises in the background).
    for (const party of PARTIES) {
      await eventually(
        `${party} to accept a token of A`,
        async () => ((await verifyAt(party, await mint(AUDIENCES[party]))) === undefined ? true : undefined),
        60_000,
      );
    }
  });

  it('rotates the signing key twice by the documented procedure with zero rejections at three caching relying parties, and refuses retired keys after retention', async (t) => {
    const first = bed.signingKey;
    const oldToken = await mint(JOSE_AUDIENCE);
    const oldTokens = { jose: oldToken, clusterB: await mint(B_AUDIENCE), sts: await mint(STS_CLIENT_ID) };
    const loop = verifyContinuously();
    const started = Date.now();
    let tally: Tally;
    let second: SigningKey;
    let third: SigningKey;
    try {
      second = await rotateByTheBook(t, first);
      third = await rotateByTheBook(t, second);
    } finally {
      tally = await loop.stop();
    }
    t.diagnostic(
      `by the book: ${tally.verified} verifications in ${Math.round((Date.now() - started) / 1000)} s (${PARTIES.map((p) => `${p} ${tally.byParty[p].verified}`).join(', ')}), ${tally.rejected} rejected, ${tally.mintFailures} tokens not issued while A restarted; kids signed: ${tally.kids.join(', ')}; jose fetched the JWKS ${jose.fetches} times`,
    );
    assert.deepEqual(
      tally.kids.sort(),
      [first.kid, second.kid, third.kid].sort(),
      'the loop verified tokens of all three signing keys',
    );
    for (const p of PARTIES) assert.ok(tally.byParty[p].verified > 20, `${p} verified tokens all along`);
    assert.equal(
      tally.rejected,
      0,
      `no valid token rejected; first rejections:\n${tally.firstRejections.join('\n')}`,
    );

    // The first key left A during the first rotation: once its retention ends the operator removes
    // it, and after one cache lifetime no relying party accepts its (unexpired) tokens.
    await eventually(
      `key ${first.kid} to leave the published JWKS`,
      async () => (!(await publishedKids()).includes(first.kid) ? true : undefined),
      (KEY_RETENTION_S + SYNC_INTERVAL_S + 30) * 1000,
    );
    await sleep((MAX_AGE_S + 2) * 1000);
    // A verifier that honours max-age drops the key with its expired copy. kube-apiserver and
    // MinIO keep their copy until a token names a kid they do not know, and only then fetch the
    // JWKS again: a removed key is not revoked there before that.
    const stillAccepted: Party[] = [];
    for (const p of PARTIES) {
      const why = await verifyAt(p, oldTokens[p]);
      if (why) t.diagnostic(`${p} refuses the retired key's token once its copy expired: ${why}`);
      else stillAccepted.push(p);
    }
    assert.ok(!stillAccepted.includes('jose'), 'the max-age verifier refuses the retired key');
    for (const p of stillAccepted) {
      const nudge = await verifyAt(p, await unknownKidToken(AUDIENCES[p]));
      assert.ok(nudge, `${p} refuses a token of a key nobody published`);
    }
    // kube-apiserver also remembers a token it accepted for 10 s (its TokenSuccessCacheTTL).
    if (stillAccepted.length > 0) await sleep(11_000);
    for (const p of stillAccepted) {
      let why = await verifyAt(p, oldTokens[p]);
      let after = 'a token with an unknown kid made it fetch the JWKS again';
      if (!why && p === 'sts' && sts) {
        // MinIO adds the keys of every JWKS it fetches to those it holds, and drops none until it
        // restarts: the published JWKS no longer holds the key, so a restarted MinIO refuses it.
        await sts.stop();
        sts = await startStsMinio(bed, { clientId: STS_CLIENT_ID, name: 'sts-minio-restarted' });
        why = await verifyAt(p, oldTokens[p]);
        after = 'it restarted (it keeps every key it fetched once, even after a fetch without it)';
      }
      assert.ok(why, `${p} refuses a token of the retired key ${first.kid} once it fetched the JWKS again`);
      t.diagnostic(
        `${p} still accepted the retired key's token ${MAX_AGE_S + 2} s after the key left the JWKS; it refuses it after ${after}: ${why}`,
      );
    }
    assert.ok((await publishedKids()).includes(third.kid));
  });

  it('switching the signing key at once gets tokens rejected, and the operator warns SigningKeyNotTrusted', async (t) => {
    const current = bed.signingKey;
    // Every served key trusted before, so what follows is due to the switch alone.
    await eventually(
      'KeysTrusted=True',
      async () => ((await keysTrusted()).status === 'True' ? true : undefined),
      120_000,
    );
    const loop = verifyContinuously();
    const next = bed.createServiceAccountKey();
    let tally: Tally;
    let warned: string;
    try {
      await sleep(3000);
      // The public key and the signing key change together: nothing published it before.
      await bed.restartApiserverWithKeys([current, next], next);
      const switched = Date.now();
      warned = await eventually(
        'KeysTrusted=False/SigningKeyNotTrusted',
        async () => {
          const c = await keysTrusted();
          return c.reason === 'SigningKeyNotTrusted' ? (c.message ?? '') : undefined;
        },
        (SYNC_INTERVAL_S + 30) * 1000,
      );
      t.diagnostic(`SigningKeyNotTrusted ${Date.now() - switched} ms after the switch: ${warned}`);
      // Until the new key is trusted, then a little longer.
      await eventually(
        'KeysTrusted=True',
        async () => ((await keysTrusted()).status === 'True' ? true : undefined),
        (MAX_AGE_S + 30) * 1000,
      );
      await sleep(5000);
    } finally {
      tally = await loop.stop();
    }
    const newKeyTokens = loop.log.filter((v) => v.kid === next.kid);
    t.diagnostic(
      `no wait: ${tally.verified} verifications, ${tally.rejected} rejected (${PARTIES.map((p) => `${p} ${tally.byParty[p].rejected}/${tally.byParty[p].verified}`).join(', ')}); first: ${tally.firstRejections.join(' | ')}`,
    );
    assert.ok(warned.includes(next.kid), `the condition names the new signing key: ${warned}`);
    assert.ok(tally.rejected > 0, 'tokens of the unannounced key were rejected');
    assert.ok(
      loop.log.filter((v) => !v.accepted).every((v) => v.kid === next.kid),
      'only tokens of the new key were rejected',
    );
    assert.ok(
      newKeyTokens.slice(-PARTIES.length).every((v) => v.accepted),
      'once the key is trusted, every relying party accepts its tokens',
    );
    const warnings = await eventsOf('SigningKeyNotTrusted');
    assert.ok(
      warnings.some((w) => w.startsWith('Warning: ') && w.includes(next.kid)),
      `a Warning Event SigningKeyNotTrusted names ${next.kid}: ${warnings.join('; ')}`,
    );
  });
  it('a served EC key (ES256) with relyingParties [azure, gcp]: KeysTrusted=False/AlgorithmNotAccepted names azure, with a Warning', async (t) => {
    const current = bed.signingKey;
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const publicPem = publicKey.export({ type: 'spki', format: 'pem' });
    const ec: SigningKey = {
      privateKeyFile: join(bed.dir, 'pki', 'sa-ec.key'),
      publicKeyFile: join(bed.dir, 'pki', 'sa-ec.pub'),
      kid: keyIdOf(publicPem),
    };
    writeFileSync(ec.privateKeyFile, privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
    writeFileSync(ec.publicKeyFile, publicPem);
    await bed.kubectl([
      'patch',
      'oidcpublisher',
      NAME,
      '--type=merge',
      '-p',
      JSON.stringify({ spec: { relyingParties: ['azure', 'gcp'] } }),
    ]);
    // A serves the EC public key and keeps signing with its RSA key.
    await bed.restartApiserverWithKeys([...bed.state.apiserver.keys, ec], current);
    const message = await eventually(
      'KeysTrusted=False/AlgorithmNotAccepted',
      async () => {
        const c = await keysTrusted();
        return c.reason === 'AlgorithmNotAccepted' ? (c.message ?? '') : undefined;
      },
      (SYNC_INTERVAL_S + 30) * 1000,
    );
    t.diagnostic(message);
    assert.ok(message.includes(ec.kid) && message.includes('ES256'), `names the key and ES256: ${message}`);
    assert.match(message, /which azure \(spec\.relyingParties\) does not accept/);
    assert.ok(!message.includes('the API server signs with it'), 'the EC key does not sign');
    assert.ok((await publishedKids()).includes(ec.kid), 'the key is published all the same');
    assert.equal(condition(await getPublisher(bed, NAME), 'Ready')?.status, 'True', 'Ready is not affected');
    const warnings = await eventsOf('AlgorithmNotAccepted');
    assert.ok(
      warnings.some((w) => w.startsWith('Warning: ') && w.includes(ec.kid)),
      `a Warning Event AlgorithmNotAccepted names ${ec.kid}: ${warnings.join('; ')}`,
    );
    // gcp alone accepts ES256: the warning goes.
    await bed.kubectl([
      'patch',
      'oidcpublisher',
      NAME,
      '--type=merge',
      '-p',
      JSON.stringify({ spec: { relyingParties: ['gcp'] } }),
    ]);
    await eventually(
      'KeysTrusted without AlgorithmNotAccepted',
      async () => ((await keysTrusted()).reason !== 'AlgorithmNotAccepted' ? true : undefined),
      (SYNC_INTERVAL_S + 30) * 1000,
    );
  });
});

import assert from 'node:assert/strict';
import { constants, generateKeyPairSync, type KeyObject, sign } from 'node:crypto';
import { describe, it } from 'node:test';
import { createLocalJWKSet, jwtVerify } from 'jose';
import { ConditionType } from '../../src/api/conditions.ts';
import {
  CANARY_AUDIENCE,
  type CanaryCheck,
  canaryVerdict,
  verifyCanaryToken,
} from '../../src/core/canary.ts';
import { findCondition } from '../../src/core/conditions.ts';
import { prepare } from '../../src/core/plan.ts';
import { nextStatus, type SyncOutcome } from '../../src/core/status.ts';
import { judge, type Verdict } from '../../src/core/verify.ts';
import { discoveryJson, ISSUER, jwksJson, RSA_PUBLIC, resolvedSpec, servedAs } from './fixtures.ts';

const NOW = new Date('2025-06-01T12:00:00Z');
const NOW_S = NOW.getTime() / 1000;

interface Signer {
  alg: string;
  kid: string;
  privateKey: KeyObject;
  /** The public JWK as an API server publishes it. */
  jwk: Record<string, unknown>;
}

function signer(alg: string, kid: string): Signer {
  const pair =
    alg.startsWith('RS') || alg.startsWith('PS')
      ? generateKeyPairSync('rsa', { modulusLength: 2048 })
      : alg === 'ES256'
        ? generateKeyPairSync('ec', { namedCurve: 'P-256' })
        : alg === 'ES384'
          ? generateKeyPairSync('ec', { namedCurve: 'P-384' })
          : generateKeyPairSync('ed25519');
  return {
    alg,
    kid,
    privateKey: pair.privateKey,
    jwk: { ...pair.publicKey.export({ format: 'jwk' }), kid, alg, use: 'sig' },
  };
}

const RS = signer('RS256', 'rs-1');
const ES = signer('ES256', 'es-1');
const ES384 = signer('ES384', 'es-384');
const PS = signer('PS256', 'ps-1');
const ED = signer('EdDSA', 'ed-1');
const OTHER_RS = signer('RS256', 'rs-1');

const b64 = (v: unknown): string => Buffer.from(JSON.stringify(v)).toString('base64url');

function claims(over: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    iss: ISSUER,
    aud: [CANARY_AUDIENCE],
    sub: 'system:serviceaccount:oidc-publisher-system:oidc-publisher-canary',
    iat: NOW_S - 60,
    nbf: NOW_S - 60,
    exp: NOW_S + 540,
    ...over,
  };
}

/** A compact JWS signed by `s`, as an API server issues one. */
function token(
  s: Signer,
  payload: Record<string, unknown> = claims(),
  header: Record<string, unknown> = { alg: s.alg, kid: s.kid },
): string {
  const input = `${b64(header)}.${b64(payload)}`;
  const digest = s.alg === 'EdDSA' ? null : `sha${s.alg.slice(2)}`;
  const key = s.alg.startsWith('PS')
    ? {
        key: s.privateKey,
        padding: constants.RSA_PKCS1_PSS_PADDING,
        saltLength: constants.RSA_PSS_SALTLEN_DIGEST,
      }
    : s.alg.startsWith('ES')
      ? { key: s.privateKey, dsaEncoding: 'ieee-p1363' as const }
      : s.privateKey;
  return `${input}.${sign(digest, Buffer.from(input), key).toString('base64url')}`;
}

const JWKS = { keys: [RS.jwk, ES.jwk, ES384.jwk, PS.jwk, ED.jwk] };

function check(t: string, jwks: unknown = JWKS): CanaryCheck {
  return verifyCanaryToken(t, { issuerURL: ISSUER, audience: CANARY_AUDIENCE, jwks, now: NOW });
}

describe('verifyCanaryToken: a token the API server issued, verified with only the public JWKS', () => {
  for (const s of [RS, ES, ES384, PS, ED]) {
    it(`accepts a ${s.alg} token whose kid the JWKS publishes, and names the kid`, () => {
      assert.deepEqual(check(token(s)), { ok: true, kid: s.kid });
    });
  }

  it('accepts a single aud string, an nbf less than a minute ahead and an exp less than a minute ago (clock skew)', () => {
    assert.deepEqual(check(token(RS, claims({ aud: CANARY_AUDIENCE, nbf: NOW_S + 30, exp: NOW_S - 30 }))), {
      ok: true,
      kid: 'rs-1',
    });
  });

  const refused: { name: string; token: () => string; jwks?: unknown; kid?: string; why: RegExp }[] = [
    {
      name: 'a kid the JWKS does not publish (the API server signs with a key not published)',
      token: () => token(RS),
      jwks: { keys: [ES.jwk] },
      kid: 'rs-1',
      why: /no key with kid "rs-1" \(it holds "es-1"\)/,
    },
    {
      name: 'an empty JWKS',
      token: () => token(RS),
      jwks: { keys: [] },
      kid: 'rs-1',
      why: /no key with kid "rs-1" \(it holds none\)/,
    },
    {
      name: 'a JWKS without a keys array',
      token: () => token(RS),
      jwks: { nokeys: true },
      kid: 'rs-1',
      why: /no keys array/,
    },
    {
      name: 'a signature by another key under the same kid',
      token: () => token(OTHER_RS),
      kid: 'rs-1',
      why: /signature does not verify with the published key "rs-1"/,
    },
    {
      name: 'a payload changed after signing',
      token: () => {
        const [h, , s] = token(RS).split('.');
        return `${h}.${b64(claims({ sub: 'someone-else' }))}.${s}`;
      },
      kid: 'rs-1',
      why: /signature does not verify/,
    },
    {
      name: 'another issuer',
      token: () => token(RS, claims({ iss: 'https://kubernetes.default.svc' })),
      kid: 'rs-1',
      why: /iss is "https:\/\/kubernetes\.default\.svc", relying parties require exactly "https:\/\/issuer\.example\.com"/,
    },
    {
      name: 'another audience',
      token: () => token(RS, claims({ aud: ['sts.amazonaws.com'] })),
      kid: 'rs-1',
      why: /aud is \["sts\.amazonaws\.com"\], not "oidc-publisher-canary"/,
    },
    {
      name: 'a token expired longer ago than the clock skew',
      token: () => token(RS, claims({ exp: NOW_S - 61 })),
      kid: 'rs-1',
      why: /expired at 2025-06-01T11:58:59\.000Z/,
    },
    {
      name: 'no exp',
      token: () => token(RS, claims({ exp: undefined })),
      kid: 'rs-1',
      why: /no exp/,
    },
    {
      name: 'an nbf in the future',
      token: () => token(RS, claims({ nbf: NOW_S + 600 })),
      kid: 'rs-1',
      why: /nbf is 2025-06-01T12:10:00\.000Z, later than now/,
    },
    {
      name: 'alg none',
      token: () => `${b64({ alg: 'none', kid: 'rs-1' })}.${b64(claims())}.`,
      kid: 'rs-1',
      why: /alg "none", which relying parties refuse/,
    },
    {
      name: 'HS256 with the public key as secret',
      token: () => `${b64({ alg: 'HS256', kid: 'rs-1' })}.${b64(claims())}.AAAA`,
      kid: 'rs-1',
      why: /alg "HS256"/,
    },
    {
      name: 'an alg other than the published key is for',
      token: () => token(PS, claims(), { alg: 'PS256', kid: 'rs-1' }),
      kid: 'rs-1',
      why: /published key is for alg "RS256", the token is signed with PS256/,
    },
    {
      name: 'an EC alg for an RSA key',
      token: () => token(ES, claims(), { alg: 'ES256', kid: 'rs-1' }),
      kid: 'rs-1',
      why: /kty "RSA", the token's alg ES256/,
    },
    {
      name: 'a header without kid',
      token: () => token(RS, claims(), { alg: 'RS256' }),
      why: /names no kid/,
    },
    { name: 'not a JWS', token: () => 'not-a-token', why: /not a compact JWS/ },
    {
      name: 'a header that is not JSON',
      token: () => 'bm90IGpzb24.e30.AAAA',
      why: /header is not a JSON object/,
    },
    {
      name: 'two published keys with the token kid',
      token: () => token(RS),
      jwks: { keys: [RS.jwk, OTHER_RS.jwk] },
      kid: 'rs-1',
      why: /2 keys with kid "rs-1"/,
    },
  ];
  for (const c of refused) {
    it(`refuses ${c.name}`, () => {
      const got = check(c.token(), c.jwks ?? JWKS);
      assert.equal(got.ok, false, `expected a refusal, got ${JSON.stringify(got)}`);
      if (got.ok) return;
      assert.equal(got.kid, c.kid, `expected kid ${c.kid}, got ${got.kid}`);
      assert.match(got.why, c.why);
    });
  }

  /**
   * jose, the relying-party library of the field, is the reference: the operator does not load it
   * (src/core/canary.ts says why), so every case above is also put to jose, which must come to the
   * same answer, except where the canary is stricter on purpose.
   */
  describe('the same answers as jose (jwtVerify with a local JWKS)', () => {
    // An API server always names the kid; without one, jose tries the keys of the alg's type.
    const stricter = new Set(['a header without kid']);
    async function jose(t: string, jwks: unknown): Promise<boolean> {
      try {
        await jwtVerify(t, createLocalJWKSet(jwks as Parameters<typeof createLocalJWKSet>[0]), {
          issuer: ISSUER,
          audience: CANARY_AUDIENCE,
          currentDate: NOW,
          clockTolerance: 60,
          requiredClaims: ['exp'],
        });
        return true;
      } catch {
        return false;
      }
    }
    const cases: { name: string; token: string; jwks: unknown }[] = [
      ...[RS, ES, ES384, PS, ED].map((s) => ({ name: `a ${s.alg} token`, token: token(s), jwks: JWKS })),
      {
        name: 'a single aud string, nbf and exp within the skew',
        token: token(RS, claims({ aud: CANARY_AUDIENCE, nbf: NOW_S + 30, exp: NOW_S - 30 })),
        jwks: JWKS,
      },
      ...refused.map((c) => ({ name: c.name, token: c.token(), jwks: c.jwks ?? JWKS })),
    ];
    for (const c of cases) {
      it(c.name, async () => {
        const ours = check(c.token, c.jwks).ok;
        const theirs = await jose(c.token, c.jwks);
        if (stricter.has(c.name)) {
          assert.deepEqual({ ours, theirs }, { ours: false, theirs: true }, 'a known, deliberate difference');
        } else {
          assert.equal(
            ours,
            theirs,
            `the canary says ${ours ? 'valid' : 'invalid'}, jose ${theirs ? 'valid' : 'invalid'}`,
          );
        }
      });
    }
  });
});

describe('canaryVerdict and the status it leads to', () => {
  const SPEC = resolvedSpec();
  const CANARY_SPEC = resolvedSpec({
    verification: { ...SPEC.verification, canary: { serviceAccount: 'oidc-publisher-canary' } },
  });
  const T0 = new Date('2025-01-01T00:00:00.000Z');
  const prep = prepare(SPEC, { discovery: discoveryJson(), jwks: jwksJson([RSA_PUBLIC]) });
  if (prep.kind !== 'ready') throw new Error('fixture: expected a ready preparation');
  const seen = servedAs(prep.objects, 100);
  const readBack = judge(ISSUER, prep.objects, seen, SPEC.verification.slowMs);
  const outcome = (verdict: Verdict, signingKeyID?: string): SyncOutcome => ({
    preparation: prep,
    written: [],
    verdict,
    observation: seen,
    ...(signingKeyID ? { signingKeyID } : {}),
  });
  const conditionsOf = (s: ReturnType<typeof nextStatus>) =>
    (s.conditions ?? [])
      .filter((c) => c.type === ConditionType.Verified || c.type === ConditionType.Ready)
      .map((c) => `${c.type}=${c.status}/${c.reason}`);

  const cases: {
    name: string;
    check: Parameters<typeof canaryVerdict>[2];
    expected: string[];
    message: RegExp;
  }[] = [
    {
      name: 'a token that verifies keeps Verified True and says so',
      check: { ok: true, kid: 'rsa-1' },
      expected: ['Verified=True/Verified', 'Ready=True/Ready'],
      message:
        /gets exactly the published documents, and a token the API server issued \(kid "rsa-1"\) verifies/,
    },
    {
      name: 'a token that does not verify is CanaryRejected, naming the kid and why',
      check: { ok: false, kid: 'new-key', why: 'the published JWKS holds no key with kid "new-key"' },
      expected: ['Verified=False/CanaryRejected', 'Ready=False/CanaryRejected'],
      message: /token the API server issued \(kid "new-key"\) does not verify .*no key with kid "new-key"/,
    },
    {
      name: 'a TokenRequest answered 403 is CanaryTokenForbidden',
      check: { refused: 'forbidden', message: 'TokenRequest for ServiceAccount ns/x: HTTP 403' },
      expected: ['Verified=False/CanaryTokenForbidden', 'Ready=False/CanaryTokenForbidden'],
      message: /HTTP 403: the operator may not request a token of ServiceAccount oidc-publisher-canary/,
    },
    {
      name: 'a missing ServiceAccount is CanaryTokenUnavailable',
      check: { refused: 'unavailable', message: 'HTTP 404' },
      expected: ['Verified=False/CanaryTokenUnavailable', 'Ready=False/CanaryTokenUnavailable'],
      message: /no canary token of ServiceAccount oidc-publisher-canary: HTTP 404/,
    },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const verdict = canaryVerdict(readBack, 'oidc-publisher-canary', c.check);
      const kid = 'refused' in c.check ? undefined : c.check.kid;
      const status = nextStatus(undefined, 1, CANARY_SPEC, outcome(verdict, kid), T0);
      assert.deepEqual(conditionsOf(status), c.expected);
      assert.match(findCondition(status.conditions, ConditionType.Verified)?.message ?? '', c.message);
      assert.equal(status.verification?.signingKeyID, kid, 'status.verification.signingKeyID');
    });
  }

  it('writes a new signingKeyID at once, keeps the last one when no token was had, and drops it with the canary', () => {
    const first = nextStatus(undefined, 1, CANARY_SPEC, outcome(readBack, 'rsa-1'), T0);
    assert.equal(first.verification?.signingKeyID, 'rsa-1');
    const t1 = new Date(T0.getTime() + 60_000);
    const rotated = nextStatus(first, 1, CANARY_SPEC, outcome(readBack, 'rsa-2'), t1);
    assert.deepEqual(rotated.verification, {
      lastVerifiedTime: '2025-01-01T00:01:00Z',
      latencyMilliseconds: 100,
      signingKeyID: 'rsa-2',
    });
    const forbidden = canaryVerdict(readBack, 'x', { refused: 'forbidden', message: 'HTTP 403' });
    const kept = nextStatus(rotated, 1, CANARY_SPEC, outcome(forbidden), t1);
    assert.equal(kept.verification?.signingKeyID, 'rsa-2');
    const off = nextStatus(rotated, 2, SPEC, outcome(readBack), t1);
    assert.equal(off.verification?.signingKeyID, undefined, 'no signingKeyID without a canary');
    assert.equal(
      off.verification?.lastVerifiedTime,
      '2025-01-01T00:01:00Z',
      'the rest of status.verification stays',
    );
  });

  it('never puts the token in the verdict', () => {
    const t = token(RS);
    const verdict = canaryVerdict(readBack, 'c', check(t, { keys: [] }));
    assert.ok(!JSON.stringify(verdict).includes(t.split('.')[2] ?? '-'), 'no signature in the verdict');
    assert.ok(!JSON.stringify(verdict).includes(t.split('.')[1] ?? '-'), 'no payload in the verdict');
  });
});

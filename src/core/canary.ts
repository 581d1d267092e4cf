/**
 * The canary: a token the API server issued, verified as a relying party would
 * verify it, with only what an anonymous reader got from the public issuer (the
 * JWKS its discovery document points at). Pure: the token, the JWKS and the time
 * come in, the verdict goes out. The TokenRequest itself is in
 * controller/canary.ts; the token never leaves this module in a result.
 *
 * Own code rather than jose, the field's library (a dev dependency, the reference in
 * test/unit/canary.test.ts, which puts every case to both): importing jose costs the operator
 * +7.9 to 8.7 MB RSS and 60 to 79 ms (three runs, Node 24.21.0 with the image's flags:
 * `node --no-opt --optimize-for-size --max-semi-space-size=1`, RSS before and after
 * `await import('jose')`), against an idle budget of 80 MB with under 2 MB to spare
 * (docs/performance.md). node:crypto verifies the signature; this file only picks the key and
 * checks the claims.
 */
import { createPublicKey, type JsonWebKey, type KeyObject, constants as rsa, verify } from 'node:crypto';
import { Reason } from '../api/conditions.ts';
import type { Verdict } from './verify.ts';

/** The audience of every canary token: the operator's own, accepted by no relying party. */
export const CANARY_AUDIENCE = 'oidc-publisher-canary';
/** The lifetime asked for: the API server's minimum. */
export const CANARY_TOKEN_SECONDS = 600;
/** How far a token's nbf or iat may be ahead, or its exp behind, for clocks that differ a little (as jose's clockTolerance). */
const CLOCK_SKEW_S = 60;

/** How each JWS alg is checked by node:crypto: the digest, and the signature's form. */
const ALGS: Record<string, { kty: string; digest: string | null; pss?: true; ecdsa?: true }> = {
  RS256: { kty: 'RSA', digest: 'sha256' },
  RS384: { kty: 'RSA', digest: 'sha384' },
  RS512: { kty: 'RSA', digest: 'sha512' },
  PS256: { kty: 'RSA', digest: 'sha256', pss: true },
  PS384: { kty: 'RSA', digest: 'sha384', pss: true },
  PS512: { kty: 'RSA', digest: 'sha512', pss: true },
  ES256: { kty: 'EC', digest: 'sha256', ecdsa: true },
  ES384: { kty: 'EC', digest: 'sha384', ecdsa: true },
  ES512: { kty: 'EC', digest: 'sha512', ecdsa: true },
  EdDSA: { kty: 'OKP', digest: null },
};

export type CanaryCheck =
  /** The token verifies; `kid` is the key the API server signed it with. */
  | { ok: true; kid: string }
  /** It does not; `kid` when its header named one. */
  | { ok: false; kid?: string; why: string };

function decodeJson(part: string): Record<string, unknown> | undefined {
  try {
    const v: unknown = JSON.parse(Buffer.from(part, 'base64url').toString('utf8'));
    return v && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

function short(value: unknown): string {
  const text = JSON.stringify(value) ?? 'undefined';
  return text.length > 120 ? `${text.slice(0, 117)}...` : text;
}

/**
 * Verifies `token` against `jwks` (the parsed JSON an anonymous reader got from the public
 * jwks_uri): the key its header's kid names, the signature by the header's alg, `iss` equal to
 * `issuerURL`, `aud` holding `audience`, `exp` after `now` and `nbf`/`iat` not later than now
 * (give or take a minute of clock skew).
 */
export function verifyCanaryToken(
  token: string,
  opts: { issuerURL: string; audience: string; jwks: unknown; now: Date },
): CanaryCheck {
  const parts = token.split('.');
  if (parts.length !== 3) return { ok: false, why: 'the token is not a compact JWS' };
  const [h = '', p = '', s = ''] = parts;
  const header = decodeJson(h);
  if (!header) return { ok: false, why: 'the token header is not a JSON object' };
  const kid = typeof header.kid === 'string' ? header.kid : undefined;
  const fail = (why: string): CanaryCheck => ({ ok: false, ...(kid !== undefined ? { kid } : {}), why });
  if (kid === undefined) return fail('the token header names no kid');
  const alg = typeof header.alg === 'string' ? header.alg : '';
  const how = Object.hasOwn(ALGS, alg) ? ALGS[alg] : undefined;
  if (!how) return fail(`the token is signed with alg ${short(header.alg)}, which relying parties refuse`);

  const keys = (opts.jwks as { keys?: unknown } | undefined)?.keys;
  if (!Array.isArray(keys)) return fail('the published JWKS has no keys array');
  const matching = keys.filter(
    (k): k is JsonWebKey & { kid: string } =>
      !!k && typeof k === 'object' && (k as { kid?: unknown }).kid === kid,
  );
  if (matching.length === 0) {
    const published = keys
      .map((k) => (k as { kid?: unknown } | null)?.kid)
      .filter((k): k is string => typeof k === 'string');
    return fail(
      `the published JWKS holds no key with kid ${short(kid)} (it holds ${published.length ? published.map(short).join(', ') : 'none'}): relying parties cannot verify the tokens the API server signs now`,
    );
  }
  if (matching.length > 1)
    return fail(`the published JWKS holds ${matching.length} keys with kid ${short(kid)}`);
  const jwk = matching[0] as JsonWebKey;
  if (jwk.kty !== how.kty) return fail(`the published key is kty ${short(jwk.kty)}, the token's alg ${alg}`);
  if (jwk.alg !== undefined && jwk.alg !== alg)
    return fail(`the published key is for alg ${short(jwk.alg)}, the token is signed with ${alg}`);
  if (jwk.use !== undefined && jwk.use !== 'sig') return fail(`the published key has use ${short(jwk.use)}`);
  let key: KeyObject;
  try {
    const { d: _d, p: _p, q: _q, dp: _dp, dq: _dq, qi: _qi, ...pub } = jwk;
    key = createPublicKey({ key: pub, format: 'jwk' });
  } catch {
    return fail('the published key cannot be read as a public key');
  }
  const data = Buffer.from(`${h}.${p}`);
  const signature = Buffer.from(s, 'base64url');
  let valid: boolean;
  try {
    valid = verify(
      how.digest,
      data,
      how.pss
        ? { key, padding: rsa.RSA_PKCS1_PSS_PADDING, saltLength: rsa.RSA_PSS_SALTLEN_DIGEST }
        : how.ecdsa
          ? { key, dsaEncoding: 'ieee-p1363' }
          : key,
      signature,
    );
  } catch {
    valid = false;
  }
  if (!valid) return fail(`the signature does not verify with the published key ${short(kid)}`);

  const claims = decodeJson(p);
  if (!claims) return fail('the token payload is not a JSON object');
  if (claims.iss !== opts.issuerURL)
    return fail(`iss is ${short(claims.iss)}, relying parties require exactly ${short(opts.issuerURL)}`);
  const aud = Array.isArray(claims.aud) ? claims.aud : [claims.aud];
  if (!aud.includes(opts.audience)) return fail(`aud is ${short(claims.aud)}, not ${short(opts.audience)}`);
  const now = Math.floor(opts.now.getTime() / 1000);
  if (typeof claims.exp !== 'number') return fail('the token has no exp');
  if (claims.exp <= now - CLOCK_SKEW_S)
    return fail(`the token expired at ${new Date(claims.exp * 1000).toISOString()}`);
  for (const claim of ['nbf', 'iat'] as const) {
    const t = claims[claim];
    if (t === undefined) continue;
    if (typeof t !== 'number') return fail(`${claim} is not a number`);
    if (t > now + CLOCK_SKEW_S)
      return fail(`${claim} is ${new Date(t * 1000).toISOString()}, later than now`);
  }
  return { ok: true, kid };
}

/** Why no canary token could be had (the TokenRequest's answer, never its body). */
export interface CanaryRefusal {
  /** forbidden: HTTP 403; unavailable: 404, another error, or no answer. */
  refused: 'forbidden' | 'unavailable';
  message: string;
}

/** The Verified condition once the read-back succeeded (`readBack`) and the canary was tried. */
export function canaryVerdict(
  readBack: Verdict,
  serviceAccount: string,
  check: CanaryCheck | CanaryRefusal,
): Verdict {
  if ('refused' in check) {
    return check.refused === 'forbidden'
      ? {
          status: 'False',
          reason: Reason.CanaryTokenForbidden,
          message: `${check.message}: the operator may not request a token of ServiceAccount ${serviceAccount} (its RBAC grants create on serviceaccounts/token for oidc-publisher-canary only)`,
        }
      : {
          status: 'False',
          reason: Reason.CanaryTokenUnavailable,
          message: `no canary token of ServiceAccount ${serviceAccount}: ${check.message}`,
        };
  }
  if (!check.ok) {
    return {
      status: 'False',
      reason: Reason.CanaryRejected,
      message: `a token the API server issued${check.kid !== undefined ? ` (kid ${short(check.kid)})` : ''} does not verify against the public issuer: ${check.why}`,
    };
  }
  return {
    ...readBack,
    message: `${readBack.message}, and a token the API server issued (kid ${short(check.kid)}) verifies against them`,
  };
}

/**
 * Which JWS algorithms the relying parties a publisher declares (spec.relyingParties)
 * accept, from each one's own documentation (docs/rotation.md#signature-algorithms).
 * Conservative where a provider is silent: only what it documents counts.
 */
import type { KeyRecord } from './keys.ts';

export const RELYING_PARTIES = ['aws', 'gcp', 'azure', 'kubernetes', 'vault'] as const;
export type RelyingParty = (typeof RELYING_PARTIES)[number];

export function isRelyingParty(v: string): v is RelyingParty {
  return (RELYING_PARTIES as readonly string[]).includes(v);
}

export const ACCEPTED_ALGORITHMS: Record<RelyingParty, readonly string[]> = {
  /** IAM OIDC identity providers (AssumeRoleWithWebIdentity): RSA keys. */
  aws: ['RS256'],
  /** Workload Identity Federation, OIDC providers. */
  gcp: ['RS256', 'ES256'],
  /** Entra workload identity federation: the RSA family; ES* is refused (AADSTS5002738). */
  azure: ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512'],
  /** Structured authentication (AuthenticationConfiguration), go-oidc's algorithms. */
  kubernetes: ['RS256', 'RS384', 'RS512', 'ES256', 'ES384', 'ES512', 'PS256', 'PS384', 'PS512'],
  /** JWT auth method with its default jwt_supported_algs. */
  vault: ['RS256'],
};

const EC_ALGORITHMS: Record<string, string> = { 'P-256': 'ES256', 'P-384': 'ES384', 'P-521': 'ES512' };

/** The algorithm a key signs with: its alg, else what kube-apiserver uses for its type and curve. */
export function algorithmOf(r: Pick<KeyRecord, 'kty' | 'alg' | 'jwk'>): string | undefined {
  if (r.alg) return r.alg;
  if (r.kty === 'RSA') return 'RS256';
  if (r.kty === 'EC') return EC_ALGORITHMS[r.jwk?.crv ?? ''];
  if (r.kty === 'OKP') return 'EdDSA';
  return undefined;
}

/** The relying parties among `parties` that do not accept the key's algorithm. */
export function refusedBy(
  r: Pick<KeyRecord, 'kty' | 'alg' | 'jwk'>,
  parties: readonly RelyingParty[],
): RelyingParty[] {
  const alg = algorithmOf(r);
  return parties.filter((p) => alg === undefined || !ACCEPTED_ALGORITHMS[p].includes(alg));
}

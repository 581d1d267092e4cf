/**
 * The spec of a standalone run (`oidc-publisher publish`, `oidc-publisher serve`):
 * the issuer, jwks_uri and Cache-Control given as flags, checked with the rules
 * the CRD applies to spec.issuerURL, spec.jwksURI, spec.cacheControl and a
 * storage prefix, with the operator's defaults. Pure.
 */
import type { DocumentSpec } from './plan.ts';
import { DEFAULT_CACHE_CONTROL, issuerBase, JWKS_PATH } from './spec.ts';

export interface StandaloneInput {
  issuer?: string | undefined;
  jwksURI?: string | undefined;
  cacheControl?: string | undefined;
  /** Object key prefix (publish) or '' (serve). */
  prefix?: string;
}

function hasHost(value: string): boolean {
  try {
    return new URL(value).hostname !== '';
  } catch {
    return false;
  }
}

/** Problems with a key prefix, as the CRD's prefix rules word them. */
export function prefixProblems(prefix: string, flag: string): string[] {
  const problems: string[] = [];
  if (prefix.length > 512) problems.push(`${flag}: the prefix is longer than 512 characters`);
  if (prefix.startsWith('/')) problems.push(`${flag}: the prefix must not start with a slash`);
  if (prefix.includes('//')) problems.push(`${flag}: the prefix must not contain empty path segments (//)`);
  if (prefix.split('/').some((s) => s === '.' || s === '..')) {
    problems.push(`${flag}: the prefix must not contain '.' or '..' segments`);
  }
  // Control characters and backslashes have no business in an object key.
  // biome-ignore lint/suspicious/noControlCharactersInRegex: that is the point
  if (/[\u0000-\u001f\u007f\\]/.test(prefix)) {
    problems.push(`${flag}: the prefix must not contain control characters or backslashes`);
  }
  return problems;
}

/** The spec, or every problem with the flags at once. */
export function standaloneSpec(input: StandaloneInput): { spec: DocumentSpec; problems: string[] } {
  const problems: string[] = [];
  const issuer = input.issuer ?? '';
  if (issuer === '') problems.push('--issuer: required');
  else if (!issuer.startsWith('https://') || issuer.length < 9 || !hasHost(issuer)) {
    problems.push(`--issuer: ${JSON.stringify(issuer)} is not an absolute https URL with a host name`);
  } else if (issuer.includes('?') || issuer.includes('#')) {
    problems.push('--issuer: must not contain a query (?) or a fragment (#)');
  } else if (issuer.length > 2048) problems.push('--issuer: longer than 2048 characters');
  const jwksURI = input.jwksURI ?? (issuer ? `${issuerBase(issuer)}/${JWKS_PATH}` : '');
  if (input.jwksURI !== undefined) {
    if (!jwksURI.startsWith('https://') || !hasHost(jwksURI)) {
      problems.push(`--jwks-uri: ${JSON.stringify(jwksURI)} is not an absolute https URL with a host name`);
    } else if (jwksURI.includes('#')) problems.push('--jwks-uri: must not contain a fragment (#)');
    else if (jwksURI.length > 2048) problems.push('--jwks-uri: longer than 2048 characters');
  }
  const cacheControl = input.cacheControl ?? DEFAULT_CACHE_CONTROL;
  if (!/^[ -~]{1,256}$/.test(cacheControl)) {
    problems.push('--cache-control: must be 1 to 256 printable ASCII characters');
  }
  const prefix = input.prefix ?? '';
  problems.push(...prefixProblems(prefix, '--to'));
  return {
    spec: {
      issuerURL: issuer,
      jwksURI,
      cacheControl,
      // A standalone run keeps no state between runs: it publishes the keys the API server serves now.
      keyRetentionMs: 0,
      storage: { prefix },
    },
    problems,
  };
}

/**
 * Several sources for one issuer (spec.sources): clusters that sign with the same
 * --service-account-issuer publish one merged key set, so relying parties that
 * trust the issuer URL keep trusting it across a cluster move. Pure: the
 * documents each source served (or why it could not be read) in, the documents
 * to publish and the sources left out (stale) out.
 *
 * A source is left out, and its keys kept only by retention (core/keys.ts, for
 * spec.keyRetention from when it was last read), when it could not be read, serves
 * invalid documents, reports another issuer, serves a kid another source serves
 * with other key material, serves a kid the operator published (status and the
 * stored JWKS agree on it) with other key material, or would bring the merged key
 * set past MAX_SOURCE_KEYS. Each source is validated on its own, so one source's
 * documents never make the others' unpublishable. The first usable source (in spec
 * order) gives the discovery document, listing in id_token_signing_alg_values_supported
 * the algorithms of every source taken, so that a relying party that checks a token's
 * alg against it accepts every cluster's tokens; its keys and theirs win a kid conflict, and
 * a published key wins over every source, so no source can replace a key another
 * cluster signs with, even while that cluster is not read.
 */
import type { ErrorCode } from '../errors.ts';
import { OidcPublisherError } from '../errors.ts';
import {
  jwkThumbprint,
  MAX_SOURCE_KEYS,
  type PublicJwk,
  type ValidatedDiscovery,
  validateDiscovery,
  validateJwks,
} from './documents.ts';
import type { RawDocuments } from './plan.ts';

export interface SourceRead {
  /** How status names the source: "cluster" (the operator's own) or "secret/<name>". */
  name: string;
  documents?: RawDocuments;
  /** Why the source could not be read. */
  error?: { code: ErrorCode; message: string };
}

export interface StaleSource {
  name: string;
  /** Why it is left out: its read error, an invalid document, another issuer, a kid conflict, or too many keys. */
  code: ErrorCode | 'ISSUER_MISMATCH' | 'KID_CONFLICT' | 'TOO_MANY_KEYS';
  message: string;
}

export type Merged =
  | { kind: 'merged'; documents: RawDocuments; used: string[]; stale: StaleSource[] }
  | { kind: 'none'; stale: StaleSource[] };

const PUBLIC_MEMBERS = ['kty', 'alg', 'use', 'crv', 'n', 'e', 'x', 'y'] as const;

function sameKey(a: PublicJwk, b: PublicJwk): boolean {
  return PUBLIC_MEMBERS.every((m) => a[m as keyof PublicJwk] === b[m as keyof PublicJwk]);
}

const shown = (s: string): string => JSON.stringify(s.slice(0, 100));

/**
 * `published`: the keys the operator published before, by kid, as proven by the stored JWKS
 * (provenKeys in core/keys.ts); a source serving one of these kids with other material is left out.
 */
export function mergeSources(
  issuerURL: string,
  reads: readonly SourceRead[],
  published: ReadonlyMap<string, PublicJwk> = new Map(),
): Merged {
  const stale: StaleSource[] = [];
  const used: string[] = [];
  const keys = new Map<string, { key: PublicJwk; from: string }>();
  let discovery: RawDocuments['discovery'] | undefined;
  let first: ValidatedDiscovery | undefined;
  /** The signing algorithms the sources taken list, in order of first mention. */
  const algorithms = new Set<string>();
  for (const read of reads) {
    if (read.error || !read.documents) {
      stale.push({
        name: read.name,
        code: read.error?.code ?? 'SOURCE_UNREACHABLE',
        message: read.error?.message ?? 'not read',
      });
      continue;
    }
    let served: PublicJwk[];
    let validated: ValidatedDiscovery;
    try {
      validated = validateDiscovery(read.documents.discovery);
      served = validateJwks(read.documents.jwks);
    } catch (err) {
      if (!(err instanceof OidcPublisherError)) throw err;
      stale.push({ name: read.name, code: err.code, message: err.message });
      continue;
    }
    const issuer = validated.issuer;
    if (issuer !== issuerURL) {
      stale.push({
        name: read.name,
        code: 'ISSUER_MISMATCH',
        message: `its issuer ${shown(issuer)} differs from spec.issuerURL ${shown(issuerURL)}`,
      });
      continue;
    }
    const conflict = served.find((k) => {
      const known = keys.get(k.kid);
      return known !== undefined && !sameKey(known.key, k);
    });
    if (conflict) {
      stale.push({
        name: read.name,
        code: 'KID_CONFLICT',
        message: `it serves kid ${shown(conflict.kid)} with other key material than source ${keys.get(conflict.kid)?.from}; none of its keys is taken`,
      });
      continue;
    }
    const replaces = served.find((k) => {
      const before = published.get(k.kid);
      return before !== undefined && !sameKey(before, k);
    });
    if (replaces) {
      const now = jwkThumbprint(replaces);
      const before = jwkThumbprint(published.get(replaces.kid) ?? replaces);
      const other =
        now === before
          ? `with other parameters (alg, use) than the published JWKS holds for the same key material (thumbprint ${now})`
          : `with other key material (thumbprint ${now}) than the published JWKS holds (thumbprint ${before})`;
      stale.push({
        name: read.name,
        code: 'KID_CONFLICT',
        message: `it serves kid ${shown(replaces.kid)} ${other}; the published key is kept, none of this source's keys is taken`,
      });
      continue;
    }
    const count = keys.size + served.filter((k) => !keys.has(k.kid)).length;
    if (count > MAX_SOURCE_KEYS) {
      stale.push({
        name: read.name,
        code: 'TOO_MANY_KEYS',
        message: `its ${served.length} keys would bring the merged JWKS to ${count} keys, past ${MAX_SOURCE_KEYS}; the earlier sources' keys are published, none of this source's keys is taken`,
      });
      continue;
    }
    for (const k of served) if (!keys.has(k.kid)) keys.set(k.kid, { key: k, from: read.name });
    discovery ??= read.documents.discovery;
    first ??= validated;
    // validateDiscovery checked that it is an array of strings, when present.
    for (const alg of (validated.document.id_token_signing_alg_values_supported as string[] | undefined) ??
      [])
      algorithms.add(alg);
    used.push(read.name);
  }
  if (discovery === undefined || first === undefined) return { kind: 'none', stale };
  const listed = first.document.id_token_signing_alg_values_supported as string[] | undefined;
  if (listed !== undefined && algorithms.size > new Set(listed).size)
    discovery = JSON.stringify({ ...first.document, id_token_signing_alg_values_supported: [...algorithms] });
  const jwks = JSON.stringify({ keys: [...keys.values()].map((k) => k.key) });
  return { kind: 'merged', documents: { discovery, jwks }, used, stale };
}

/** One line for a condition: the stale sources and why, the first three named. */
export function staleSummary(stale: readonly StaleSource[]): string {
  const named = stale.slice(0, 3).map((s) => `source ${s.name}: ${s.message}`);
  const more = stale.length > 3 ? `; and ${stale.length - 3} more` : '';
  return `${named.join('; ')}${more}`;
}

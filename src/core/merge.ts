/**
 * Several sources for one issuer (spec.sources): clusters that sign with the same
 * --service-account-issuer publish one merged key set, so relying parties that
 * trust the issuer URL keep trusting it across a cluster move. Pure: the
 * documents each source served (or why it could not be read) in, the documents
 * to publish and the sources left out (stale) out.
 *
 * A source is left out, and its keys kept only by retention (core/keys.ts, for
 * spec.keyRetention from when it was last read), when it could not be read, serves
 * invalid documents, reports another issuer, or serves a kid another source
 * serves with other key material. The first usable source (in spec order) gives
 * the discovery document; its keys and theirs win a kid conflict, so a later
 * source can never replace an earlier one's key.
 */
import type { ErrorCode } from '../errors.ts';
import { OidcPublisherError } from '../errors.ts';
import { type PublicJwk, validateDiscovery, validateJwks } from './documents.ts';
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
  /** Why it is left out: its read error, an invalid document, another issuer, or a kid conflict. */
  code: ErrorCode | 'ISSUER_MISMATCH' | 'KID_CONFLICT';
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

export function mergeSources(issuerURL: string, reads: readonly SourceRead[]): Merged {
  const stale: StaleSource[] = [];
  const used: string[] = [];
  const keys = new Map<string, { key: PublicJwk; from: string }>();
  let discovery: RawDocuments['discovery'] | undefined;
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
    let issuer: string;
    try {
      issuer = validateDiscovery(read.documents.discovery).issuer;
      served = validateJwks(read.documents.jwks);
    } catch (err) {
      if (!(err instanceof OidcPublisherError)) throw err;
      stale.push({ name: read.name, code: err.code, message: err.message });
      continue;
    }
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
    for (const k of served) if (!keys.has(k.kid)) keys.set(k.kid, { key: k, from: read.name });
    discovery ??= read.documents.discovery;
    used.push(read.name);
  }
  if (discovery === undefined) return { kind: 'none', stale };
  const jwks = JSON.stringify({ keys: [...keys.values()].map((k) => k.key) });
  return { kind: 'merged', documents: { discovery, jwks }, used, stale };
}

/** One line for a condition: the stale sources and why, the first three named. */
export function staleSummary(stale: readonly StaleSource[]): string {
  const named = stale.slice(0, 3).map((s) => `source ${s.name}: ${s.message}`);
  const more = stale.length > 3 ? `; and ${stale.length - 3} more` : '';
  return `${named.join('; ')}${more}`;
}

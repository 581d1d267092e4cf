/**
 * Key retention: a key that disappears from the source stays published for
 * spec.keyRetention, because tokens it signed stay valid for their lifetime and
 * relying parties cache the old key set. New keys are published at once.
 *
 * The state lives in the OidcPublisher's status (status.keys, with the public
 * parameters of every key), so it survives operator restarts and leader
 * changes without reading the bucket back. Pure: `now` is passed in.
 */
import type { PublicJwk } from './documents.ts';

/** One published key as status records it. */
export interface KeyRecord {
  kid: string;
  kty: string;
  alg?: string;
  /** When the operator first saw the key in the source. */
  firstSeen: string;
  /** When the key disappeared from the source; absent while the source serves it. */
  retiredAt?: string;
  /** When a retired key leaves the published JWKS. */
  expiresAt?: string;
  /** The public parameters, so a retired key can still be published. */
  jwk?: Partial<PublicJwk>;
}

export type KeyChangeKind = 'added' | 'retired' | 'removed' | 'restored';

export interface KeyChange {
  kind: KeyChangeKind;
  kid: string;
}

export interface Retention {
  /** What to publish: the source's keys and the retained ones. */
  published: PublicJwk[];
  /** The new status.keys, sorted by kid. */
  records: KeyRecord[];
  changes: KeyChange[];
  /** Milliseconds until the next retained key expires, when one is retained. */
  nextExpiryInMs?: number;
}

function stamp(ms: number): string {
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

const PUBLIC_MEMBERS = ['kty', 'kid', 'use', 'alg', 'crv', 'n', 'e', 'x', 'y'] as const;

/** A stored record's key, if it carries enough to publish it again; its public members only. */
function storedJwk(r: KeyRecord): PublicJwk | undefined {
  if (!r.jwk) return undefined;
  const stored = r.jwk as Record<string, unknown>;
  // Status is input here: whatever else a record holds is neither published nor kept.
  const j = Object.fromEntries(
    PUBLIC_MEMBERS.flatMap((m) => (typeof stored[m] === 'string' ? [[m, stored[m]]] : [])),
  ) as Partial<PublicJwk>;
  if (j.kid !== r.kid || typeof j.alg !== 'string') return undefined;
  if (j.kty === 'RSA' && j.n && j.e) return { ...j, kty: 'RSA', kid: r.kid, alg: j.alg };
  // An EC public key needs both coordinates (RFC 7518 6.2.1); OKP keys have x only.
  if ((j.kty === 'EC' || j.kty === 'OKP') && j.crv && j.x && (j.kty === 'OKP' || j.y))
    return { ...j, kty: j.kty, kid: r.kid, alg: j.alg };
  return undefined;
}

function record(key: PublicJwk, firstSeen: string): KeyRecord {
  return { kid: key.kid, kty: key.kty, alg: key.alg, firstSeen, jwk: { ...key } };
}

/**
 * The keys to publish now, given what the source serves and what status
 * recorded. A retired key's expiry follows the current retention, so shortening
 * keyRetention takes effect at once.
 */
export function retainKeys(
  source: readonly PublicJwk[],
  previous: readonly KeyRecord[] | undefined,
  now: Date,
  retentionMs: number,
): Retention {
  const nowMs = now.getTime();
  const prev = new Map((previous ?? []).map((r) => [r.kid, r]));
  const inSource = new Set(source.map((k) => k.kid));
  const published: PublicJwk[] = [];
  const records: KeyRecord[] = [];
  const changes: KeyChange[] = [];
  let nextExpiryInMs: number | undefined;

  for (const key of source) {
    const before = prev.get(key.kid);
    if (!before) changes.push({ kind: 'added', kid: key.kid });
    else if (before.retiredAt) changes.push({ kind: 'restored', kid: key.kid });
    published.push(key);
    records.push(record(key, before?.firstSeen ?? stamp(nowMs)));
  }

  const kept = new Set<string>();
  for (const r of previous ?? []) {
    // A kid the source serves, or one already retained: status is input, and may repeat a kid.
    if (inSource.has(r.kid) || kept.has(r.kid)) continue;
    const jwk = storedJwk(r);
    const retiredMs = r.retiredAt ? Date.parse(r.retiredAt) : nowMs;
    const expiresMs = (Number.isNaN(retiredMs) ? nowMs : retiredMs) + retentionMs;
    if (!jwk || expiresMs <= nowMs) {
      changes.push({ kind: 'removed', kid: r.kid });
      continue;
    }
    if (!r.retiredAt) changes.push({ kind: 'retired', kid: r.kid });
    kept.add(r.kid);
    published.push(jwk);
    records.push({
      ...record(jwk, r.firstSeen),
      retiredAt: stamp(Number.isNaN(retiredMs) ? nowMs : retiredMs),
      expiresAt: stamp(expiresMs),
    });
    const left = expiresMs - nowMs;
    nextExpiryInMs = nextExpiryInMs === undefined ? left : Math.min(nextExpiryInMs, left);
  }

  records.sort((a, b) => (a.kid < b.kid ? -1 : a.kid > b.kid ? 1 : 0));
  return { published, records, changes, ...(nextExpiryInMs !== undefined ? { nextExpiryInMs } : {}) };
}

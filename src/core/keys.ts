/**
 * Key retention: a key that disappears from the source stays published for
 * spec.keyRetention, because tokens it signed stay valid for their lifetime and
 * relying parties cache the old key set. New keys are published at once.
 *
 * The times live in the OidcPublisher's status (status.keys), so they survive
 * operator restarts and leader changes. The key material of a retained key does
 * not come from the status: anyone who may write the status could otherwise get
 * a key of their own published. A retained key is taken from the JWKS the
 * operator itself wrote to storage (its bytes matching the SHA-256 recorded with
 * it), only when status records the same key under that kid, and only when it
 * passes the checks a source key passes. Status times are clamped to `now`.
 * Status and the bucket can both be written by others: given a seal, each record carries a MAC
 * with the operator's key (record-mac.ts), and a retired key is kept only when its record's
 * verifies. Pure: `now`, the stored JWKS and the seal are passed in.
 */
import { checkPublicKey, jwkThumbprint, MAX_DOCUMENT_BYTES, type PublicJwk, sha256Hex } from './documents.ts';
import { macProblem, type RecordSeal, recordMac } from './record-mac.ts';

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
  /** When the JWKS holding the key was first written (core/trust.ts). */
  publishedAt?: string;
  /** When every relying party honouring the JWKS's Cache-Control knows the key: publishedAt + its lifetime. */
  trustedAt?: string;
  /** The public parameters, as published; a retired key is published only when they match the stored JWKS. */
  jwk?: Partial<PublicJwk>;
  /** The operator's MAC over the publisher, kid, jwk and retiredAt (record-mac.ts). */
  mac?: string;
}

/**
 * added, retired (left the source, still published), removed (retention ended), restored (served
 * by the source again), retained (republished from the stored JWKS in a write of the JWKS),
 * refused (a status record not published: not what the operator published before, or a key
 * that fails the checks).
 */
/** A record as retention writes it: of a key that passed the checks. */
export interface PublishedKeyRecord extends KeyRecord {
  kty: PublicJwk['kty'];
}

export type KeyChangeKind = 'added' | 'retired' | 'removed' | 'restored' | 'retained' | 'refused';

export interface KeyChange {
  kind: KeyChangeKind;
  kid: string;
  /** Why a record was refused or removed. */
  why?: string;
  /**
   * The key material's RFC 7638 thumbprint, when the kid alone does not say which key: a kid the
   * source now serves with other material is one key removed and another added.
   */
  thumbprint?: string;
}

export interface Retention {
  /** What to publish: the source's keys and the retained ones. */
  published: PublicJwk[];
  /** The new status.keys, sorted by kid. */
  records: PublishedKeyRecord[];
  changes: KeyChange[];
  /** Kids of the retained keys, each taken from the stored JWKS. */
  fromStorage: string[];
  /** Milliseconds until the next retained key expires, when one is retained. */
  nextExpiryInMs?: number;
}

/**
 * The JWKS the operator last wrote to storage, as a sync read it back: `verified` when its bytes
 * match the SHA-256 recorded with them (the keys are still unchecked input), else why not.
 */
export type StoredJwks =
  | { state: 'verified'; keys: readonly unknown[] }
  | { state: 'missing' }
  | { state: 'unverified'; why: string };

/** At most this many retired keys stay published; with the source's 100 keys, status.keys stays within its maxItems. */
export const MAX_RETAINED_KEYS = 100;

/** Reads back a stored JWKS: its bytes must hash to what was recorded when it was written. */
export function storedJwks(body: Uint8Array | undefined, recordedSha256: string | undefined): StoredJwks {
  if (!body) return { state: 'missing' };
  if (!recordedSha256) return { state: 'unverified', why: 'the stored JWKS carries no recorded SHA-256' };
  if (body.byteLength > MAX_DOCUMENT_BYTES)
    return { state: 'unverified', why: `the stored JWKS is larger than ${MAX_DOCUMENT_BYTES} bytes` };
  if (sha256Hex(body) !== recordedSha256)
    return {
      state: 'unverified',
      why: 'the stored JWKS does not match the SHA-256 recorded when it was written (changed in storage)',
    };
  let doc: unknown;
  try {
    doc = JSON.parse(Buffer.from(body).toString('utf8'));
  } catch {
    return { state: 'unverified', why: 'the stored JWKS is not valid JSON' };
  }
  const keys = doc !== null && typeof doc === 'object' ? (doc as { keys?: unknown }).keys : undefined;
  if (!Array.isArray(keys)) return { state: 'unverified', why: 'the stored JWKS has no "keys" array' };
  return { state: 'verified', keys };
}

function stamp(ms: number): string {
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/** A time status recorded, as milliseconds no later than now; unreadable means now. */
function clampedTime(value: string | undefined, nowMs: number): number {
  const ms = value === undefined ? Number.NaN : Date.parse(value);
  return Number.isNaN(ms) || ms > nowMs ? nowMs : ms;
}

const PUBLIC_MEMBERS = ['kty', 'kid', 'use', 'alg', 'crv', 'n', 'e', 'x', 'y'] as const;

/** The public members a record or a key holds as strings. */
function publicMembers(jwk: object): Record<string, string> {
  const o = jwk as Record<string, unknown>;
  return Object.fromEntries(
    PUBLIC_MEMBERS.flatMap((m) => (Object.hasOwn(o, m) && typeof o[m] === 'string' ? [[m, o[m]]] : [])),
  );
}

function sameMembers(a: Record<string, string>, b: Record<string, string>): boolean {
  const keys = Object.keys(a);
  return keys.length === Object.keys(b).length && keys.every((k) => a[k] === b[k]);
}

const shown = (kid: string): string => JSON.stringify(kid.slice(0, 100));

/** The key to keep publishing for a retired record: from the stored JWKS, equal to the record's, checked. */
function trustedKey(r: KeyRecord & { jwk: object }, stored: StoredJwks | undefined): PublicJwk | string {
  if (!stored || stored.state === 'missing')
    return 'the JWKS in storage is missing, so the key cannot be taken from what the operator published';
  if (stored.state === 'unverified') return stored.why;
  const matches = stored.keys.filter(
    (k) => k !== null && typeof k === 'object' && (k as { kid?: unknown }).kid === r.kid,
  );
  if (matches.length === 0) return 'the JWKS the operator last published does not hold this kid';
  if (matches.length > 1) return 'the JWKS in storage repeats this kid';
  const checked = checkPublicKey(matches[0], `key ${shown(r.kid)}`);
  if ('problems' in checked) return checked.problems.join('; ');
  if (!sameMembers(publicMembers(r.jwk), publicMembers(checked.key)))
    return 'status records other key parameters than the JWKS the operator published under this kid';
  return checked.key;
}

/**
 * Whether a status record is of this key's material: the same RFC 7638 thumbprint. A kid is a
 * label; trust, retention and Events follow the material. A record without a jwk comes from
 * before key retention and names its key by kid only.
 */
export function sameMaterial(r: KeyRecord, key: object): boolean {
  return r.jwk === undefined || jwkThumbprint(r.jwk) === jwkThumbprint(key);
}

/** The thumbprint of the one key the verified stored JWKS holds under `kid`, if it holds one. */
function storedThumbprint(stored: StoredJwks | undefined, kid: string): string | undefined {
  if (stored?.state !== 'verified') return undefined;
  const matches = stored.keys.filter(
    (k) => k !== null && typeof k === 'object' && (k as { kid?: unknown }).kid === kid,
  );
  return matches.length === 1 && matches[0] ? jwkThumbprint(matches[0]) : undefined;
}

function record(
  key: PublicJwk,
  firstSeen: string,
  seal?: RecordSeal,
  retiredAt?: string,
): PublishedKeyRecord {
  return {
    kid: key.kid,
    kty: key.kty,
    alg: key.alg,
    firstSeen,
    ...(retiredAt !== undefined ? { retiredAt } : {}),
    jwk: { ...key },
    ...(seal ? { mac: recordMac(seal, key.kid, key, retiredAt) } : {}),
  };
}

/**
 * The keys to publish now, given what the source serves, what status recorded and the JWKS
 * the operator last wrote to storage. A retired key's expiry follows the current retention
 * (shortening keyRetention takes effect at once) from its retiredAt, clamped to now. With a
 * `seal`, every record written carries its MAC, and a retired key is kept only when its record's
 * MAC verifies.
 */
export function retainKeys(
  source: readonly PublicJwk[],
  previous: readonly KeyRecord[] | undefined,
  now: Date,
  retentionMs: number,
  stored?: StoredJwks,
  seal?: RecordSeal,
): Retention {
  const nowMs = now.getTime();
  const prev = new Map<string, KeyRecord>();
  // Status is input, and may repeat a kid: the first record counts.
  for (const r of previous ?? []) if (!prev.has(r.kid)) prev.set(r.kid, r);
  const inSource = new Set(source.map((k) => k.kid));
  const published: PublicJwk[] = [];
  const records: PublishedKeyRecord[] = [];
  const changes: KeyChange[] = [];
  const fromStorage: string[] = [];
  let nextExpiryInMs: number | undefined;

  for (const key of source) {
    let before = prev.get(key.kid);
    const storedAs = storedThumbprint(stored, key.kid);
    const current = jwkThumbprint(key);
    // With a seal, a record proves it is of this key only by its MAC: a status edit that changes
    // or drops a record's jwk to match what the source now serves must not carry the old key's
    // trust over or hide the swap. Unproven, the stored JWKS decides; without it, the key is new.
    const unproven =
      seal !== undefined &&
      before !== undefined &&
      macProblem(seal, before, key) !== undefined &&
      storedAs !== current;
    const otherMaterial =
      (before !== undefined && !sameMaterial(before, key)) ||
      (storedAs !== undefined && storedAs !== current) ||
      unproven;
    if (otherMaterial) {
      // The source serves the kid with other key material than status records, or than the JWKS
      // the operator published holds (status may have been edited to match): the recorded key is
      // gone (one kid holds one key in a JWKS) and this one is new, trusted from now, not the old one's.
      const was = storedAs ?? (before?.jwk ? jwkThumbprint(before.jwk) : undefined);
      changes.push({
        kind: 'removed',
        kid: key.kid,
        why: `the source now serves this kid with other key material (thumbprint ${current}, was ${was ?? 'unreadable'})`,
        ...(was ? { thumbprint: was } : {}),
      });
      changes.push({ kind: 'added', kid: key.kid, ...(current ? { thumbprint: current } : {}) });
      before = undefined;
    } else if (!before) changes.push({ kind: 'added', kid: key.kid });
    else if (before.retiredAt) changes.push({ kind: 'restored', kid: key.kid });
    published.push(key);
    records.push(record(key, stamp(clampedTime(before?.firstSeen, nowMs)), seal));
  }

  const candidates: { r: KeyRecord; key: PublicJwk; retiredMs: number; expiresMs: number }[] = [];
  for (const r of prev.values()) {
    if (inSource.has(r.kid)) continue;
    const retiredMs = clampedTime(r.retiredAt, nowMs);
    const expiresMs = retiredMs + retentionMs;
    // A record without a jwk comes from before key retention: nothing to keep.
    if (!r.jwk || expiresMs <= nowMs) {
      changes.push({ kind: 'removed', kid: r.kid });
      continue;
    }
    const key = trustedKey(r as KeyRecord & { jwk: object }, stored);
    const why = typeof key === 'string' ? key : seal && macProblem(seal, r, key);
    if (why !== undefined) changes.push({ kind: 'refused', kid: r.kid, why });
    else if (typeof key !== 'string') candidates.push({ r, key, retiredMs, expiresMs });
  }
  // The most recently retired first; beyond the bound, the oldest leave.
  candidates.sort((a, b) => b.retiredMs - a.retiredMs || (a.r.kid < b.r.kid ? -1 : 1));
  candidates.forEach(({ r, key, retiredMs, expiresMs }, i) => {
    if (i >= MAX_RETAINED_KEYS) {
      changes.push({ kind: 'removed', kid: r.kid, why: `more than ${MAX_RETAINED_KEYS} retired keys` });
      return;
    }
    if (!r.retiredAt) changes.push({ kind: 'retired', kid: r.kid });
    published.push(key);
    fromStorage.push(key.kid);
    records.push({
      ...record(key, stamp(Math.min(clampedTime(r.firstSeen, nowMs), retiredMs)), seal, stamp(retiredMs)),
      expiresAt: stamp(expiresMs),
    });
    const left = expiresMs - nowMs;
    nextExpiryInMs = nextExpiryInMs === undefined ? left : Math.min(nextExpiryInMs, left);
  });

  records.sort((a, b) => (a.kid < b.kid ? -1 : a.kid > b.kid ? 1 : 0));
  return {
    published,
    records,
    changes,
    fromStorage,
    ...(nextExpiryInMs !== undefined ? { nextExpiryInMs } : {}),
  };
}

/**
 * The keys status records as published (not past their retention) whose material the stored
 * JWKS proves the operator published under that kid, as retention proves a retired key: with
 * spec.sources, a source serving one of these kids with other material is a kid conflict
 * (core/merge.ts), so the published key is kept rather than replaced. With a `seal`, a record
 * counts only when its MAC verifies, as for retention.
 */
export function provenKeys(
  previous: readonly KeyRecord[] | undefined,
  stored: StoredJwks | undefined,
  now: Date,
  retentionMs: number,
  seal?: RecordSeal,
): Map<string, PublicJwk> {
  const nowMs = now.getTime();
  const proven = new Map<string, PublicJwk>();
  const seen = new Set<string>();
  for (const r of previous ?? []) {
    if (seen.has(r.kid)) continue;
    seen.add(r.kid);
    if (!r.jwk) continue;
    if (r.retiredAt !== undefined && clampedTime(r.retiredAt, nowMs) + retentionMs <= nowMs) continue;
    const key = trustedKey(r as KeyRecord & { jwk: object }, stored);
    if (typeof key !== 'string' && (seal === undefined || macProblem(seal, r, key) === undefined))
      proven.set(r.kid, key);
  }
  return proven;
}

/**
 * Whether status records a key (with its parameters) that the source's JWKS does not serve, or
 * serves with other key material or parameters: only then does retention (or a kid conflict
 * between sources) need the stored JWKS. A JWKS that does not parse needs nothing (prepare
 * refuses it).
 */
export function needsStoredJwks(
  sourceJwks: Uint8Array | string,
  previous: readonly KeyRecord[] | undefined,
  seal?: RecordSeal,
): boolean {
  if (!previous?.some((r) => r.jwk || (seal && r.mac !== undefined))) return false;
  let keys: unknown;
  try {
    const text = typeof sourceJwks === 'string' ? sourceJwks : Buffer.from(sourceJwks).toString('utf8');
    keys = (JSON.parse(text) as { keys?: unknown } | null)?.keys;
  } catch {
    return false;
  }
  if (!Array.isArray(keys)) return false;
  const served = new Map<unknown, Record<string, string>>(
    keys.flatMap((k: unknown) =>
      k !== null && typeof k === 'object' ? [[(k as { kid?: unknown }).kid, publicMembers(k)]] : [],
    ),
  );
  return previous.some((r) => {
    const now = served.get(r.kid);
    // A served kid whose record's MAC does not verify against what is served: the stored JWKS
    // decides whether the key is the one published (status may have been edited to match).
    if (seal && now !== undefined && macProblem(seal, r, now) !== undefined) return true;
    if (!r.jwk) return false;
    return now === undefined || !sameMembers(publicMembers(r.jwk), now);
  });
}

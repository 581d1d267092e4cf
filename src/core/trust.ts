/**
 * Key trust: when a relying party that caches the JWKS must know a key. A relying
 * party that honours Cache-Control may have fetched the JWKS just before a key was
 * published, and keeps that copy for the max-age; only after publishedAt + that
 * lifetime (trustedAt) do all of them know the key, and only then may the API
 * server sign with it without tokens being refused.
 *
 * Pure: `now`, the records and the Cache-Control are passed in.
 */
import { ConditionType, Reason } from '../api/conditions.ts';
import { algorithmOf, type RelyingParty, refusedBy } from './algorithms.ts';
import type { ConditionInput } from './conditions.ts';
import { type KeyRecord, type PublishedKeyRecord, sameMaterial } from './keys.ts';

/** The lifetime assumed for a Cache-Control that names none (no max-age, no no-store). */
export const UNKNOWN_CACHE_LIFETIME_MS = 300_000;

function seconds(directives: Map<string, string | undefined>, name: string): number | undefined {
  const v = directives.get(name);
  return v !== undefined && /^\d{1,10}$/.test(v) ? Number(v) : undefined;
}

/**
 * How long a relying party (or a shared cache in front of the bucket) may keep a copy of the JWKS
 * served with this Cache-Control. `no-store` and `no-cache` keep none. A shared cache honours
 * s-maxage and may hand its copy on with a fresh max-age when it sends no Age header, so both add
 * up. Without either, relying parties choose their own time: UNKNOWN_CACHE_LIFETIME_MS.
 */
export function cacheLifetimeMs(cacheControl: string): number {
  const directives = new Map<string, string | undefined>();
  for (const part of cacheControl.split(',')) {
    const [name, value] = part.trim().split('=', 2);
    if (!name) continue;
    directives.set(name.toLowerCase(), value?.replace(/^"(.*)"$/, '$1'));
  }
  if (directives.has('no-store') || directives.has('no-cache')) return 0;
  const maxAge = seconds(directives, 'max-age');
  const shared = seconds(directives, 's-maxage');
  if (maxAge === undefined && shared === undefined) return UNKNOWN_CACHE_LIFETIME_MS;
  return ((maxAge ?? 0) + (shared ?? 0)) * 1000;
}

function stamp(ms: number): string {
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

function parsed(value: string | undefined): number | undefined {
  const ms = value === undefined ? Number.NaN : Date.parse(value);
  return Number.isNaN(ms) ? undefined : ms;
}

/**
 * When a record's key is trusted: its trustedAt, clamped to publishedAt (no later than now) plus
 * the cache lifetime, since status is writable and a trustedAt far ahead would hold KeysTrusted
 * False that long. A record without a readable trustedAt is trusted one lifetime after now.
 */
function trustedAtMs(r: KeyRecord, nowMs: number, lifetimeMs: number): number {
  const publishedMs = Math.min(parsed(r.publishedAt) ?? nowMs, nowMs);
  const bound = publishedMs + lifetimeMs;
  return Math.min(parsed(r.trustedAt) ?? nowMs + lifetimeMs, bound);
}

/**
 * The records with publishedAt and trustedAt. A key keeps the publishedAt status recorded for the
 * same key material (no later than now; a record from before these fields counts from its
 * firstSeen, as a record reaches status only once the JWKS with its key was written); a new key,
 * or a kid now served with other key material (another RFC 7638 thumbprint), is published now,
 * since the records reach status only when this sync's JWKS is in storage. trustedAt is
 * publishedAt plus the current cache lifetime: a recorded trustedAt is not honoured past that
 * (status is writable), so a shorter max-age takes effect at once (docs/rotation.md).
 */
export function withTrust(
  records: readonly PublishedKeyRecord[],
  previous: readonly KeyRecord[] | undefined,
  now: Date,
  lifetimeMs: number,
): PublishedKeyRecord[] {
  const nowMs = now.getTime();
  const prev = new Map<string, KeyRecord>();
  for (const r of previous ?? []) if (!prev.has(r.kid)) prev.set(r.kid, r);
  return records.map((r) => {
    const found = prev.get(r.kid);
    // Trust belongs to the key material, not to the kid.
    const before = found && (r.jwk === undefined || sameMaterial(found, r.jwk)) ? found : undefined;
    const recorded = parsed(before?.publishedAt) ?? parsed(before?.firstSeen) ?? nowMs;
    const publishedMs = Math.min(recorded, nowMs);
    return { ...r, publishedAt: stamp(publishedMs), trustedAt: stamp(publishedMs + lifetimeMs) };
  });
}

export interface KeyTrust {
  condition: ConditionInput;
  /** Milliseconds until the next served key becomes trusted, when one is not yet. */
  nextTrustInMs?: number;
}

const shown = (kid: string): string => JSON.stringify(kid.slice(0, 100));

/**
 * The KeysTrusted condition: True when every key the source serves is past its trustedAt, so the
 * API server may sign with any of them. False with SigningKeyNotTrusted when the canary token
 * shows the API server signing with a key that is not yet trusted (its tokens can be refused now),
 * else KeyNotYetTrusted naming the key and when it will be. AlgorithmNotAccepted when a served key
 * signs with an algorithm one of the declared relying parties does not accept (first when it is
 * the signing key: its tokens are refused now).
 */
export function keyTrust(
  records: readonly KeyRecord[] | undefined,
  signingKeyID: string | undefined,
  now: Date,
  lifetimeMs: number,
  parties: readonly RelyingParty[] = [],
): KeyTrust {
  const served = (records ?? []).filter((r) => r.retiredAt === undefined);
  if (served.length === 0)
    return {
      condition: {
        type: ConditionType.KeysTrusted,
        status: 'Unknown',
        reason: Reason.KeysNotPublished,
        message: 'no key has been published yet',
      },
    };
  const nowMs = now.getTime();
  const lifetime = `${Math.round(lifetimeMs / 1000)}s`;
  const pending = served
    .map((r) => ({ r, trustedMs: trustedAtMs(r, nowMs, lifetimeMs) }))
    .filter((p) => p.trustedMs > nowMs)
    .sort((a, b) => a.trustedMs - b.trustedMs || (a.r.kid < b.r.kid ? -1 : 1));
  const nextTrustInMs = pending.length > 0 ? (pending[0]?.trustedMs ?? nowMs) - nowMs : undefined;
  const untrusted = (reason: Reason, message: string): KeyTrust => ({
    ...(nextTrustInMs !== undefined ? { nextTrustInMs } : {}),
    condition: { type: ConditionType.KeysTrusted, status: 'False', reason, message },
  });
  const refusals = served.flatMap((r) => {
    const by = refusedBy(r, parties);
    return by.length > 0 ? [{ r, by }] : [];
  });
  const refusal = (x: { r: KeyRecord; by: RelyingParty[] }): string =>
    `key ${shown(x.r.kid)} signs with ${algorithmOf(x.r) ?? `an unknown algorithm (kty ${x.r.kty})`}, which ${x.by.join(', ')} (spec.relyingParties) do${x.by.length === 1 ? 'es' : ''} not accept`;
  const signingRefused = refusals.find((x) => x.r.kid === signingKeyID);
  if (signingRefused)
    return untrusted(
      Reason.AlgorithmNotAccepted,
      `the API server signs with it (canary token): ${refusal(signingRefused)}; they refuse the cluster's tokens`,
    );
  const signing = pending.find((p) => p.r.kid === signingKeyID);
  if (signing)
    return untrusted(
      Reason.SigningKeyNotTrusted,
      `the API server signs with key ${shown(signing.r.kid)} (seen in the canary token), published at ${signing.r.publishedAt ?? 'an unknown time'}: relying parties that cached the JWKS before (for up to ${lifetime}) can refuse its tokens until ${stamp(signing.trustedMs)}`,
    );
  if (refusals.length > 0) {
    const more = refusals.length > 3 ? `, and ${refusals.length - 3} more` : '';
    return untrusted(
      Reason.AlgorithmNotAccepted,
      `${refusals.slice(0, 3).map(refusal).join('; ')}${more}: do not make the API server sign with such a key`,
    );
  }
  if (pending.length === 0) {
    const accepted = parties.length > 0 ? ` and ${parties.join(', ')} accept their algorithms` : '';
    return {
      condition: {
        type: ConditionType.KeysTrusted,
        status: 'True',
        reason: Reason.AllKeysTrusted,
        message: `every key the source serves (${served.length}) was published at least the JWKS cache lifetime (${lifetime}) ago${accepted}: relying parties that honour Cache-Control know them, and the API server may sign with any of them`,
      },
    };
  }
  const named = pending
    .slice(0, 3)
    .map((p) => `${shown(p.r.kid)} until ${stamp(p.trustedMs)}`)
    .join(', ');
  const more = pending.length > 3 ? `, and ${pending.length - 3} more` : '';
  return untrusted(
    Reason.KeyNotYetTrusted,
    `not yet known to every relying party that caches the JWKS (for up to ${lifetime}): ${named}${more}; do not make the API server sign with such a key before then`,
  );
}

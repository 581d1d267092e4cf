/**
 * The proof that a status.keys record is one the operator wrote: an HMAC-SHA256, with a key only
 * the operator holds (controller/integrity-key.ts keeps it in a Secret in the operator's
 * namespace), over the publisher's UID, the kid, the key's public parameters and its retiredAt.
 * A retired key is published again only when its record carries a MAC that verifies: whoever may
 * patch oidcpublishers/status and write the bucket, but not read that Secret, cannot make one for
 * a key of their own, move a retiredAt, or carry a record over to another publisher.
 * Pure: the key is passed in.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';

/** The operator's MAC key, and its public id (it names the key in a refusal; it reveals nothing of it). */
export interface MacKey {
  id: string;
  secret: Uint8Array;
}

/** What a publisher's records are sealed with: the key and the publisher's UID. */
export interface RecordSeal {
  key: MacKey;
  publisherUID: string;
}

/** Shortest and longest key the Secret may hold, in bytes. */
export const MAC_KEY_MIN_BYTES = 32;
export const MAC_KEY_MAX_BYTES = 64;

const VERSION = 'v1';
const MAC_FORMAT = /^v1\.([0-9a-f]{8})\.([A-Za-z0-9_-]{43})$/;
const PUBLIC_MEMBERS = ['kty', 'kid', 'use', 'alg', 'crv', 'n', 'e', 'x', 'y'] as const;

/** The key, with its id: the first 8 hex digits of an HMAC of a fixed label. */
export function macKey(secret: Uint8Array): MacKey {
  const id = createHmac('sha256', secret)
    .update('oidc-publisher record MAC key id')
    .digest('hex')
    .slice(0, 8);
  return { id, secret };
}

/** What the MAC covers, as one unambiguous string. */
function macInput(publisherUID: string, kid: string, jwk: object, retiredAt: string | undefined): string {
  const o = jwk as Record<string, unknown>;
  const members = PUBLIC_MEMBERS.flatMap((m) =>
    Object.hasOwn(o, m) && typeof o[m] === 'string' ? [[m, o[m]]] : [],
  );
  return JSON.stringify([
    'oidc-publisher status.keys',
    VERSION,
    publisherUID,
    kid,
    members,
    retiredAt ?? null,
  ]);
}

function digest(key: MacKey, input: string): Buffer {
  return createHmac('sha256', key.secret).update(input).digest();
}

/** The MAC of a record: `v1.<key id>.<base64url HMAC-SHA256>`. */
export function recordMac(seal: RecordSeal, kid: string, jwk: object, retiredAt: string | undefined): string {
  const mac = digest(seal.key, macInput(seal.publisherUID, kid, jwk, retiredAt));
  return `${VERSION}.${seal.key.id}.${mac.toString('base64url')}`;
}

/**
 * Why a record's MAC does not prove the operator wrote it (kid, public parameters and retiredAt as
 * the record holds them), or undefined when it does.
 */
export function macProblem(
  seal: RecordSeal,
  record: { kid: string; retiredAt?: string | undefined; mac?: string | undefined },
  jwk: object,
): string | undefined {
  if (record.mac === undefined) return 'the record carries no MAC of the operator';
  const m = MAC_FORMAT.exec(record.mac);
  if (!m) return 'the record carries a MAC of no known format';
  if (m[1] !== seal.key.id)
    return `the record's MAC was made with integrity key ${m[1]}, the operator holds key ${seal.key.id} (its Secret was emptied, re-created or replaced)`;
  const expected = digest(seal.key, macInput(seal.publisherUID, record.kid, jwk, record.retiredAt));
  const got = Buffer.from(m[2] ?? '', 'base64url');
  if (got.length !== expected.length || !timingSafeEqual(got, expected))
    return "the record's MAC does not match its kid, key parameters and retiredAt for this OidcPublisher";
  return undefined;
}

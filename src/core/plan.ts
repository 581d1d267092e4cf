/**
 * The decisions of a sync, as pure functions: from the source's raw documents
 * to the objects to publish, and from what the bucket holds to the writes.
 */
import { OidcPublisherError } from '../errors.ts';
import {
  type PublicJwk,
  renderDiscovery,
  renderJwks,
  sha256Hex,
  type ValidatedDiscovery,
  validateDiscovery,
  validateJwks,
} from './documents.ts';
import { type KeyRecord, type Retention, retainKeys, type StoredJwks } from './keys.ts';
import type { RecordSeal } from './record-mac.ts';
import {
  CONTENT_TYPE_DISCOVERY,
  CONTENT_TYPE_JWKS,
  DISCOVERY_PATH,
  issuerBase,
  JWKS_PATH,
  objectKey,
  type ResolvedSpec,
} from './spec.ts';
import { cacheLifetimeMs, withTrust } from './trust.ts';

export interface RawDocuments {
  discovery: Uint8Array | string;
  jwks: Uint8Array | string;
}

export interface RenderedObject {
  role: 'jwks' | 'discovery';
  key: string;
  /** Where relying parties fetch it. */
  url: string;
  body: Buffer;
  contentType: string;
  cacheControl: string;
  sha256: string;
}

/** What the bucket holds for a key, as far as a HEAD tells. */
export interface StoredObject {
  sha256?: string;
  contentType?: string;
  cacheControl?: string;
  /** metadata.uid of the OidcPublisher that wrote it, from the object's metadata; absent when none is recorded. */
  ownerUID?: string;
  /** Its name, for messages: names are reused, so only the UID decides. */
  ownerName?: string;
}

/** The OidcPublisher a write is made for, recorded in the object's metadata. */
export interface ObjectOwner {
  uid: string;
  name: string;
}

/** What an OidcPublisher may write or delete: objects it owns, and those it recorded publishing. */
export interface Ownership {
  owner: ObjectOwner;
  /**
   * Per object key, the SHA-256 this publisher recorded in status.objects: an object without owner
   * metadata (written before owners were recorded) with that hash is its own.
   */
  recorded: ReadonlyMap<string, string>;
}

/**
 * Whose an object is, for an OidcPublisher: absent; owned (its UID in the metadata); recorded (no
 * owner in the metadata, and the hash this publisher recorded publishing there); or foreign
 * (another owner, or no owner and another hash). Only a foreign object is refused.
 */
export type Claim = 'absent' | 'owned' | 'recorded' | 'foreign';

export function claimOf(key: string, stored: StoredObject | undefined, ownership: Ownership): Claim {
  if (!stored) return 'absent';
  if (stored.ownerUID !== undefined) return stored.ownerUID === ownership.owner.uid ? 'owned' : 'foreign';
  const recorded = ownership.recorded.get(key);
  return recorded !== undefined && stored.sha256 === recorded ? 'recorded' : 'foreign';
}

/** Why an object is not this publisher's, for a condition or an Event. */
export function describeForeign(key: string, stored: StoredObject): string {
  if (stored.ownerUID !== undefined) {
    const who = stored.ownerName
      ? `OidcPublisher ${JSON.stringify(stored.ownerName)}`
      : 'another OidcPublisher';
    return `${key} was written by ${who} (uid ${stored.ownerUID})`;
  }
  return `${key} exists and was not written by this OidcPublisher (no owner metadata, and not the content it recorded publishing)`;
}

/**
 * OBJECT_NOT_OWNED naming every foreign object among `keys`, or undefined when this publisher may
 * write them all; `stored[i]` is what holds `keys[i]`.
 */
export function refuseForeign(
  keys: readonly string[],
  stored: readonly (StoredObject | undefined)[],
  ownership: Ownership,
  doing: string,
): OidcPublisherError | undefined {
  const foreign = keys.flatMap((key, i) => {
    const s = stored[i];
    return s && claimOf(key, s, ownership) === 'foreign' ? [describeForeign(key, s)] : [];
  });
  if (foreign.length === 0) return undefined;
  return new OidcPublisherError(
    'OBJECT_NOT_OWNED',
    `${foreign.join('; ')}: ${doing}. To hand the objects to this OidcPublisher, delete them from the bucket`,
  );
}

export type Preparation =
  | {
      kind: 'ready';
      issuer: string;
      sourceJwksURI: string;
      /** The keys published: the source's and the retained ones. */
      keys: PublicJwk[];
      /** Which keys are retained, and what changed since the last status. */
      retention: Retention;
      /** JWKS first: it must be in place before a discovery document that points at it. */
      objects: RenderedObject[];
    }
  | { kind: 'invalid'; error: OidcPublisherError }
  | { kind: 'issuerMismatch'; issuer: string; expected: string };

/** What prepare reads of a spec: an OidcPublisher's, or that of a standalone `publish` or `serve` run. */
export type DocumentSpec = Pick<ResolvedSpec, 'issuerURL' | 'jwksURI' | 'cacheControl' | 'keyRetentionMs'> & {
  storage: { prefix: string };
};

/** The key state status recorded at the last successful sync, and the time now. */
export interface RetentionInput {
  previous: readonly KeyRecord[] | undefined;
  now: Date;
  /**
   * The JWKS this publisher last wrote to storage, read back (storedJwks in keys.ts): the only
   * place a retired key's material is taken from. Without it no retired key is published.
   */
  stored?: StoredJwks;
  /**
   * The operator's MAC key and the publisher's UID (record-mac.ts): every record gets a MAC, and a
   * retired key is kept only when its record's verifies. The operator always passes it; `serve`,
   * whose records never leave its memory, does not.
   */
  seal?: RecordSeal;
}

/**
 * Validates the source's documents against the spec and renders what to publish:
 * the source's keys plus the retired keys still within spec.keyRetention.
 */
export function prepare(spec: DocumentSpec, raw: RawDocuments, retention?: RetentionInput): Preparation {
  let discovery: ValidatedDiscovery;
  let keys: PublicJwk[];
  try {
    discovery = validateDiscovery(raw.discovery);
    keys = validateJwks(raw.jwks);
  } catch (err) {
    if (err instanceof OidcPublisherError) return { kind: 'invalid', error: err };
    throw err;
  }
  if (discovery.issuer !== spec.issuerURL) {
    return { kind: 'issuerMismatch', issuer: discovery.issuer, expected: spec.issuerURL };
  }
  const now = retention?.now ?? new Date(0);
  const kept = retainKeys(
    keys,
    retention?.previous,
    now,
    spec.keyRetentionMs,
    retention?.stored,
    retention?.seal,
  );
  // A key added in this sync (a kid new, or served with other material) is trusted from now,
  // whatever status recorded under its kid.
  const added = new Set(kept.changes.filter((c) => c.kind === 'added').map((c) => c.kid));
  const carried = retention?.previous?.filter((r) => !added.has(r.kid));
  const retained: Retention = {
    ...kept,
    records: withTrust(kept.records, carried, now, cacheLifetimeMs(spec.cacheControl)),
  };
  const prefix = spec.storage.prefix;
  const jwksBody = renderJwks(retained.published);
  const discoveryBody = renderDiscovery(discovery, spec.jwksURI);
  return {
    kind: 'ready',
    issuer: discovery.issuer,
    sourceJwksURI: discovery.jwksURI,
    keys: retained.published,
    retention: retained,
    objects: [
      {
        role: 'jwks',
        key: objectKey(prefix, JWKS_PATH),
        url: spec.jwksURI,
        body: jwksBody,
        contentType: CONTENT_TYPE_JWKS,
        cacheControl: spec.cacheControl,
        sha256: sha256Hex(jwksBody),
      },
      {
        role: 'discovery',
        key: objectKey(prefix, DISCOVERY_PATH),
        url: `${issuerBase(spec.issuerURL)}/${DISCOVERY_PATH}`,
        body: discoveryBody,
        contentType: CONTENT_TYPE_DISCOVERY,
        cacheControl: spec.cacheControl,
        sha256: sha256Hex(discoveryBody),
      },
    ],
  };
}

export interface PlannedWrite {
  object: RenderedObject;
  why: 'missing' | 'content changed' | 'headers changed' | 'served content differs' | 'owner not recorded';
}

/**
 * The writes that bring the bucket to `objects`, in order; `stored[i]` is what holds `objects[i].key`.
 * With an owner, an object that does not record it is rewritten to record it (the caller refuses
 * foreign objects first, see refuseForeign).
 */
export function planWrites(
  objects: readonly RenderedObject[],
  stored: readonly (StoredObject | undefined)[],
  /** Rewrite every object whatever its metadata says: the last verification saw other bytes served. */
  rewrite = false,
  owner?: ObjectOwner,
): PlannedWrite[] {
  const writes: PlannedWrite[] = [];
  objects.forEach((object, i) => {
    const current = stored[i];
    if (!current) writes.push({ object, why: 'missing' });
    else if (rewrite) writes.push({ object, why: 'served content differs' });
    else if (current.sha256 !== object.sha256) writes.push({ object, why: 'content changed' });
    else if (current.contentType !== object.contentType || current.cacheControl !== object.cacheControl) {
      writes.push({ object, why: 'headers changed' });
    } else if (owner && current.ownerUID !== owner.uid) writes.push({ object, why: 'owner not recorded' });
  });
  return writes;
}

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
import { type KeyRecord, type Retention, retainKeys } from './keys.ts';
import {
  CONTENT_TYPE_DISCOVERY,
  CONTENT_TYPE_JWKS,
  DISCOVERY_PATH,
  issuerBase,
  JWKS_PATH,
  objectKey,
  type ResolvedSpec,
} from './spec.ts';

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
  const retained = retainKeys(keys, retention?.previous, retention?.now ?? new Date(0), spec.keyRetentionMs);
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
  why: 'missing' | 'content changed' | 'headers changed' | 'served content differs';
}

/** The writes that bring the bucket to `objects`, in order; `stored[i]` is what holds `objects[i].key`. */
export function planWrites(
  objects: readonly RenderedObject[],
  stored: readonly (StoredObject | undefined)[],
  /** Rewrite every object whatever its metadata says: the last verification saw other bytes served. */
  rewrite = false,
): PlannedWrite[] {
  const writes: PlannedWrite[] = [];
  objects.forEach((object, i) => {
    const current = stored[i];
    if (!current) writes.push({ object, why: 'missing' });
    else if (rewrite) writes.push({ object, why: 'served content differs' });
    else if (current.sha256 !== object.sha256) writes.push({ object, why: 'content changed' });
    else if (current.contentType !== object.contentType || current.cacheControl !== object.cacheControl) {
      writes.push({ object, why: 'headers changed' });
    }
  });
  return writes;
}

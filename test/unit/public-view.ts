/**
 * The public issuer as an anonymous relying party sees it, for unit tests: a bucket that serves a
 * MemoryStore's objects at the issuer's host, each URL's path being the object key. What stands
 * between them can be set: a cache serving other bytes or headers for a key, a refusal or network
 * error for every GET, and the latency.
 */

import { sha256Hex } from '../../src/core/documents.ts';
import { DISCOVERY_PATH, issuerBase } from '../../src/core/spec.ts';
import type { Fetched, Observation } from '../../src/core/verify.ts';
import type { IssuerReader } from '../../src/sources/relying-party.ts';
import type { MemoryObject, MemoryStore } from './memory-store.ts';

export class PublicView implements IssuerReader {
  readonly #store: MemoryStore;
  latencyMs = 120;
  /** Every GET gets this answer instead (an HTTP status without a body, or a network error). */
  answer: { status: number } | { error: string } | undefined;
  /** Per object key, what a cache in front of the bucket serves instead of the object. */
  readonly cached = new Map<string, Partial<MemoryObject>>();
  reads = 0;

  constructor(store: MemoryStore) {
    this.#store = store;
  }

  #get(url: string): Fetched {
    if (this.answer) return { url, ...this.answer };
    const key = decodeURIComponent(new URL(url).pathname).replace(/^\//, '');
    const stored = this.#store.objects.get(key);
    const o = stored || this.cached.has(key) ? { ...stored, ...this.cached.get(key) } : undefined;
    if (!o?.body) return { url, status: 404 };
    let json: unknown;
    try {
      json = JSON.parse(o.body.toString('utf8'));
    } catch {
      json = undefined;
    }
    return {
      url,
      status: 200,
      ...(o.contentType ? { contentType: o.contentType } : {}),
      ...(o.cacheControl ? { cacheControl: o.cacheControl } : {}),
      sha256: sha256Hex(o.body),
      ...(json !== undefined ? { json } : {}),
    };
  }

  async read(issuerURL: string, _timeoutMs: number): Promise<Observation> {
    this.reads++;
    const discovery = this.#get(`${issuerBase(issuerURL)}/${DISCOVERY_PATH}`);
    const jwksURI = (discovery.json as { jwks_uri?: unknown } | undefined)?.jwks_uri;
    const jwks = discovery.status === 200 && typeof jwksURI === 'string' ? this.#get(jwksURI) : undefined;
    return { discovery, ...(jwks ? { jwks } : {}), latencyMs: this.latencyMs };
  }

  close(): void {}
}

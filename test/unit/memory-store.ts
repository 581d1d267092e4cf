/**
 * An ObjectStore in memory, for unit tests of what a sync writes: each object with the headers and
 * custom metadata a bucket keeps, a log of the calls made, the writes and deletes that landed, and
 * faults to inject per operation (optionally per key), as the real stores raise them.
 */
import { sha256Hex } from '../../src/core/documents.ts';
import type { StoredObject } from '../../src/core/plan.ts';
import type { OidcPublisherError } from '../../src/errors.ts';
import { type ObjectStore, objectMetadata, type PutOptions, readMetadata } from '../../src/stores/store.ts';

export interface MemoryObject {
  body: Buffer;
  contentType: string;
  cacheControl: string;
  /** Custom metadata, as objectMetadata() names it for S3 and GCS. */
  metadata: Record<string, string>;
}

export type StoreOp = 'head' | 'get' | 'put' | 'delete';

/** A write that landed: the object as stored, and the hash of its bytes. */
export interface LandedWrite extends MemoryObject {
  key: string;
  /** SHA-256 of `body`, computed here (not taken from the metadata). */
  bodySha256: string;
}

export class MemoryStore implements ObjectStore {
  readonly describe: string;
  readonly objects = new Map<string, MemoryObject>();
  /** Every call, in order, whether it failed or not. */
  readonly calls: { op: StoreOp; key: string }[] = [];
  readonly writes: LandedWrite[] = [];
  readonly deletes: string[] = [];
  readonly #faults: { op: StoreOp; key: string | undefined; err: OidcPublisherError }[] = [];
  closed = false;

  constructor(describe = 's3://oidc/') {
    this.describe = describe;
  }

  /** Makes `op` (on `key`, or on every key) throw `err` until heal(). */
  fail(op: StoreOp, err: OidcPublisherError, key?: string): void {
    this.#faults.push({ op, key, err });
  }

  heal(): void {
    this.#faults.length = 0;
  }

  /** Forgets the calls, writes and deletes made so far; the objects stay. */
  clearLog(): void {
    this.calls.length = 0;
    this.writes.length = 0;
    this.deletes.length = 0;
  }

  /** Puts an object as something other than the operator wrote it: any body, headers and metadata. */
  seed(key: string, body: string | Buffer, o: Partial<Omit<MemoryObject, 'body'>> = {}): void {
    this.objects.set(key, {
      body: Buffer.from(body),
      contentType: o.contentType ?? 'application/json',
      cacheControl: o.cacheControl ?? 'public, max-age=300',
      metadata: o.metadata ?? {},
    });
  }

  #enter(op: StoreOp, key: string): void {
    this.calls.push({ op, key });
    const fault = this.#faults.find((f) => f.op === op && (f.key === undefined || f.key === key));
    if (fault) throw fault.err;
  }

  async head(key: string): Promise<StoredObject | undefined> {
    this.#enter('head', key);
    const o = this.objects.get(key);
    if (!o) return undefined;
    return readMetadata(o.metadata, { contentType: o.contentType, cacheControl: o.cacheControl });
  }

  async get(key: string): Promise<Buffer | undefined> {
    this.#enter('get', key);
    const o = this.objects.get(key);
    return o ? Buffer.from(o.body) : undefined;
  }

  async put(key: string, body: Buffer, opts: PutOptions): Promise<void> {
    this.#enter('put', key);
    const o: MemoryObject = {
      body: Buffer.from(body),
      contentType: opts.contentType,
      cacheControl: opts.cacheControl,
      metadata: objectMetadata(opts),
    };
    this.objects.set(key, o);
    this.writes.push({ key, ...o, bodySha256: sha256Hex(o.body) });
  }

  async delete(key: string): Promise<void> {
    this.#enter('delete', key);
    this.objects.delete(key);
    this.deletes.push(key);
  }

  close(): void {
    this.closed = true;
  }
}

/**
 * A directory as a store, for `oidc-publisher publish --to file://<dir>`: the
 * object `<key>` is the file `<dir>/<key>`, written atomically (a temporary file
 * in the same directory, fsync, rename), so a web server serving `<dir>` never
 * hands out half a document. Content-Type, Cache-Control and the hash are kept
 * in `<dir>/.oidc-publisher/<key>.json`, for head() and for whoever configures
 * the web server.
 *
 * Nothing is ever written outside `<dir>`: keys with empty, `.` or `..`
 * segments are refused, and so is a symbolic link on the way to a file (the
 * file itself, if it is a link, is replaced, not followed). `<dir>` itself
 * must exist, as a bucket must.
 */
import { randomBytes } from 'node:crypto';
import { lstat, mkdir, open, readFile, realpath, rename, rm, unlink } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { MAX_DOCUMENT_BYTES, sha256Hex } from '../core/documents.ts';
import type { StoredObject } from '../core/plan.ts';
import { type ErrorCode, OidcPublisherError } from '../errors.ts';
import type { ObjectStore, PutOptions } from './store.ts';

/** The directory, inside the store's directory, that holds the objects' metadata. */
export const METADATA_DIR = '.oidc-publisher';

/** What the metadata file of an object holds. */
export interface FileMetadata {
  contentType: string;
  cacheControl: string;
  sha256: string;
}

/**
 * The path segments of an object key, or STORAGE_ERROR when the key could name
 * something outside the directory or the metadata. Pure.
 */
export function keySegments(key: string): string[] {
  const bad = (why: string) =>
    new OidcPublisherError('STORAGE_ERROR', `object key ${JSON.stringify(key.slice(0, 200))} ${why}`);
  if (key === '') throw bad('is empty');
  // biome-ignore lint/suspicious/noControlCharactersInRegex: refusing them is the point
  if (/[\u0000-\u001f\u007f\\]/.test(key)) throw bad('contains a control character or a backslash');
  const segments = key.split('/');
  if (segments.some((s) => s === '' || s === '.' || s === '..')) {
    throw bad("has an empty, '.' or '..' segment");
  }
  if (segments[0] === METADATA_DIR) throw bad(`is inside ${METADATA_DIR}/`);
  return segments;
}

/** The metadata of an object, parsed from its JSON file; undefined for anything else. Pure. */
export function parseMetadata(text: string): Partial<FileMetadata> {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return {};
  }
  if (!value || typeof value !== 'object' || Array.isArray(value)) return {};
  const v = value as Record<string, unknown>;
  const out: Partial<FileMetadata> = {};
  if (typeof v.contentType === 'string') out.contentType = v.contentType;
  if (typeof v.cacheControl === 'string') out.cacheControl = v.cacheControl;
  if (typeof v.sha256 === 'string') out.sha256 = v.sha256;
  return out;
}

const DENIED = new Set(['EACCES', 'EPERM', 'EROFS']);

function fileError(op: string, target: string, err: unknown): OidcPublisherError {
  if (err instanceof OidcPublisherError) return err;
  const code = (err as { code?: string } | undefined)?.code;
  const kind: ErrorCode = code && DENIED.has(code) ? 'STORAGE_ACCESS_DENIED' : 'STORAGE_ERROR';
  return new OidcPublisherError(kind, `${op} ${target}: ${code ?? (err as Error)?.message ?? String(err)}`, {
    cause: err,
  });
}

function isMissing(err: unknown): boolean {
  const code = (err as { code?: string } | undefined)?.code;
  return code === 'ENOENT' || code === 'ENOTDIR';
}

export class FileStore implements ObjectStore {
  readonly describe: string;
  readonly #dir: string;

  constructor(dir: string) {
    this.#dir = resolve(dir);
    this.describe = `file://${this.#dir}`;
  }

  /** The real path of the store's directory; STORAGE_BUCKET_NOT_FOUND when it does not exist. */
  async #root(): Promise<string> {
    try {
      const root = await realpath(this.#dir);
      if (!(await lstat(root)).isDirectory())
        throw Object.assign(new Error('not a directory'), { code: 'ENOTDIR' });
      return root;
    } catch (err) {
      if (isMissing(err)) {
        throw new OidcPublisherError(
          'STORAGE_BUCKET_NOT_FOUND',
          `${this.describe}: the directory does not exist (or is not a directory)`,
          { cause: err },
        );
      }
      throw fileError('OPEN', this.describe, err);
    }
  }

  /**
   * The directory that holds `segments`' last one, walked from the root without
   * following links; created when `create`, else undefined when missing.
   */
  async #parent(root: string, segments: readonly string[], create: boolean): Promise<string | undefined> {
    let dir = root;
    for (const segment of segments.slice(0, -1)) {
      dir = join(dir, segment);
      let info: Awaited<ReturnType<typeof lstat>> | undefined;
      try {
        info = await lstat(dir);
      } catch (err) {
        if (!isMissing(err)) throw err;
      }
      if (!info) {
        if (!create) return undefined;
        try {
          await mkdir(dir, { mode: 0o755 });
        } catch (err) {
          if ((err as { code?: string }).code !== 'EEXIST') throw err;
        }
        info = await lstat(dir);
      }
      if (info.isSymbolicLink() || !info.isDirectory()) {
        throw new OidcPublisherError(
          'STORAGE_ERROR',
          `${dir} is ${info.isSymbolicLink() ? 'a symbolic link' : 'not a directory'}: refusing to write through it`,
        );
      }
    }
    return dir;
  }

  /** The file of an object (`<dir>/<key>`) or of its metadata (`<dir>/.oidc-publisher/<key>.json`). */
  async #path(key: string, meta: boolean, create: boolean): Promise<string | undefined> {
    const segments = keySegments(key);
    const root = await this.#root();
    const path = meta ? [METADATA_DIR, ...segments.slice(0, -1), `${segments.at(-1)}.json`] : segments;
    const parent = await this.#parent(root, path, create);
    return parent === undefined ? undefined : join(parent, path.at(-1) ?? '');
  }

  /** A regular file's bytes (at most `limit`), or undefined when missing, a link or too large. */
  async #read(path: string, limit: number): Promise<Buffer | undefined> {
    let info: Awaited<ReturnType<typeof lstat>>;
    try {
      info = await lstat(path);
    } catch (err) {
      if (isMissing(err)) return undefined;
      throw err;
    }
    if (!info.isFile() || info.size > limit) return undefined;
    return readFile(path);
  }

  async #write(path: string, body: Buffer, mode: number): Promise<void> {
    const temp = join(dirname(path), `.${basename(path)}.${randomBytes(6).toString('hex')}.tmp`);
    const fh = await open(temp, 'wx', mode);
    try {
      await fh.writeFile(body);
      await fh.sync();
    } catch (err) {
      await fh.close();
      await unlink(temp).catch(() => {});
      throw err;
    }
    await fh.close();
    try {
      await rename(temp, path);
    } catch (err) {
      await unlink(temp).catch(() => {});
      throw err;
    }
  }

  async head(key: string): Promise<StoredObject | undefined> {
    const target = `${this.describe}/${key}`;
    try {
      const file = await this.#path(key, false, false);
      if (file === undefined) return undefined;
      let info: Awaited<ReturnType<typeof lstat>>;
      try {
        info = await lstat(file);
      } catch (err) {
        if (isMissing(err)) return undefined;
        throw err;
      }
      const out: StoredObject = {};
      // The hash of the bytes really there, not of what the metadata says: an edited file is rewritten.
      const body = info.isFile() ? await this.#read(file, MAX_DOCUMENT_BYTES * 2) : undefined;
      if (body) out.sha256 = sha256Hex(body);
      const metaFile = await this.#path(key, true, false);
      const metaText = metaFile ? await this.#read(metaFile, 64 * 1024) : undefined;
      const meta = metaText ? parseMetadata(metaText.toString('utf8')) : {};
      if (meta.contentType) out.contentType = meta.contentType;
      if (meta.cacheControl) out.cacheControl = meta.cacheControl;
      return out;
    } catch (err) {
      throw fileError('HEAD', target, err);
    }
  }

  async get(key: string): Promise<Buffer | undefined> {
    try {
      const file = await this.#path(key, false, false);
      return file === undefined ? undefined : await this.#read(file, MAX_DOCUMENT_BYTES * 2);
    } catch (err) {
      throw fileError('GET', `${this.describe}/${key}`, err);
    }
  }

  async put(key: string, body: Buffer, opts: PutOptions): Promise<void> {
    try {
      const file = await this.#path(key, false, true);
      const metaFile = await this.#path(key, true, true);
      if (!file || !metaFile) throw new Error('unreachable: parent directories are created');
      await this.#write(file, body, 0o644);
      const meta: FileMetadata = {
        contentType: opts.contentType,
        cacheControl: opts.cacheControl,
        sha256: opts.sha256,
      };
      await this.#write(metaFile, Buffer.from(`${JSON.stringify(meta)}\n`), 0o644);
    } catch (err) {
      throw fileError('PUT', `${this.describe}/${key}`, err);
    }
  }

  async delete(key: string): Promise<void> {
    try {
      for (const meta of [false, true]) {
        const file = await this.#path(key, meta, false);
        if (file) await rm(file, { force: true });
      }
    } catch (err) {
      throw fileError('DELETE', `${this.describe}/${key}`, err);
    }
  }

  close(): void {}
}

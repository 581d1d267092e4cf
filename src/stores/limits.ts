/**
 * Bounds on what a storage endpoint can make the operator do: every call has
 * one deadline, retries included, and no response body is read past a size
 * limit (the SDKs would otherwise read a whole error body into memory, however
 * large).
 */
import { Transform, type TransformCallback } from 'node:stream';
import { MAX_DOCUMENT_BYTES } from '../core/documents.ts';
import { OidcPublisherError } from '../errors.ts';

/**
 * The largest response body read from storage: a published document is at most
 * MAX_DOCUMENT_BYTES, an error body a few hundred bytes.
 */
export const MAX_STORAGE_RESPONSE_BYTES = 2 * MAX_DOCUMENT_BYTES;

export function tooLarge(limit: number): OidcPublisherError {
  return new OidcPublisherError(
    'STORAGE_ERROR',
    `the storage endpoint sent a response body larger than ${limit} bytes; it was not read further`,
  );
}

/** A pass-through stream that fails (and destroys what feeds it, when piped with pipeline) past `limit` bytes. */
export function limitStream(limit = MAX_STORAGE_RESPONSE_BYTES): Transform {
  let seen = 0;
  return new Transform({
    transform(chunk: Buffer | string, _encoding: BufferEncoding, callback: TransformCallback) {
      seen += typeof chunk === 'string' ? Buffer.byteLength(chunk) : chunk.length;
      if (seen > limit) callback(tooLarge(limit));
      else callback(null, chunk);
    },
  });
}

/** Reads a stream whole, failing past `limit` bytes (and destroying the stream). */
export async function readLimited(
  stream: NodeJS.ReadableStream | undefined,
  limit = MAX_STORAGE_RESPONSE_BYTES,
): Promise<Buffer> {
  if (!stream) return Buffer.alloc(0);
  const chunks: Buffer[] = [];
  let seen = 0;
  try {
    for await (const chunk of stream) {
      const b = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
      seen += b.length;
      if (seen > limit) throw tooLarge(limit);
      chunks.push(b);
    }
  } finally {
    // Breaking out of for await destroys a Readable; make sure of it for any stream.
    const s = stream as { destroy?: () => void; readableEnded?: boolean };
    if (seen > limit && typeof s.destroy === 'function') s.destroy();
  }
  return Buffer.concat(chunks);
}

/**
 * Runs `fn` with an AbortSignal and rejects with STORAGE_UNREACHABLE once
 * `timeoutMs` has passed, whether or not the SDK honours the signal.
 */
export async function withDeadline<T>(
  timeoutMs: number,
  where: string,
  fn: (signal: AbortSignal) => Promise<T>,
): Promise<T> {
  const controller = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      const err = new OidcPublisherError(
        'STORAGE_UNREACHABLE',
        `${where}: no complete answer within ${timeoutMs} ms`,
      );
      controller.abort(err);
      reject(err);
    }, timeoutMs);
  });
  const call = fn(controller.signal);
  // The call may still reject after the deadline; that rejection is already answered.
  call.catch(() => {});
  try {
    return await Promise.race([call, expired]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * An error of ours found in `err`'s cause chain, as the error of `where` (the operation and object):
 * its message is prefixed with `where` unless it already starts with it (a deadline names it).
 */
export function ownErrorAt(where: string, err: unknown): OidcPublisherError | undefined {
  const own = ownError(err);
  if (!own) return undefined;
  const message = own.message.startsWith(`${where}: `) ? own.message : `${where}: ${own.message}`;
  return new OidcPublisherError(own.code, message, { cause: err });
}

/** The first OidcPublisherError in an error's cause chain (an SDK may wrap the one a stream failed with). */
export function ownError(err: unknown): OidcPublisherError | undefined {
  let e: unknown = err;
  for (let depth = 0; depth < 8 && e; depth++) {
    if (e instanceof OidcPublisherError) return e;
    e = (e as { cause?: unknown }).cause;
  }
  return undefined;
}

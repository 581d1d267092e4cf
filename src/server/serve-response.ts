/**
 * What `oidc-publisher serve` answers, decided without I/O: the request's
 * host, method, path and If-None-Match, and the documents held (if any), give
 * the publisher, status, headers and body. Each publisher has exactly two
 * paths, on its issuer's host or on any host; only GET and HEAD are allowed on
 * them; nothing is served before a validated document is held.
 */
import type { RenderedObject } from '../core/plan.ts';
import { DISCOVERY_PATH, JWKS_PATH } from '../core/spec.ts';

export type Route = 'discovery' | 'jwks' | 'other';

export interface ServePaths {
  discovery: string;
  jwks: string;
}

export interface ServeRequest {
  method: string;
  /** The request target as sent: path and optional query. */
  url: string;
  ifNoneMatch?: string | undefined;
}

export interface ServeResponse {
  status: number;
  route: Route;
  headers: Record<string, string>;
  /** Undefined for HEAD, 304 and the like. */
  body?: Buffer;
}

/** The served documents, by role: what prepare rendered from the last good fetch. */
export type HeldDocuments = Readonly<Record<'discovery' | 'jwks', RenderedObject>>;

/** Problems with a --path-prefix: empty, or a path like /issuer/cluster-a without a trailing slash. */
export function pathPrefixProblems(prefix: string): string[] {
  if (prefix === '' || prefix === '/') return [];
  const problems: string[] = [];
  if (!prefix.startsWith('/')) problems.push('--path-prefix: must start with a slash');
  if (prefix.includes('//')) problems.push('--path-prefix: must not contain empty segments (//)');
  if (/[?#%\s\\]/.test(prefix)) {
    problems.push('--path-prefix: must not contain ?, #, %, a backslash or white space');
  }
  if (
    prefix
      .split('/')
      .slice(1)
      .some((s) => s === '.' || s === '..')
  ) {
    problems.push("--path-prefix: must not contain '.' or '..' segments");
  }
  if (prefix.length > 512) problems.push('--path-prefix: longer than 512 characters');
  return problems;
}

/** The two paths under a prefix ('' or '/x', a trailing slash dropped). */
export function servePaths(prefix: string): ServePaths {
  const p = prefix.replace(/\/+$/, '');
  return { discovery: `${p}/${DISCOVERY_PATH}`, jwks: `${p}/${JWKS_PATH}` };
}

/** The strong entity tag of a document: its SHA-256, quoted. */
export function entityTag(object: Pick<RenderedObject, 'sha256'>): string {
  return `"${object.sha256}"`;
}

/** Whether an If-None-Match header matches `etag` (weak comparison, as RFC 9110 13.1.2 asks). */
export function noneMatchHits(header: string | undefined, etag: string): boolean {
  if (header === undefined) return false;
  const value = header.trim();
  if (value === '*') return true;
  const opaque = (tag: string) => (tag.startsWith('W/') ? tag.slice(2) : tag);
  return value
    .split(',')
    .map((t) => opaque(t.trim()))
    .includes(opaque(etag));
}

const PLAIN = { 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-store' };

function text(status: number, route: Route, message: string, head: boolean, extra = {}): ServeResponse {
  const body = Buffer.from(`${message}\n`);
  return {
    status,
    route,
    headers: { ...PLAIN, 'content-length': String(body.length), ...extra },
    ...(head ? {} : { body }),
  };
}

/** The host name a request names in its Host header: lower case, without port or trailing dot. */
export function requestHostName(header: string | undefined): string | undefined {
  if (header === undefined) return undefined;
  const value = header.trim().toLowerCase();
  const m = /^(\[[0-9a-f:.]+\]|[^:[\]]+)(?::\d*)?$/.exec(value);
  return m?.[1]?.replace(/\.$/, '');
}

/** Where a publisher answers: on its host (any host when absent), at its two paths. */
export interface Routed {
  host?: string | undefined;
  paths: ServePaths;
}

/** The index of the publisher that answers `url` on `hostHeader`, or undefined (404). */
export function selectPublisher(
  publishers: readonly Routed[],
  hostHeader: string | undefined,
  url: string,
): number | undefined {
  const q = url.indexOf('?');
  const path = q < 0 ? url : url.slice(0, q);
  const host = requestHostName(hostHeader);
  const i = publishers.findIndex(
    (p) => (p.host === undefined || p.host === host) && (path === p.paths.discovery || path === p.paths.jwks),
  );
  return i < 0 ? undefined : i;
}

/** The answer to a request no publisher serves: an unknown host or path. */
export function notFound(method: string): ServeResponse {
  return text(404, 'other', 'not found', method === 'HEAD');
}

/** The Strict-Transport-Security value for a max-age, or undefined for none (0). */
export function hstsHeader(maxAgeMs: number): string | undefined {
  return maxAgeMs > 0 ? `max-age=${Math.floor(maxAgeMs / 1000)}` : undefined;
}

export function respond(
  req: ServeRequest,
  paths: ServePaths,
  held: HeldDocuments | undefined,
): ServeResponse {
  const q = req.url.indexOf('?');
  const path = q < 0 ? req.url : req.url.slice(0, q);
  const route: Route = path === paths.discovery ? 'discovery' : path === paths.jwks ? 'jwks' : 'other';
  const head = req.method === 'HEAD';
  if (route === 'other') return text(404, route, 'not found', head);
  if (req.method !== 'GET' && !head) {
    return text(405, route, 'method not allowed', false, { allow: 'GET, HEAD' });
  }
  // Never an upstream error, never an unvalidated document: nothing until the first good fetch.
  if (!held)
    return text(503, route, 'the issuer documents have not been fetched yet', head, { 'retry-after': '5' });
  const doc = held[route];
  const etag = entityTag(doc);
  if (noneMatchHits(req.ifNoneMatch, etag)) {
    return { status: 304, route, headers: { etag, 'cache-control': doc.cacheControl } };
  }
  return {
    status: 200,
    route,
    headers: {
      'content-type': doc.contentType,
      'content-length': String(doc.body.length),
      'cache-control': doc.cacheControl,
      etag,
      'x-content-type-options': 'nosniff',
    },
    ...(head ? {} : { body: doc.body }),
  };
}

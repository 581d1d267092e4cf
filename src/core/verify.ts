/**
 * The Verified condition: does the public issuer serve, to an anonymous
 * reader, exactly what was published? Pure: the reader's observations come in,
 * the condition goes out. The reads themselves are in sources/relying-party.ts.
 */
import { Reason } from '../api/conditions.ts';
import type { ConditionStatus } from './conditions.ts';
import type { RenderedObject } from './plan.ts';

/** What one anonymous GET saw. */
export interface Fetched {
  url: string;
  /** HTTP status; absent when no answer came (network error, timeout). */
  status?: number;
  contentType?: string;
  cacheControl?: string;
  sha256?: string;
  /** The body, parsed, when it was JSON. */
  json?: unknown;
  /** Why no answer came. */
  error?: string;
}

export interface Observation {
  discovery: Fetched;
  /** Absent when the discovery document gave no jwks_uri to follow. */
  jwks?: Fetched;
  latencyMs: number;
}

export interface Verdict {
  status: ConditionStatus;
  reason: string;
  message: string;
}

/** The media type without parameters, lower case. */
function mediaType(value: string | undefined): string {
  return (value ?? '').split(';')[0]?.trim().toLowerCase() ?? '';
}

function unreachable(f: Fetched): string | undefined {
  if (f.error) return `GET ${f.url}: ${f.error}`;
  if (f.status !== 200) {
    const hint =
      f.status === 403 || f.status === 401
        ? ': the bucket does not allow anonymous reads of this object'
        : f.status === 404
          ? ': the object is not where relying parties look for it'
          : '';
    return `GET ${f.url}: HTTP ${f.status}${hint}`;
  }
  return undefined;
}

/** Whether `url` is the storage object `key` itself: its path ends with the key. */
function addressesKey(url: string, key: string): boolean {
  try {
    return decodeURIComponent(new URL(url).pathname).endsWith(`/${key}`);
  } catch {
    return false;
  }
}

/**
 * Whether an anonymous reader got exactly these objects, bytes and headers, at URLs
 * that address their storage keys: then storage holds them and a sync needs neither a
 * HEAD nor a write. A public URL that does not end with the key (a CDN origin path, an
 * issuer published elsewhere) proves nothing about the key, so storage is asked.
 */
export function servedAsRendered(objects: readonly RenderedObject[], seen: Observation): boolean {
  return objects.every((o) => {
    const f = o.role === 'discovery' ? seen.discovery : seen.jwks;
    return (
      f !== undefined &&
      addressesKey(o.url, o.key) &&
      f.url === o.url &&
      f.status === 200 &&
      f.sha256 === o.sha256 &&
      mediaType(f.contentType) === mediaType(o.contentType) &&
      f.cacheControl === o.cacheControl
    );
  });
}

/**
 * Judges what an anonymous reader saw against the objects just published.
 * `objects` holds the JWKS and the discovery document as prepare() rendered them.
 */
export function judge(
  issuerURL: string,
  objects: readonly RenderedObject[],
  seen: Observation,
  slowMs: number,
): Verdict {
  const discovery = objects.find((o) => o.role === 'discovery');
  const jwks = objects.find((o) => o.role === 'jwks');
  const fail = (reason: string, message: string): Verdict => ({ status: 'False', reason, message });
  const d = seen.discovery;
  const dUnreachable = unreachable(d);
  if (dUnreachable) return fail(Reason.NotReachable, dUnreachable);
  const doc = d.json as { issuer?: unknown; jwks_uri?: unknown } | undefined;
  if (!doc || typeof doc !== 'object') {
    return fail(Reason.ContentMismatch, `GET ${d.url}: not a JSON object`);
  }
  if (doc.issuer !== issuerURL) {
    return fail(
      Reason.IssuerMismatch,
      `GET ${d.url}: issuer is ${JSON.stringify(doc.issuer)}, relying parties require exactly ${JSON.stringify(issuerURL)}`,
    );
  }
  const mismatches: string[] = [];
  if (discovery && d.sha256 !== discovery.sha256) {
    mismatches.push(`${d.url} serves other bytes than were published (sha256 ${d.sha256})`);
  }
  const j = seen.jwks;
  if (!j) return fail(Reason.ContentMismatch, `${d.url} names no jwks_uri`);
  const jUnreachable = unreachable(j);
  if (jUnreachable) return fail(Reason.NotReachable, jUnreachable);
  if (jwks && j.sha256 !== jwks.sha256) {
    mismatches.push(`${j.url} serves other bytes than were published (sha256 ${j.sha256})`);
  }
  if (mismatches.length > 0) {
    return fail(
      Reason.ContentMismatch,
      `${mismatches.join('; ')}; the next sync rewrites both objects (a CDN cache may also serve old bytes until it expires)`,
    );
  }
  const wrongTypes: string[] = [];
  if (discovery && mediaType(d.contentType) !== mediaType(discovery.contentType)) {
    wrongTypes.push(
      `${d.url} is served as ${JSON.stringify(d.contentType ?? '')}, not ${discovery.contentType}`,
    );
  }
  if (jwks && mediaType(j.contentType) !== mediaType(jwks.contentType)) {
    wrongTypes.push(`${j.url} is served as ${JSON.stringify(j.contentType ?? '')}, not ${jwks.contentType}`);
  }
  if (wrongTypes.length > 0) {
    return fail(Reason.WrongContentType, wrongTypes.join('; '));
  }
  const latency = Math.round(seen.latencyMs);
  if (latency > slowMs) {
    return fail(
      Reason.TooSlow,
      `the public issuer answered correctly but took ${latency} ms (more than ${slowMs} ms; AWS STS gives up after 5 s)`,
    );
  }
  return {
    status: 'True',
    reason: Reason.Verified,
    message: `an anonymous reader of ${issuerURL} gets exactly the published documents`,
  };
}

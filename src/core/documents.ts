/**
 * The two issuer documents: validation of what the source served, and the
 * deterministic bytes that are published. Pure: no I/O, no clock.
 */
import { createHash } from 'node:crypto';
import { OidcPublisherError } from '../errors.ts';

/** A public signature key as published: only public parameters, in a fixed order. */
export interface PublicJwk {
  kty: 'RSA' | 'EC' | 'OKP';
  kid: string;
  alg: string;
  use?: 'sig';
  n?: string;
  e?: string;
  crv?: string;
  x?: string;
  y?: string;
}

export interface ValidatedDiscovery {
  issuer: string;
  jwksURI: string;
  /** The source document, parsed. */
  document: Record<string, unknown>;
}

export const MAX_DOCUMENT_BYTES = 1024 * 1024;

/** At most this many keys in a source's JWKS, and in the keys of several sources merged (core/merge.ts). */
export const MAX_SOURCE_KEYS = 100;

/**
 * How deep a discovery document may nest. Real ones are an object of strings and arrays of
 * strings (depth 2); rendering walks the document recursively, so a deeper one is refused
 * before it can exhaust the stack.
 */
export const MAX_DISCOVERY_DEPTH = 32;

/** Parameters that only private or symmetric keys carry. */
const PRIVATE_PARAMETERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k'] as const;

const ALGORITHMS: Record<PublicJwk['kty'], readonly string[]> = {
  RSA: ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512'],
  EC: ['ES256', 'ES384', 'ES512'],
  OKP: ['EdDSA', 'Ed25519'],
};

const CURVES: Record<string, { kty: 'EC' | 'OKP'; bytes: number }> = {
  'P-256': { kty: 'EC', bytes: 32 },
  'P-384': { kty: 'EC', bytes: 48 },
  'P-521': { kty: 'EC', bytes: 66 },
  Ed25519: { kty: 'OKP', bytes: 32 },
};

const MIN_RSA_MODULUS_BYTES = 256;
/** 16384 bits: no signing key is larger, and status.keys bounds what it records. */
const MAX_RSA_MODULUS_BYTES = 2048;
/** 64 bits: RSA public exponents are small (65537 in practice). */
const MAX_RSA_EXPONENT_BYTES = 8;
const BASE64URL = /^[A-Za-z0-9_-]+$/;

function invalid(what: string, problems: string[]): OidcPublisherError {
  const shown = problems.slice(0, 5).join('; ');
  const more = problems.length > 5 ? `; and ${problems.length - 5} more` : '';
  return new OidcPublisherError('DOCUMENT_INVALID', `${what}: ${shown}${more}`);
}

function parseObject(what: string, raw: Uint8Array | string): Record<string, unknown> {
  const size = typeof raw === 'string' ? Buffer.byteLength(raw) : raw.byteLength;
  if (size > MAX_DOCUMENT_BYTES) throw invalid(what, [`larger than ${MAX_DOCUMENT_BYTES} bytes`]);
  let value: unknown;
  try {
    value = JSON.parse(typeof raw === 'string' ? raw : Buffer.from(raw).toString('utf8'));
  } catch (err) {
    throw new OidcPublisherError('DOCUMENT_INVALID', `${what}: not valid JSON`, { cause: err });
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw invalid(what, [`expected a JSON object, got ${Array.isArray(value) ? 'an array' : typeof value}`]);
  }
  return value as Record<string, unknown>;
}

/** Whether `value` nests objects or arrays more than `max` levels deep; iterative, so any depth is safe. */
function nestedDeeperThan(value: unknown, max: number): boolean {
  const stack: [unknown, number][] = [[value, 0]];
  for (let item = stack.pop(); item; item = stack.pop()) {
    const [v, depth] = item;
    if (v === null || typeof v !== 'object') continue;
    if (depth >= max) return true;
    for (const child of Object.values(v)) stack.push([child, depth + 1]);
  }
  return false;
}

function isHttpsURL(value: string): boolean {
  try {
    return new URL(value).protocol === 'https:';
  } catch {
    return false;
  }
}

/** Validates the source's /.well-known/openid-configuration. */
export function validateDiscovery(raw: Uint8Array | string): ValidatedDiscovery {
  const what = 'discovery document';
  const doc = parseObject(what, raw);
  if (nestedDeeperThan(doc, MAX_DISCOVERY_DEPTH))
    throw invalid(what, [`nested more than ${MAX_DISCOVERY_DEPTH} levels deep`]);
  const problems: string[] = [];
  const { issuer, jwks_uri: jwksURI } = doc;
  if (typeof issuer !== 'string' || issuer === '') problems.push('"issuer" is missing or not a string');
  else if (!isHttpsURL(issuer))
    problems.push(`"issuer" is not an https URL: ${JSON.stringify(issuer.slice(0, 200))}`);
  if (typeof jwksURI !== 'string' || jwksURI === '') problems.push('"jwks_uri" is missing or not a string');
  for (const field of [
    'response_types_supported',
    'subject_types_supported',
    'id_token_signing_alg_values_supported',
  ]) {
    const v = doc[field];
    if (v !== undefined && !(Array.isArray(v) && v.every((x) => typeof x === 'string'))) {
      problems.push(`"${field}" must be an array of strings`);
    }
  }
  if (problems.length > 0) throw invalid(what, problems);
  return { issuer: issuer as string, jwksURI: jwksURI as string, document: doc };
}

function checkKey(raw: unknown, at: string, problems: string[]): PublicJwk | undefined {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
    problems.push(`${at} is not an object`);
    return undefined;
  }
  const key = raw as Record<string, unknown>;
  const before = problems.length;
  const kid = typeof key.kid === 'string' ? key.kid : undefined;
  const label = kid ? `${at} (kid ${JSON.stringify(kid.slice(0, 100))})` : at;
  const privates = PRIVATE_PARAMETERS.filter((p) => p in key);
  if (privates.length > 0) {
    problems.push(
      `${label} carries private or symmetric key material (${privates.join(', ')}): refusing to publish it`,
    );
    return undefined;
  }
  if (!kid) problems.push(`${label} has no "kid"`);
  else if (kid.length > 256) problems.push(`${label} has a "kid" longer than 256 characters`);
  const kty = key.kty;
  if (kty === 'oct') {
    problems.push(`${label} is a symmetric key (kty "oct"): refusing to publish it`);
    return undefined;
  }
  if (kty !== 'RSA' && kty !== 'EC' && kty !== 'OKP') {
    problems.push(`${label} has unsupported "kty" ${JSON.stringify(kty)}`);
    return undefined;
  }
  const alg = key.alg;
  if (typeof alg !== 'string') problems.push(`${label} has no "alg"`);
  else if (!ALGORITHMS[kty].includes(alg))
    problems.push(`${label} has "alg" ${JSON.stringify(alg)}, not valid for ${kty}`);
  if (key.use !== undefined && key.use !== 'sig')
    problems.push(`${label} has "use" ${JSON.stringify(key.use)}, not "sig"`);
  const b64 = (name: string): string | undefined => {
    const v = key[name];
    if (typeof v !== 'string' || !BASE64URL.test(v)) {
      problems.push(`${label} has no valid base64url "${name}"`);
      return undefined;
    }
    return v;
  };
  const out: PublicJwk = { kty, kid: kid ?? '', alg: typeof alg === 'string' ? alg : '' };
  if (key.use === 'sig') out.use = 'sig';
  if (kty === 'RSA') {
    const n = b64('n');
    const e = b64('e');
    const modulus = n ? Buffer.from(n, 'base64url').length : 0;
    if (n && modulus < MIN_RSA_MODULUS_BYTES)
      problems.push(`${label} has an RSA modulus shorter than 2048 bits`);
    if (modulus > MAX_RSA_MODULUS_BYTES) problems.push(`${label} has an RSA modulus longer than 16384 bits`);
    if (e && Buffer.from(e, 'base64url').length > MAX_RSA_EXPONENT_BYTES)
      problems.push(`${label} has an RSA public exponent longer than 64 bits`);
    if (n) out.n = n;
    if (e) out.e = e;
  } else {
    const crv = key.crv;
    const curve = typeof crv === 'string' ? CURVES[crv] : undefined;
    if (!curve || curve.kty !== kty)
      problems.push(`${label} has unsupported "crv" ${JSON.stringify(crv)} for ${kty}`);
    else out.crv = crv as string;
    // A coordinate is exactly as long as the curve's field (RFC 7518 6.2.1.2, RFC 8037 2).
    const coordinate = (name: 'x' | 'y'): void => {
      const v = b64(name);
      if (!v) return;
      if (curve && curve.kty === kty && Buffer.from(v, 'base64url').length !== curve.bytes)
        problems.push(`${label} has a "${name}" that is not ${curve.bytes} bytes long, as ${crv} needs`);
      out[name] = v;
    };
    coordinate('x');
    if (kty === 'EC') coordinate('y');
  }
  return problems.length === before ? out : undefined;
}

/**
 * The checks every published key passes, for one key outside a JWKS document: a key retained
 * from an earlier sync passes the same ones as the source's keys.
 */
export function checkPublicKey(raw: unknown, at: string): { key: PublicJwk } | { problems: string[] } {
  const problems: string[] = [];
  const key = checkKey(raw, at, problems);
  return key && problems.length === 0 ? { key } : { problems };
}

/** Validates the source's /openid/v1/jwks: a non-empty set of public signature keys with unique kids. */
export function validateJwks(raw: Uint8Array | string): PublicJwk[] {
  const what = 'JWKS';
  const doc = parseObject(what, raw);
  if (!Array.isArray(doc.keys)) throw invalid(what, ['"keys" is missing or not an array']);
  if (doc.keys.length === 0)
    throw invalid(what, ['"keys" is empty: there would be nothing to verify tokens with']);
  if (doc.keys.length > MAX_SOURCE_KEYS)
    throw invalid(what, [`${doc.keys.length} keys; at most ${MAX_SOURCE_KEYS} are accepted`]);
  const problems: string[] = [];
  const keys: PublicJwk[] = [];
  const seen = new Set<string>();
  doc.keys.forEach((raw, i) => {
    const key = checkKey(raw, `keys[${i}]`, problems);
    if (!key) return;
    if (seen.has(key.kid)) problems.push(`keys[${i}] repeats kid ${JSON.stringify(key.kid)}`);
    seen.add(key.kid);
    keys.push(key);
  });
  if (problems.length > 0) throw invalid(what, problems);
  return keys;
}

const KEY_FIELDS = ['kty', 'kid', 'use', 'alg', 'crv', 'n', 'e', 'x', 'y'] as const;

/** The JWKS bytes: keys sorted by kid, public fields only, in a fixed order. */
export function renderJwks(keys: readonly PublicJwk[]): Buffer {
  const sorted = [...keys].sort((a, b) => (a.kid < b.kid ? -1 : a.kid > b.kid ? 1 : 0));
  const out = sorted.map((k) => {
    const o: Record<string, string> = {};
    for (const f of KEY_FIELDS) {
      const v = k[f];
      if (v !== undefined) o[f] = v;
    }
    return o;
  });
  return Buffer.from(`${JSON.stringify({ keys: out })}\n`);
}

function canonical(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(canonical);
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>).sort(([a], [b]) =>
      a < b ? -1 : a > b ? 1 : 0,
    );
    return Object.fromEntries(entries.map(([k, v]) => [k, canonical(v)]));
  }
  return value;
}

/**
 * The discovery document bytes: the source document with `jwks_uri` set to the
 * public one; issuer first, jwks_uri second, every other field sorted.
 */
export function renderDiscovery(source: ValidatedDiscovery, jwksURI: string): Buffer {
  const { issuer: _issuer, jwks_uri: _jwks, ...rest } = source.document;
  const doc = { issuer: source.issuer, jwks_uri: jwksURI, ...(canonical(rest) as Record<string, unknown>) };
  return Buffer.from(`${JSON.stringify(doc)}\n`);
}

export function sha256Hex(body: Uint8Array): string {
  return createHash('sha256').update(body).digest('hex');
}

/** The members of each key type that identify its key material (RFC 7638 3.2), in lexicographic order. */
const THUMBPRINT_MEMBERS: Record<PublicJwk['kty'], readonly string[]> = {
  RSA: ['e', 'kty', 'n'],
  EC: ['crv', 'kty', 'x', 'y'],
  OKP: ['crv', 'kty', 'x'],
};

/**
 * The JWK thumbprint (RFC 7638, SHA-256, base64url) of a key's material: what identifies a key,
 * where a kid is only a label its issuer chose. `kid`, `alg` and `use` are not part of it.
 * Undefined when a member it needs is missing or not a string (a status record is input).
 */
export function jwkThumbprint(jwk: object): string | undefined {
  const o = jwk as Record<string, unknown>;
  const kty = Object.hasOwn(o, 'kty') ? o.kty : undefined;
  if (kty !== 'RSA' && kty !== 'EC' && kty !== 'OKP') return undefined;
  const members = THUMBPRINT_MEMBERS[kty];
  const values: Record<string, string> = {};
  for (const m of members) {
    const v = Object.hasOwn(o, m) ? o[m] : undefined;
    if (typeof v !== 'string') return undefined;
    values[m] = v;
  }
  // JSON.stringify keeps insertion order: the members were added in lexicographic order.
  return createHash('sha256').update(JSON.stringify(values)).digest('base64url');
}

/**
 * The GCS credentials a Secret may hold: a service account key, and nothing
 * else google-auth-library understands. Other types make the library act on
 * the Secret writer's behalf: an external_account reads a file or URL of
 * their choosing (the operator's own ServiceAccount token, a metadata
 * address) and POSTs what it read to their token_url; authorized_user and
 * impersonated_service_account send tokens to endpoints named in the JSON.
 * Only the fields a key needs are passed on, with Google's token endpoint.
 */
import { OidcPublisherError } from '../errors.ts';

/** The token endpoint of every Google service account key. */
export const GOOGLE_TOKEN_URI = 'https://oauth2.googleapis.com/token';

export interface ServiceAccountKey {
  type: 'service_account';
  client_email: string;
  private_key: string;
  token_uri: typeof GOOGLE_TOKEN_URI;
  project_id?: string;
  private_key_id?: string;
  client_id?: string;
}

/** Parses a service account key from a Secret's JSON text; the message never contains the key. */
export function parseServiceAccountKey(text: string): ServiceAccountKey {
  const invalid = (why: string, cause?: unknown) =>
    new OidcPublisherError(
      'STORAGE_CREDENTIALS_INVALID',
      `not a Google service account key: ${why}`,
      cause === undefined ? undefined : { cause },
    );
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw invalid('not JSON', err);
  }
  if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) throw invalid('not a JSON object');
  const json = parsed as Record<string, unknown>;
  const field = (name: string): unknown => (Object.hasOwn(json, name) ? json[name] : undefined);
  const type = field('type');
  if (type !== 'service_account') {
    throw invalid(
      `type is ${typeof type === 'string' ? JSON.stringify(type.slice(0, 64)) : 'missing'}; only "service_account" keys are accepted (external_account, authorized_user and impersonation configurations would make the operator read files or URLs and send tokens where the JSON says)`,
    );
  }
  const tokenURI = field('token_uri');
  if (tokenURI !== undefined && tokenURI !== GOOGLE_TOKEN_URI) {
    throw invalid(`token_uri must be ${GOOGLE_TOKEN_URI}`);
  }
  const universe = field('universe_domain');
  if (universe !== undefined && universe !== 'googleapis.com') {
    throw invalid('universe_domain must be googleapis.com');
  }
  const clientEmail = field('client_email');
  const privateKey = field('private_key');
  if (typeof clientEmail !== 'string' || clientEmail === '') throw invalid('client_email is missing');
  if (typeof privateKey !== 'string' || !privateKey.includes('PRIVATE KEY')) {
    throw invalid('private_key is missing or not a PEM private key');
  }
  const key: ServiceAccountKey = {
    type: 'service_account',
    client_email: clientEmail,
    private_key: privateKey,
    token_uri: GOOGLE_TOKEN_URI,
  };
  for (const name of ['project_id', 'private_key_id', 'client_id'] as const) {
    const v = field(name);
    if (typeof v === 'string') key[name] = v;
  }
  return key;
}

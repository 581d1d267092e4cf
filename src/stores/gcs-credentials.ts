/**
 * The GCS credentials a Secret may hold: a service account key, or an
 * external_account (workload identity federation) in one shape only.
 *
 * google-auth-library acts on what the JSON says: an external_account reads
 * a file, URL or command output of the writer's choosing (the operator's own
 * ServiceAccount token, a metadata address) and POSTs it to the JSON's
 * token_url, then sends the federated token to its impersonation URL;
 * authorized_user and impersonated_service_account send tokens to endpoints
 * named in the JSON. So a key is passed on with Google's token endpoint, and
 * an external_account only with Google's STS, Google's IAM credentials API, a
 * token file inside the directories the operator's administrator allows
 * (--gcs-token-file-dirs), and no other member: every member the library
 * reads (camelCase aliases included) is either checked here or refused.
 */
import { posix } from 'node:path';
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

/** The token exchange endpoint of workload identity federation (Google's STS, global). */
export const GOOGLE_STS_TOKEN_URL = 'https://sts.googleapis.com/v1/token';

/** Where a federated token is exchanged for a Google service account's access token. */
const IMPERSONATION_URL =
  /^https:\/\/iamcredentials\.googleapis\.com\/v1\/projects\/-\/serviceAccounts\/[a-z0-9][a-z0-9._-]{0,99}@[a-z0-9][a-z0-9.-]{0,99}\.gserviceaccount\.com:generateAccessToken$/;

/** A workload identity pool provider (workforce pools are for people, not workloads). */
const POOL_AUDIENCE =
  /^\/\/iam\.googleapis\.com\/projects\/[0-9]{1,20}\/locations\/global\/workloadIdentityPools\/[a-z0-9-]{1,63}\/providers\/[a-z0-9-]{1,63}$/;

const SUBJECT_TOKEN_TYPES = [
  'urn:ietf:params:oauth:token-type:jwt',
  'urn:ietf:params:oauth:token-type:id_token',
];

/** The members an external_account may have; any other (camelCase aliases included) is refused. */
const EXTERNAL_ACCOUNT_MEMBERS = new Set([
  'type',
  'audience',
  'subject_token_type',
  'token_url',
  'credential_source',
  'service_account_impersonation_url',
  'service_account_impersonation',
  'universe_domain',
  'token_info_url',
]);

/** The token_info_url some tools write: Google's STS introspection, never passed on (the library does not call it). */
const GOOGLE_STS_INTROSPECT_URL = 'https://sts.googleapis.com/v1/introspect';

export interface ExternalAccountConfig {
  type: 'external_account';
  audience: string;
  subject_token_type: string;
  token_url: typeof GOOGLE_STS_TOKEN_URL;
  credential_source: {
    file: string;
    format: { type: 'text' } | { type: 'json'; subject_token_field_name: string };
  };
  service_account_impersonation_url?: string;
  service_account_impersonation?: { token_lifetime_seconds: number };
  universe_domain: 'googleapis.com';
}

export type GcsCredentials = ServiceAccountKey | ExternalAccountConfig;

type Invalid = (why: string, cause?: unknown) => OidcPublisherError;

function parseObject(text: string, invalid: Invalid): Record<string, unknown> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw invalid('not JSON', err);
  }
  if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) throw invalid('not a JSON object');
  return parsed as Record<string, unknown>;
}

function own(json: Record<string, unknown>, name: string): unknown {
  return Object.hasOwn(json, name) ? json[name] : undefined;
}

/** A member name as it may be shown: short, printable. */
function shown(name: string): string {
  return JSON.stringify(name.replace(/[^\x20-\x7e]/g, '?').slice(0, 64));
}

/**
 * Parses the credentials of a GCS Secret: a service account key, or an external_account whose
 * token file lies in one of `tokenFileDirs`. Messages never contain key material or token paths
 * outside what the JSON names.
 */
export function parseGcsCredentials(text: string, tokenFileDirs: readonly string[]): GcsCredentials {
  const invalid: Invalid = (why, cause) =>
    new OidcPublisherError(
      'STORAGE_CREDENTIALS_INVALID',
      `not usable Google credentials: ${why}`,
      cause === undefined ? undefined : { cause },
    );
  const json = parseObject(text, invalid);
  if (own(json, 'type') === 'external_account') return parseExternalAccount(json, tokenFileDirs);
  return parseServiceAccountKey(text);
}

/** Checks an external_account against the one shape that sends a token file to Google only. */
function parseExternalAccount(
  json: Record<string, unknown>,
  tokenFileDirs: readonly string[],
): ExternalAccountConfig {
  const invalid = (why: string) =>
    new OidcPublisherError('STORAGE_CREDENTIALS_INVALID', `external_account refused: ${why}`);
  for (const name of Object.keys(json)) {
    if (!EXTERNAL_ACCOUNT_MEMBERS.has(name)) {
      throw invalid(
        `member ${shown(name)} is not accepted (only ${[...EXTERNAL_ACCOUNT_MEMBERS].join(', ')})`,
      );
    }
  }
  const tokenURL = own(json, 'token_url');
  if (tokenURL !== GOOGLE_STS_TOKEN_URL) throw invalid(`token_url must be ${GOOGLE_STS_TOKEN_URL}`);
  const universe = own(json, 'universe_domain');
  if (universe !== undefined && universe !== 'googleapis.com') {
    throw invalid('universe_domain must be googleapis.com');
  }
  const tokenInfoURL = own(json, 'token_info_url');
  if (tokenInfoURL !== undefined && tokenInfoURL !== GOOGLE_STS_INTROSPECT_URL) {
    throw invalid(`token_info_url must be ${GOOGLE_STS_INTROSPECT_URL} or absent`);
  }
  const audience = own(json, 'audience');
  if (typeof audience !== 'string' || !POOL_AUDIENCE.test(audience)) {
    throw invalid(
      'audience must be a workload identity pool provider, //iam.googleapis.com/projects/<number>/locations/global/workloadIdentityPools/<pool>/providers/<provider>',
    );
  }
  const subjectTokenType = own(json, 'subject_token_type');
  if (typeof subjectTokenType !== 'string' || !SUBJECT_TOKEN_TYPES.includes(subjectTokenType)) {
    throw invalid(`subject_token_type must be one of ${SUBJECT_TOKEN_TYPES.join(', ')}`);
  }
  const config: ExternalAccountConfig = {
    type: 'external_account',
    audience,
    subject_token_type: subjectTokenType,
    token_url: GOOGLE_STS_TOKEN_URL,
    credential_source: parseCredentialSource(own(json, 'credential_source'), tokenFileDirs, invalid),
    universe_domain: 'googleapis.com',
  };
  const impersonationURL = own(json, 'service_account_impersonation_url');
  if (impersonationURL !== undefined) {
    if (typeof impersonationURL !== 'string' || !IMPERSONATION_URL.test(impersonationURL)) {
      throw invalid(
        'service_account_impersonation_url must be https://iamcredentials.googleapis.com/v1/projects/-/serviceAccounts/<email>:generateAccessToken',
      );
    }
    config.service_account_impersonation_url = impersonationURL;
  }
  const impersonation = own(json, 'service_account_impersonation');
  if (impersonation !== undefined) {
    if (!impersonation || typeof impersonation !== 'object' || Array.isArray(impersonation)) {
      throw invalid('service_account_impersonation must be an object');
    }
    const members = impersonation as Record<string, unknown>;
    for (const name of Object.keys(members)) {
      if (name !== 'token_lifetime_seconds') {
        throw invalid(`service_account_impersonation member ${shown(name)} is not accepted`);
      }
    }
    const lifetime = own(members, 'token_lifetime_seconds');
    if (lifetime !== undefined) {
      if (
        typeof lifetime !== 'number' ||
        !Number.isInteger(lifetime) ||
        lifetime < 600 ||
        lifetime > 43_200
      ) {
        throw invalid(
          'service_account_impersonation.token_lifetime_seconds must be a whole number from 600 to 43200',
        );
      }
      if (config.service_account_impersonation_url === undefined) {
        throw invalid('service_account_impersonation without service_account_impersonation_url');
      }
      config.service_account_impersonation = { token_lifetime_seconds: lifetime };
    }
  }
  return config;
}

function parseCredentialSource(
  value: unknown,
  tokenFileDirs: readonly string[],
  invalid: (why: string) => OidcPublisherError,
): ExternalAccountConfig['credential_source'] {
  if (!value || typeof value !== 'object' || Array.isArray(value)) {
    throw invalid('credential_source must be an object with a file');
  }
  const source = value as Record<string, unknown>;
  for (const name of Object.keys(source)) {
    if (name !== 'file' && name !== 'format') {
      throw invalid(
        `credential_source member ${shown(name)} is not accepted: only a file is (no url, executable, environment_id, certificate or headers)`,
      );
    }
  }
  const file = own(source, 'file');
  if (typeof file !== 'string' || file === '') throw invalid('credential_source.file is missing');
  if (
    file.length > 1024 ||
    !file.startsWith('/') ||
    file.endsWith('/') ||
    !/^[A-Za-z0-9._/-]+$/.test(file) ||
    posix.normalize(file) !== file ||
    file.split('/').includes('..')
  ) {
    throw invalid('credential_source.file must be a plain absolute path');
  }
  if (!tokenFileDirs.some((dir) => file.startsWith(`${dir.replace(/\/+$/, '')}/`))) {
    throw invalid(
      tokenFileDirs.length === 0
        ? "credential_source.file: the operator's --gcs-token-file-dirs allows no token files"
        : `credential_source.file must be in ${tokenFileDirs.join(' or ')} (the operator's --gcs-token-file-dirs)`,
    );
  }
  const format = own(source, 'format');
  if (format === undefined) return { file, format: { type: 'text' } };
  if (!format || typeof format !== 'object' || Array.isArray(format)) {
    throw invalid('credential_source.format must be an object');
  }
  const f = format as Record<string, unknown>;
  for (const name of Object.keys(f)) {
    if (name !== 'type' && name !== 'subject_token_field_name') {
      throw invalid(`credential_source.format member ${shown(name)} is not accepted`);
    }
  }
  const type = own(f, 'type') ?? 'text';
  const field = own(f, 'subject_token_field_name');
  if (type === 'text' && field === undefined) return { file, format: { type: 'text' } };
  if (type === 'json' && typeof field === 'string' && /^[A-Za-z0-9_.-]{1,64}$/.test(field)) {
    return { file, format: { type: 'json', subject_token_field_name: field } };
  }
  throw invalid(
    'credential_source.format must be {"type":"text"} or {"type":"json","subject_token_field_name":<name>}',
  );
}

/** Parses a service account key from a Secret's JSON text; the message never contains the key. */
export function parseServiceAccountKey(text: string): ServiceAccountKey {
  const invalid: Invalid = (why, cause) =>
    new OidcPublisherError(
      'STORAGE_CREDENTIALS_INVALID',
      `not a Google service account key: ${why}`,
      cause === undefined ? undefined : { cause },
    );
  const json = parseObject(text, invalid);
  const field = (name: string): unknown => own(json, name);
  const type = field('type');
  if (type !== 'service_account') {
    throw invalid(
      `type is ${typeof type === 'string' ? JSON.stringify(type.slice(0, 64)) : 'missing'}; only "service_account" keys and "external_account" configurations are accepted (authorized_user and impersonation configurations would make the operator send tokens where the JSON says)`,
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

/** Where the kubelet mounts a Pod's own API token: never a place external_account may read from. */
const KUBERNETES_TOKEN_DIRS = ['/var/run/secrets/kubernetes.io', '/run/secrets/kubernetes.io'];

/** The default of --gcs-token-file-dirs: a directory that holds a token only when one is mounted there. */
export const DEFAULT_GCS_TOKEN_FILE_DIR = '/var/run/secrets/oidc-publisher/gcp';

/**
 * Checks the directories of --gcs-token-file-dirs: absolute, plain, not `/`, and neither holding
 * nor inside the operator's own ServiceAccount token directory. Returns the problems found.
 */
export function tokenFileDirProblems(dirs: readonly string[]): string[] {
  const problems: string[] = [];
  for (const dir of dirs) {
    const plain = dir.replace(/\/+$/, '');
    const overlaps = (other: string) =>
      `${plain}/`.startsWith(`${other}/`) || `${other}/`.startsWith(`${plain}/`);
    if (
      !dir.startsWith('/') ||
      posix.normalize(dir) !== dir ||
      dir.split('/').includes('..') ||
      plain === ''
    ) {
      problems.push(
        `--gcs-token-file-dirs: ${JSON.stringify(dir)} is not a plain absolute directory other than /`,
      );
    } else if (KUBERNETES_TOKEN_DIRS.some(overlaps)) {
      problems.push(
        `--gcs-token-file-dirs: ${JSON.stringify(dir)} holds or lies in the operator's own ServiceAccount token directory`,
      );
    }
  }
  return problems;
}

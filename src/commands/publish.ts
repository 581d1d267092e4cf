/**
 * `oidc-publisher publish`: one sync, from the command line, without the CRD or
 * the operator. It reads the two documents through the user's kubeconfig,
 * validates and renders them with the operator's core (prepare), and writes
 * what differs with the operator's publish step (publishObjects), so a second
 * run writes nothing. Exit codes: 0 published or up to date, 1 failed (one line
 * with the error code), 2 bad arguments.
 */
import { resolve } from 'node:path';
import { Reason } from '../api/conditions.ts';
import { publishObjects } from '../controller/publish-objects.ts';
import type { DocumentSpec, PlannedWrite, RenderedObject } from '../core/plan.ts';
import { prepare } from '../core/plan.ts';
import { azureAccountName, type StorageTarget } from '../core/spec.ts';
import { standaloneSpec } from '../core/standalone.ts';
import { OidcPublisherError } from '../errors.ts';
import { loadKubeAccess } from '../kube/access.ts';
import type { SecretReader } from '../secrets.ts';
import { ApiServerSource, type DocumentSource } from '../sources/apiserver.ts';
import { StoreFactory } from '../stores/factory.ts';
import { FileStore } from '../stores/file.ts';
import type { ObjectStore } from '../stores/store.ts';
import { BAD_ARGUMENTS, type CommandIo, type Fail, parseFlags, runCommand } from './args.ts';

const OPTIONS = {
  kubeconfig: { type: 'string' },
  issuer: { type: 'string' },
  to: { type: 'string' },
  'dry-run': { type: 'boolean' },
  'jwks-uri': { type: 'string' },
  'cache-control': { type: 'string' },
  's3-region': { type: 'string' },
  's3-endpoint': { type: 'string' },
  's3-force-path-style': { type: 'boolean' },
  'gcs-endpoint': { type: 'string' },
  'azblob-endpoint': { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

const SOURCE_TIMEOUT_MS = 10_000;
const STORAGE_TIMEOUT_MS = 15_000;

export const PublishExit = {
  /** Published, or storage already held the documents. */
  Ok: 0,
  /** The kubeconfig, the API server, the documents, the issuer or storage failed. */
  Failed: 1,
  /** The arguments are wrong; nothing was read or written. */
  BadArguments: BAD_ARGUMENTS,
} as const;

export function publishUsage(): string {
  return `oidc-publisher publish: publish a cluster's service-account issuer documents once, with the
operator's validation, rendering and compare-before-write, without installing anything in the cluster.

Usage:
  oidc-publisher publish --issuer <https url> --to <target> [--kubeconfig <file>] [flags]

Targets (--to):
  s3://<bucket>/<prefix>              S3 or S3-compatible storage; credentials from the AWS SDK's
                                      default chain (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY,
                                      AWS_PROFILE, SSO, instance or pod identity)
  gs://<bucket>/<prefix>              Google Cloud Storage; Application Default Credentials
  azblob://<account>/<container>/<p>  Azure Blob Storage; DefaultAzureCredential (environment,
                                      workload identity, managed identity, az login)
  file://<dir>                        a directory (which must exist), for a web server to serve:
                                      <dir>/.well-known/openid-configuration and <dir>/openid/v1/jwks,
                                      written atomically; Content-Type and Cache-Control of each file
                                      are kept in <dir>/.oidc-publisher/<path>.json

Flags:
  --issuer <url>            the public issuer; must equal the API server's --service-account-issuer
  --to <target>             where to publish (above)
  --kubeconfig <file>       the cluster to read the documents from (default: $KUBECONFIG,
                            ~/.kube/config, then in-cluster). This is your own kubeconfig and is
                            trusted: exec plugins, token files and client-key files work. (The
                            operator refuses all of those in kubeconfigs it reads from Secrets.)
                            The identity needs only get on the nonResourceURLs
                            /.well-known/openid-configuration and /openid/v1/jwks.
  --dry-run                 print what would be written and why; write nothing
  --jwks-uri <url>          jwks_uri written into the discovery document
                            (default: <issuer>/openid/v1/jwks)
  --cache-control <value>   Cache-Control of the objects (default "public, max-age=300")
  --s3-region <region>      the bucket's region (default $AWS_REGION, then $AWS_DEFAULT_REGION)
  --s3-endpoint <url>       an S3-compatible endpoint (MinIO, Ceph)
  --s3-force-path-style     address the bucket in the URL path
  --gcs-endpoint <url>      a GCS API endpoint (an emulator)
  --azblob-endpoint <url>   the account's blob endpoint (default https://<account>.blob.core.windows.net;
                            an emulator's names the account in its path, as Azurite's
                            https://127.0.0.1:10000/devstoreaccount1)

Keys: publish keeps no state between runs, so it publishes the keys the API server serves now
(the operator also keeps keys that left the API server for spec.keyRetention).

Output: one line per object: "published <object> (<why>) ...", "would publish <object> (<why>) ...",
or "up to date <object> ...", with its sha256 and Content-Type.

Exit codes:
  0  published, or already up to date
  1  failed: one line on stderr with the error code (for example KUBECONFIG_INVALID,
     SOURCE_UNAUTHORIZED, DOCUMENT_INVALID, IssuerMismatch, STORAGE_ACCESS_DENIED). A failure
     before the writes leaves storage untouched; a failed write stops before the discovery
     document, so it never points at a JWKS that is not there.
  2  bad arguments
`;
}

export type PublishTarget = { kind: 'storage'; storage: StorageTarget } | { kind: 'file'; dir: string };

export interface PublishArgs {
  help: false;
  kubeconfig?: string;
  spec: DocumentSpec;
  target: PublishTarget;
  dryRun: boolean;
}

const S3_BUCKET = /^[a-z0-9][a-z0-9.-]*[a-z0-9]$/;
const GCS_BUCKET = /^[a-z0-9][a-z0-9._-]*[a-z0-9]$/;

function isHttpURL(value: string): boolean {
  try {
    const u = new URL(value);
    return (u.protocol === 'https:' || u.protocol === 'http:') && u.hostname !== '';
  } catch {
    return false;
  }
}

/** The bucket and prefix of `<bucket>/<prefix>`. */
function splitBucket(rest: string): { bucket: string; prefix: string } {
  const slash = rest.indexOf('/');
  return slash < 0
    ? { bucket: rest, prefix: '' }
    : { bucket: rest.slice(0, slash), prefix: rest.slice(slash + 1) };
}

function s3BucketProblems(bucket: string): string[] {
  if (bucket.length < 3 || bucket.length > 63 || !S3_BUCKET.test(bucket)) {
    return [`--to: ${JSON.stringify(bucket)} is not an S3 bucket name (3 to 63 of a-z, 0-9, '.', '-')`];
  }
  if (bucket.includes('..') || bucket.includes('.-') || bucket.includes('-.')) {
    return ["--to: an S3 bucket name must not contain '..', '.-' or '-.'"];
  }
  if (/^\d+\.\d+\.\d+\.\d+$/.test(bucket)) return ['--to: an S3 bucket name must not be an IP address'];
  return [];
}

function gcsBucketProblems(bucket: string): string[] {
  if (bucket.length < 3 || bucket.length > 63 || !GCS_BUCKET.test(bucket)) {
    return [`--to: ${JSON.stringify(bucket)} is not a GCS bucket name (3 to 63 of a-z, 0-9, '.', '_', '-')`];
  }
  if (bucket.startsWith('goog')) return ["--to: a GCS bucket name must not start with 'goog'"];
  return [];
}

/**
 * Parses the arguments without I/O: CONFIG_INVALID naming every problem at once.
 * Only AWS_REGION and AWS_DEFAULT_REGION are read from `env`.
 */
export function parsePublishArgs(
  argv: readonly string[],
  env: NodeJS.ProcessEnv,
): { help: true } | PublishArgs {
  const values = parseFlags(argv, OPTIONS);
  if (values.help) return { help: true };
  const problems: string[] = [];
  const to = values.to ?? '';
  const scheme = /^([a-z][a-z0-9+.-]*):\/\//.exec(to)?.[1];
  const rest = scheme ? to.slice(scheme.length + 3) : '';
  let target: PublishTarget | undefined;
  let prefix = '';
  const s3Flags = (['s3-region', 's3-endpoint', 's3-force-path-style'] as const).filter(
    (f) => values[f] !== undefined,
  );
  if (scheme !== 's3' && s3Flags.length > 0 && to !== '') {
    problems.push(`--${s3Flags.join(', --')}: only used with --to s3://...`);
  }
  if (scheme !== 'gs' && values['gcs-endpoint'] !== undefined && to !== '') {
    problems.push('--gcs-endpoint: only used with --to gs://...');
  }
  if (scheme !== 'azblob' && values['azblob-endpoint'] !== undefined && to !== '') {
    problems.push('--azblob-endpoint: only used with --to azblob://...');
  }
  if (to === '') {
    problems.push('--to: required (s3://bucket/prefix, gs://bucket/prefix, azblob://..., file://dir)');
  } else if (scheme === 's3') {
    const { bucket, prefix: p } = splitBucket(rest);
    prefix = p;
    problems.push(...s3BucketProblems(bucket));
    const region = values['s3-region'] || env.AWS_REGION || env.AWS_DEFAULT_REGION || '';
    if (region === '') problems.push('--s3-region: required for s3:// (or set AWS_REGION)');
    else if (region.length > 64 || !/^[a-z0-9-]+$/.test(region)) {
      problems.push(`--s3-region: ${JSON.stringify(region)} is not a region name like eu-west-1`);
    }
    const endpoint = values['s3-endpoint'];
    if (endpoint !== undefined && !isHttpURL(endpoint)) {
      problems.push(`--s3-endpoint: ${JSON.stringify(endpoint)} is not an http or https URL`);
    }
    const forcePathStyle = values['s3-force-path-style'] ?? false;
    if (bucket.includes('.') && !forcePathStyle) {
      problems.push(
        '--s3-force-path-style: required for a bucket name with dots (they break TLS for virtual-hosted-style URLs)',
      );
    }
    target = {
      kind: 'storage',
      storage: { kind: 's3', bucket, region, prefix, forcePathStyle, ...(endpoint ? { endpoint } : {}) },
    };
  } else if (scheme === 'gs') {
    const { bucket, prefix: p } = splitBucket(rest);
    prefix = p;
    problems.push(...gcsBucketProblems(bucket));
    const endpoint = values['gcs-endpoint'];
    if (endpoint !== undefined && !isHttpURL(endpoint)) {
      problems.push(`--gcs-endpoint: ${JSON.stringify(endpoint)} is not an http or https URL`);
    }
    target = { kind: 'storage', storage: { kind: 'gcs', bucket, prefix, ...(endpoint ? { endpoint } : {}) } };
  } else if (scheme === 'azblob') {
    const { bucket: account, prefix: afterAccount } = splitBucket(rest);
    const { bucket: container, prefix: p } = splitBucket(afterAccount);
    prefix = p;
    if (!/^[a-z0-9]{3,24}$/.test(account)) {
      problems.push(`--to: ${JSON.stringify(account)} is not a storage account name (3 to 24 of a-z, 0-9)`);
    }
    if (
      container.length < 3 ||
      container.length > 63 ||
      !/^([a-z0-9][a-z0-9-]*[a-z0-9]|\$web)$/.test(container) ||
      container.includes('--')
    ) {
      problems.push(
        `--to: ${JSON.stringify(container)} is not a container name (3 to 63 of a-z, 0-9 and single hyphens, or $web)`,
      );
    }
    const endpoint = values['azblob-endpoint'];
    if (endpoint !== undefined) {
      if (!isHttpURL(endpoint) || /[?#]/.test(endpoint)) {
        problems.push(
          `--azblob-endpoint: ${JSON.stringify(endpoint)} is not an http or https URL without a query`,
        );
      } else if (azureAccountName(endpoint.replace(/\/+$/, '')) !== account) {
        problems.push(
          `--azblob-endpoint: ${JSON.stringify(endpoint)} is not the endpoint of account ${account}`,
        );
      }
    }
    const accountURL = (endpoint ?? `https://${account}.blob.core.windows.net`).replace(/\/+$/, '');
    target = { kind: 'storage', storage: { kind: 'azureBlob', accountURL, account, container, prefix } };
  } else if (scheme === 'file') {
    if (rest === '')
      problems.push('--to: file:// needs a directory, as in file:///srv/issuer or file://./out');
    // biome-ignore lint/suspicious/noControlCharactersInRegex: refusing them is the point
    else if (/[\u0000]/.test(rest)) problems.push('--to: the directory name contains a NUL character');
    else target = { kind: 'file', dir: rest };
  } else {
    problems.push(
      `--to: ${JSON.stringify(to.slice(0, 200))} is not s3://bucket/prefix, gs://bucket/prefix, azblob://account/container/prefix or file://dir`,
    );
  }
  const { spec, problems: specProblems } = standaloneSpec({
    issuer: values.issuer,
    jwksURI: values['jwks-uri'],
    cacheControl: values['cache-control'],
    prefix,
  });
  problems.push(...specProblems);
  if (values.kubeconfig === '') problems.push('--kubeconfig: empty');
  if (problems.length > 0 || !target) throw new OidcPublisherError('CONFIG_INVALID', problems.join('; '));
  return {
    help: false,
    spec,
    target,
    dryRun: values['dry-run'] ?? false,
    ...(values.kubeconfig !== undefined ? { kubeconfig: values.kubeconfig } : {}),
  };
}

/** Where an object lands, as the user named the target: s3://bucket/key, gs://bucket/key, a file path. */
export function objectLocation(target: PublishTarget, key: string): string {
  if (target.kind === 'file') return resolve(target.dir, key);
  const s = target.storage;
  if (s.kind === 'azureBlob') return `azblob://${s.account}/${s.container}/${key}`;
  return `${s.kind === 's3' ? 's3' : 'gs'}://${s.bucket}/${key}`;
}

/** One output line per object. */
export function describeObject(
  verb: 'published' | 'would publish' | 'up to date',
  location: string,
  object: RenderedObject,
  why?: PlannedWrite['why'],
): string {
  const reason = why ? ` (${why})` : '';
  return `${verb} ${location}${reason} sha256=${object.sha256} content-type=${object.contentType} cache-control=${JSON.stringify(object.cacheControl)}\n`;
}

export type PublishIo = CommandIo;

const defaultIo: PublishIo = {
  stdout: (t) => process.stdout.write(t),
  stderr: (t) => process.stderr.write(t),
};

/** Publish reads no Secrets: a target from flags never names one. */
const NO_SECRETS: SecretReader = {
  readSecret: () =>
    Promise.reject(new OidcPublisherError('SECRET_NOT_FOUND', 'oidc-publisher publish reads no Secrets')),
};

export async function runPublish(
  argv: readonly string[],
  env: NodeJS.ProcessEnv,
  io: PublishIo = defaultIo,
): Promise<number> {
  const command = {
    name: 'publish',
    usage: publishUsage,
    parse: () => parsePublishArgs(argv, env),
    errorCodes: true,
  };
  return runCommand(command, io, (args, fail) => publish(args, env, io, fail));
}

async function publish(
  args: PublishArgs,
  env: NodeJS.ProcessEnv,
  io: PublishIo,
  fail: Fail,
): Promise<number> {
  const { spec, target, dryRun } = args;
  let source: DocumentSource | undefined;
  let store: ObjectStore | undefined;
  let stores: StoreFactory | undefined;
  try {
    source = new ApiServerSource(await loadKubeAccess(args.kubeconfig, env), {
      timeoutMs: SOURCE_TIMEOUT_MS,
    });
    const raw = await source.fetchDocuments();
    const prep = prepare(spec, raw, { previous: undefined, now: new Date() });
    if (prep.kind === 'invalid') throw prep.error;
    if (prep.kind === 'issuerMismatch') {
      return fail(
        PublishExit.Failed,
        `${Reason.IssuerMismatch}: the API server's issuer ${JSON.stringify(prep.issuer)} differs from --issuer ${JSON.stringify(prep.expected)}; nothing was written`,
      );
    }
    if (target.kind === 'file') {
      store = new FileStore(target.dir);
    } else {
      // The user who runs publish chose the endpoint and brings their own credentials: no allowlist.
      stores = new StoreFactory({
        secrets: NO_SECRETS,
        namespace: '',
        timeoutMs: STORAGE_TIMEOUT_MS,
        allowedHosts: 'any',
      });
      // A target from flags names no Secret, so the name is never checked against one.
      store = await stores.get(target.storage, 'oidc-publisher-publish');
    }
    const where = (o: RenderedObject) => objectLocation(target, o.key);
    const result = await publishObjects(store, prep.objects, {
      dryRun,
      skipped: (o) => io.stdout(describeObject('up to date', where(o), o)),
      written: (w) => io.stdout(describeObject('published', where(w.object), w.object, w.why)),
    });
    if (dryRun) {
      for (const w of result.writes)
        io.stdout(describeObject('would publish', where(w.object), w.object, w.why));
    }
    return PublishExit.Ok;
  } catch (err) {
    return fail(PublishExit.Failed, err);
  } finally {
    source?.close();
    if (stores) stores.close();
    else store?.close();
  }
}

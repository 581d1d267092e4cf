/**
 * The operator's configuration: flags, then OIDC_PUBLISHER_* environment
 * variables, then defaults. Parsed once, every problem reported at once, frozen.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { parseArgs } from 'node:util';
import { parseDuration } from './core/duration.ts';
import { OidcPublisherError } from './errors.ts';
import { parseListenAddress } from './server/listen-address.ts';
import { parseHostPatterns, splitHostList } from './stores/endpoints.ts';
import { DEFAULT_GCS_TOKEN_FILE_DIR, tokenFileDirProblems } from './stores/gcs-credentials.ts';

export interface Config {
  /** Kubeconfig of the cluster the operator runs against; default in-cluster or KUBECONFIG. */
  kubeconfig?: string;
  /** The operator's namespace: where referenced Secrets live. */
  namespace: string;
  /** Reconcile only this OidcPublisher. */
  watchName?: string;
  concurrency: number;
  sourceTimeoutMs: number;
  storageTimeoutMs: number;
  /** Storage endpoint hosts allowed besides the public clouds', as `<backend>=<host>` (--storage-allowed-hosts). */
  storageAllowedHosts: readonly string[];
  /** Directories an external_account in a GCS credentials Secret may read its token file from (--gcs-token-file-dirs). */
  gcsTokenFileDirs: readonly string[];
  backoffBaseMs: number;
  backoffMaxMs: number;
  shutdownGraceMs: number;
  logLevel: 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal';
  /** host:port of /healthz, /readyz and /metrics; empty to disable. */
  healthAddr: string;
  /** Accept an OidcPublisher's jwksURI on another origin than its issuerURL. */
  allowForeignJwksURI: boolean;
  /** Client-side rate limit of requests to the API server: requests per second, 0 for none. */
  kubeApiQps: number;
  /** How many requests may go at once above kubeApiQps. */
  kubeApiBurst: number;
  leaderElection: {
    enabled: boolean;
    leaseName: string;
    identity: string;
    leaseDurationMs: number;
    renewDeadlineMs: number;
    retryPeriodMs: number;
  };
}

const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal'] as const;
const IN_CLUSTER_NAMESPACE = '/var/run/secrets/kubernetes.io/serviceaccount/namespace';

export const FLAGS = {
  kubeconfig: {
    type: 'string',
    env: 'KUBECONFIG',
    help: 'kubeconfig of the cluster to run against (default: in-cluster, or $KUBECONFIG)',
  },
  namespace: {
    type: 'string',
    env: 'POD_NAMESPACE',
    help: "the operator's namespace, where referenced Secrets live (default: the in-cluster namespace)",
  },
  oidcpublisher: {
    type: 'string',
    env: 'OIDC_PUBLISHER_WATCH_NAME',
    help: 'reconcile only the OidcPublisher of this name (default: all)',
  },
  concurrency: {
    type: 'string',
    env: 'OIDC_PUBLISHER_CONCURRENCY',
    help: 'OidcPublishers reconciled at once (default 4)',
  },
  'source-timeout': {
    type: 'string',
    env: 'OIDC_PUBLISHER_SOURCE_TIMEOUT',
    help: 'timeout of a read from an API server (default 10s)',
  },
  'storage-timeout': {
    type: 'string',
    env: 'OIDC_PUBLISHER_STORAGE_TIMEOUT',
    help: 'deadline of each storage operation, retries included (default 15s)',
  },
  'storage-allowed-hosts': {
    type: 'string',
    env: 'OIDC_PUBLISHER_STORAGE_ALLOWED_HOSTS',
    help: "storage endpoint hosts allowed besides the public clouds', each for one backend (comma-separated <s3|gcs|azureBlob>=<host, IP or *.suffix>; s3=http://host also allows plain http); only credentials Secrets are sent to them",
  },
  'gcs-token-file-dirs': {
    type: 'string',
    env: 'OIDC_PUBLISHER_GCS_TOKEN_FILE_DIRS',
    help: `directories whose files a GCS credentials Secret's external_account may send to Google's STS (comma-separated absolute paths; default ${DEFAULT_GCS_TOKEN_FILE_DIR}; none for none)`,
  },
  'backoff-base': {
    type: 'string',
    env: 'OIDC_PUBLISHER_BACKOFF_BASE',
    help: 'first retry delay after a transient failure (default 1s)',
  },
  'backoff-max': {
    type: 'string',
    env: 'OIDC_PUBLISHER_BACKOFF_MAX',
    help: 'longest retry delay (default 1m)',
  },
  'shutdown-grace': {
    type: 'string',
    env: 'OIDC_PUBLISHER_SHUTDOWN_GRACE',
    help: 'how long reconciles in flight may finish on SIGTERM (default 20s)',
  },
  'log-level': {
    type: 'string',
    env: 'OIDC_PUBLISHER_LOG_LEVEL',
    help: `one of ${LOG_LEVELS.join(', ')} (default info)`,
  },
  'health-addr': {
    type: 'string',
    env: 'OIDC_PUBLISHER_HEALTH_ADDR',
    help: 'host:port ([::1]:port for IPv6) for /healthz, /readyz and /metrics, empty to disable (default :8081, every interface)',
  },
  'leader-elect': {
    type: 'string',
    env: 'OIDC_PUBLISHER_LEADER_ELECT',
    help: 'elect a leader through a Lease so only one replica reconciles: true or false (default true)',
  },
  'leader-election-id': {
    type: 'string',
    env: 'OIDC_PUBLISHER_LEADER_ELECTION_ID',
    help: "name of the Lease in the operator's namespace (default oidc-publisher)",
  },
  'lease-duration': {
    type: 'string',
    env: 'OIDC_PUBLISHER_LEASE_DURATION',
    help: 'how long a standby waits after the last renewal before taking over (default 15s)',
  },
  'renew-deadline': {
    type: 'string',
    env: 'OIDC_PUBLISHER_RENEW_DEADLINE',
    help: 'how long the leader keeps trying to renew before it gives up leadership (default 10s)',
  },
  'retry-period': {
    type: 'string',
    env: 'OIDC_PUBLISHER_RETRY_PERIOD',
    help: 'interval between lease attempts (default 2s)',
  },
  'allow-foreign-jwks-uri': {
    type: 'string',
    env: 'OIDC_PUBLISHER_ALLOW_FOREIGN_JWKS_URI',
    help: "accept an OidcPublisher's jwksURI that is not under its issuerURL: true or false (default false)",
  },
  'kube-api-qps': {
    type: 'string',
    env: 'OIDC_PUBLISHER_KUBE_API_QPS',
    help: 'client-side limit of requests per second to the API server, 0 for none (default 50)',
  },
  'kube-api-burst': {
    type: 'string',
    env: 'OIDC_PUBLISHER_KUBE_API_BURST',
    help: 'requests to the API server allowed at once above --kube-api-qps (default 100)',
  },
  'pod-name': {
    type: 'string',
    env: 'POD_NAME',
    help: 'identity of this replica in the Lease (default: host name and a random suffix)',
  },
} as const;

type FlagName = keyof typeof FLAGS;

export function parseConfig(
  argv: readonly string[],
  env: NodeJS.ProcessEnv,
  readFile = readFileSync,
): Readonly<Config> {
  const { values } = parseArgs({
    args: [...argv],
    options: Object.fromEntries(Object.keys(FLAGS).map((k) => [k, { type: 'string' }])) as Record<
      FlagName,
      { type: 'string' }
    >,
    strict: true,
    allowPositionals: false,
  });
  const raw = (name: FlagName): string | undefined => {
    const v = (values as Record<string, string | undefined>)[name] ?? env[FLAGS[name].env];
    return v === undefined || v === '' ? undefined : v;
  };
  const problems: string[] = [];
  const duration = (name: FlagName, fallback: string, min = 1): number => {
    const text = raw(name) ?? fallback;
    const ms = parseDuration(text);
    if (ms === undefined || ms < min) {
      problems.push(`--${name}: ${JSON.stringify(text)} is not a duration like 10s or 1m`);
      return 0;
    }
    return ms;
  };
  const concurrencyText = raw('concurrency') ?? '4';
  const concurrency = Number(concurrencyText);
  if (!Number.isInteger(concurrency) || concurrency < 1 || concurrency > 256) {
    problems.push(`--concurrency: ${JSON.stringify(concurrencyText)} is not a whole number from 1 to 256`);
  }
  const logLevel = raw('log-level') ?? 'info';
  if (!(LOG_LEVELS as readonly string[]).includes(logLevel)) {
    problems.push(`--log-level: ${JSON.stringify(logLevel)} is not one of ${LOG_LEVELS.join(', ')}`);
  }
  let namespace = raw('namespace');
  if (!namespace) {
    try {
      namespace = readFile(IN_CLUSTER_NAMESPACE, 'utf8').trim();
    } catch {
      problems.push('--namespace: not set, and not running in a cluster (set --namespace or POD_NAMESPACE)');
    }
  }
  const healthAddr =
    (values as Record<string, string | undefined>)['health-addr'] ?? env[FLAGS['health-addr'].env] ?? ':8081';
  if (healthAddr !== '' && !parseListenAddress(healthAddr)) {
    problems.push(`--health-addr: ${JSON.stringify(healthAddr)} is not host:port`);
  }
  const foreignJwksText = raw('allow-foreign-jwks-uri') ?? 'false';
  if (foreignJwksText !== 'true' && foreignJwksText !== 'false') {
    problems.push(`--allow-foreign-jwks-uri: ${JSON.stringify(foreignJwksText)} is not true or false`);
  }
  const storageAllowedHosts = splitHostList(raw('storage-allowed-hosts') ?? '');
  try {
    parseHostPatterns(storageAllowedHosts);
  } catch (err) {
    problems.push(err instanceof Error ? err.message : String(err));
  }
  const tokenDirsText = raw('gcs-token-file-dirs') ?? DEFAULT_GCS_TOKEN_FILE_DIR;
  const gcsTokenFileDirs =
    tokenDirsText === 'none'
      ? []
      : tokenDirsText
          .split(',')
          .map((d) => d.trim())
          .filter((d) => d !== '');
  problems.push(...tokenFileDirProblems(gcsTokenFileDirs));
  const qpsText = raw('kube-api-qps') ?? '50';
  const kubeApiQps = /^\d+(?:\.\d+)?$/.test(qpsText) ? Number(qpsText) : Number.NaN;
  if (!(kubeApiQps >= 0 && kubeApiQps <= 10_000)) {
    problems.push(`--kube-api-qps: ${JSON.stringify(qpsText)} is not a number from 0 (no limit) to 10000`);
  }
  const burstText = raw('kube-api-burst') ?? '100';
  const kubeApiBurst = /^\d+$/.test(burstText) ? Number(burstText) : Number.NaN;
  if (!(kubeApiBurst >= 1 && kubeApiBurst <= 10_000)) {
    problems.push(`--kube-api-burst: ${JSON.stringify(burstText)} is not a whole number from 1 to 10000`);
  }
  const leaderText = raw('leader-elect') ?? 'true';
  if (leaderText !== 'true' && leaderText !== 'false') {
    problems.push(`--leader-elect: ${JSON.stringify(leaderText)} is not true or false`);
  }
  const leaseDurationMs = duration('lease-duration', '15s', 1000);
  const renewDeadlineMs = duration('renew-deadline', '10s', 1000);
  const retryPeriodMs = duration('retry-period', '2s', 100);
  if (renewDeadlineMs >= leaseDurationMs && leaseDurationMs > 0) {
    problems.push('--renew-deadline must be shorter than --lease-duration');
  }
  if (retryPeriodMs >= renewDeadlineMs && renewDeadlineMs > 0) {
    problems.push('--retry-period must be shorter than --renew-deadline');
  }
  const config: Config = {
    namespace: namespace ?? '',
    concurrency,
    sourceTimeoutMs: duration('source-timeout', '10s'),
    storageTimeoutMs: duration('storage-timeout', '15s'),
    storageAllowedHosts: Object.freeze(storageAllowedHosts),
    gcsTokenFileDirs: Object.freeze(gcsTokenFileDirs),
    backoffBaseMs: duration('backoff-base', '1s'),
    backoffMaxMs: duration('backoff-max', '1m'),
    shutdownGraceMs: duration('shutdown-grace', '20s'),
    logLevel: logLevel as Config['logLevel'],
    healthAddr,
    allowForeignJwksURI: foreignJwksText === 'true',
    kubeApiQps,
    kubeApiBurst,
    leaderElection: {
      enabled: leaderText !== 'false',
      leaseName: raw('leader-election-id') ?? 'oidc-publisher',
      identity: raw('pod-name') ?? `${hostname()}-${randomBytes(4).toString('hex')}`,
      leaseDurationMs,
      renewDeadlineMs,
      retryPeriodMs,
    },
  };
  const kubeconfig = raw('kubeconfig');
  if (kubeconfig) config.kubeconfig = kubeconfig;
  const watchName = raw('oidcpublisher');
  if (watchName) config.watchName = watchName;
  if (problems.length > 0) {
    throw new OidcPublisherError('CONFIG_INVALID', `invalid configuration:\n  ${problems.join('\n  ')}`);
  }
  Object.freeze(config.leaderElection);
  return Object.freeze(config);
}

export function usage(): string {
  const lines = Object.entries(FLAGS).map(
    ([name, f]) => `  --${name.padEnd(16)} ${f.help}\n  ${''.padEnd(18)} env ${f.env}`,
  );
  return `oidc-publisher: publishes a cluster's service-account issuer to object storage.

Usage:
  oidc-publisher [run] [flags]     run the operator
  oidc-publisher authn-config ...  print a kube-apiserver AuthenticationConfiguration trusting an issuer
  oidc-publisher publish ...       publish the issuer documents once to s3://, gs://, azblob:// or file://
  oidc-publisher serve ...         serve the issuer documents over HTTP, from memory
  oidc-publisher register ...      register a published issuer with AWS IAM, or print the gcloud or az commands
  oidc-publisher --help            show this help
  oidc-publisher --version         print the version

Flags (each may also be set by the environment variable shown):
${lines.join('\n')}
`;
}

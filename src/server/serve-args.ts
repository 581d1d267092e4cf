/**
 * The arguments of `oidc-publisher serve`, parsed once without I/O: one
 * publisher from --issuer (and --kubeconfig, --path-prefix, --jwks-uri), or
 * several from repeated --publisher; TLS files and HSTS; key retention; the
 * listeners and intervals. Every problem is reported at once.
 */
import { parseFlags } from '../commands/args.ts';
import { formatDuration, parseDuration } from '../core/duration.ts';
import type { DocumentSpec } from '../core/plan.ts';
import { DEFAULT_KEY_RETENTION } from '../core/spec.ts';
import { standaloneSpec } from '../core/standalone.ts';
import { OidcPublisherError } from '../errors.ts';
import { type ListenAddress, parseListenAddress } from './listen-address.ts';
import { pathPrefixProblems, type ServePaths, servePaths } from './serve-response.ts';

const OPTIONS = {
  kubeconfig: { type: 'string' },
  issuer: { type: 'string' },
  publisher: { type: 'string', multiple: true },
  listen: { type: 'string' },
  'path-prefix': { type: 'string' },
  'sync-interval': { type: 'string' },
  'stale-after': { type: 'string' },
  'key-retention': { type: 'string' },
  'health-addr': { type: 'string' },
  'jwks-uri': { type: 'string' },
  'cache-control': { type: 'string' },
  'tls-cert-file': { type: 'string' },
  'tls-private-key-file': { type: 'string' },
  'hsts-max-age': { type: 'string' },
  'log-level': { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal'] as const;
/** At most this many publishers in one process. */
export const MAX_PUBLISHERS = 64;
const DEFAULT_HSTS_MAX_AGE = '8760h';
const MAX_KEY_RETENTION_MS = 8760 * 3_600_000;

export function serveUsage(): string {
  return `oidc-publisher serve: serve clusters' service-account issuer documents over HTTP or HTTPS, from
memory, as the public issuer (instead of a bucket), directly or behind an Ingress or load balancer.

Usage:
  oidc-publisher serve --issuer <https url> [--kubeconfig <file>] [flags]
  oidc-publisher serve --publisher issuer=<https url>,kubeconfig=<file> [--publisher ...] [flags]

For each publisher it serves exactly GET and HEAD of <path-prefix>/.well-known/openid-configuration
(application/json) and <path-prefix>/openid/v1/jwks (application/jwk-set+json), with Cache-Control,
a strong ETag (the SHA-256 of the bytes) and 304 on If-None-Match; 404 for any other host or path,
405 for other methods, and 503 until the documents have been read and validated once. The documents
are read again every --sync-interval; while the API server cannot be read, the last good ones keep
being served. A key the API server stops serving stays in the JWKS for --key-retention, kept in
memory: a restarted process serves only the keys the API server serves.

One publisher:
  --issuer <url>            the public issuer; must equal the API server's --service-account-issuer
  --kubeconfig <file>       the cluster to read the documents from (default: $KUBECONFIG,
                            ~/.kube/config, then in-cluster, whose rotating ServiceAccount token is
                            re-read). Your own kubeconfig, trusted: exec plugins and token files work
                            (the operator refuses them in kubeconfigs from Secrets). The identity
                            needs only get on the nonResourceURLs /.well-known/openid-configuration
                            and /openid/v1/jwks.
  --path-prefix </path>     serve the documents under this path, e.g. /cluster-a, on any host
                            (default: none)
  --jwks-uri <url>          jwks_uri written into the discovery document
                            (default: <issuer>/openid/v1/jwks)

Several publishers (instead of the four flags above), up to ${MAX_PUBLISHERS}:
  --publisher issuer=<url>,kubeconfig=<file>[,jwks-uri=<url>]
                            repeated, one per cluster. Each is served on its issuer's host name (the
                            Host header, port ignored) under its issuer's path, as relying parties
                            fetch it; two publishers may not have the same host and path.

Flags:
  --listen <host:port>      where to serve the documents (default :8080, or :8443 with TLS)
  --tls-cert-file <file>    serve HTTPS with this PEM certificate (chain); with
                            --tls-private-key-file. Both files are read again when they change
                            (their directory is watched, and checked every 10s), as a mounted
                            Secret's are: new connections get the new pair, and a pair that does not
                            load keeps the current one.
  --tls-private-key-file <file>
                            the certificate's PEM private key
  --hsts-max-age <d>        Strict-Transport-Security max-age sent over HTTPS, 0s for none
                            (default ${DEFAULT_HSTS_MAX_AGE})
  --sync-interval <d>       how often to read the documents again, 1s to 24h (default 1m)
  --stale-after <d>         /readyz answers 503 once a publisher's last good read is older than
                            this; longer than --sync-interval (default 5m). /healthz stays 200.
  --key-retention <d>       how long a key the API server stopped serving stays in the JWKS, 0s to
                            8760h (default ${DEFAULT_KEY_RETENTION}): at least the longest token lifetime plus
                            relying parties' cache time
  --health-addr <host:port> /healthz, /readyz and /metrics; empty to disable (default :8081,
                            every interface: kubelet probes connect to the Pod's IP)
  --cache-control <value>   Cache-Control of the documents (default "public, max-age=300")
  --log-level <level>       one of ${LOG_LEVELS.join(', ')} (default info)

Exit codes:
  0  stopped by SIGTERM or SIGINT
  1  could not start (kubeconfig, TLS files, listen address in use), with the error code
  2  bad arguments
`;
}

/** One issuer served: what to read it with, what to check it against, and where it answers. */
export interface PublisherConfig {
  /** The kubeconfig to read the documents with; absent: the default chain. */
  kubeconfig?: string;
  spec: DocumentSpec;
  /** The Host a request must name (lower case, no port); absent: any host. */
  host?: string;
  paths: ServePaths;
}

export interface TlsFiles {
  certFile: string;
  keyFile: string;
}

export interface ServeArgs {
  help: false;
  publishers: PublisherConfig[];
  listen: ListenAddress;
  /** Absent: plain HTTP. */
  tls?: TlsFiles;
  /** Strict-Transport-Security max-age over HTTPS; 0 for none. */
  hstsMaxAgeMs: number;
  syncIntervalMs: number;
  staleAfterMs: number;
  keyRetentionMs: number;
  /** host:port for /healthz, /readyz and /metrics, or '' for none. */
  healthAddr: string;
  logLevel: (typeof LOG_LEVELS)[number];
}

const PUBLISHER_KEYS = ['issuer', 'kubeconfig', 'jwks-uri'] as const;
type PublisherKey = (typeof PUBLISHER_KEYS)[number];

/** The fields of one --publisher value, or its problems. */
export function parsePublisherValue(
  value: string,
  n: number,
): { fields: Partial<Record<PublisherKey, string>>; problems: string[] } {
  const where = `--publisher #${n}`;
  const fields: Partial<Record<PublisherKey, string>> = {};
  const problems: string[] = [];
  for (const part of value.split(',')) {
    const eq = part.indexOf('=');
    const key = (eq < 0 ? part : part.slice(0, eq)).trim();
    if (!(PUBLISHER_KEYS as readonly string[]).includes(key)) {
      problems.push(
        `${where}: ${JSON.stringify(key.slice(0, 40))} is not one of ${PUBLISHER_KEYS.join(', ')} (key=value, comma-separated)`,
      );
      continue;
    }
    if (eq < 0 || part.slice(eq + 1) === '') {
      problems.push(`${where}: ${key} is empty`);
      continue;
    }
    if (fields[key as PublisherKey] !== undefined) problems.push(`${where}: ${key} given twice`);
    fields[key as PublisherKey] = part.slice(eq + 1);
  }
  if (fields.issuer === undefined && !problems.some((p) => p.includes('issuer'))) {
    problems.push(`${where}: issuer=<https url> required`);
  }
  if (fields.kubeconfig === undefined && !problems.some((p) => p.includes('kubeconfig'))) {
    problems.push(`${where}: kubeconfig=<file> required`);
  }
  return { fields, problems };
}

/** Where a publisher given by --publisher answers: its issuer's host name and path. */
function issuerRoute(issuer: string): { host: string; prefix: string } {
  const url = new URL(issuer);
  return { host: url.hostname.toLowerCase().replace(/\.$/, ''), prefix: url.pathname };
}

/** Parses the arguments without I/O: CONFIG_INVALID naming every problem at once. */
export function parseServeArgs(argv: readonly string[]): { help: true } | ServeArgs {
  const values = parseFlags(argv, OPTIONS);
  if (values.help) return { help: true };
  const problems: string[] = [];
  const publishers: PublisherConfig[] = [];
  const cacheControl = values['cache-control'];
  if (values.publisher !== undefined) {
    const single = (['issuer', 'kubeconfig', 'path-prefix', 'jwks-uri'] as const).filter(
      (f) => values[f] !== undefined,
    );
    if (single.length > 0) {
      problems.push(
        `--publisher: not with ${single.map((f) => `--${f}`).join(', ')} (give them in each --publisher)`,
      );
    }
    if (values.publisher.length > MAX_PUBLISHERS) {
      problems.push(`--publisher: more than ${MAX_PUBLISHERS}`);
    }
    const seen = new Map<string, number>();
    values.publisher.slice(0, MAX_PUBLISHERS).forEach((value, i) => {
      const n = i + 1;
      const parsed = parsePublisherValue(value, n);
      problems.push(...parsed.problems);
      const { spec, problems: specProblems } = standaloneSpec({
        issuer: parsed.fields.issuer,
        jwksURI: parsed.fields['jwks-uri'],
        cacheControl,
      });
      if (parsed.fields.issuer === undefined) return;
      const own = specProblems.filter((p) => !p.startsWith('--cache-control'));
      problems.push(
        ...own.map(
          (p) => `--publisher #${n}: ${p.replace(/^--issuer/, 'issuer').replace(/^--jwks-uri/, 'jwks-uri')}`,
        ),
      );
      if (own.length > 0) return;
      const { host, prefix } = issuerRoute(spec.issuerURL);
      const prefixProblems = pathPrefixProblems(prefix === '/' ? '' : prefix);
      if (prefixProblems.length > 0) {
        problems.push(`--publisher #${n}: the issuer's path cannot be served: ${prefixProblems.join('; ')}`);
        return;
      }
      const paths = servePaths(prefix);
      const where = `${host}${paths.discovery}`;
      const clash = seen.get(where);
      if (clash !== undefined) {
        problems.push(`--publisher #${n}: served at the same host and path as --publisher #${clash}`);
        return;
      }
      seen.set(where, n);
      publishers.push({
        spec,
        host,
        paths,
        ...(parsed.fields.kubeconfig ? { kubeconfig: parsed.fields.kubeconfig } : {}),
      });
    });
  } else {
    const { spec, problems: specProblems } = standaloneSpec({
      issuer: values.issuer,
      jwksURI: values['jwks-uri'],
      cacheControl,
    });
    problems.push(
      ...specProblems.map((p) => (p === '--issuer: required' ? '--issuer (or --publisher): required' : p)),
    );
    const prefix = values['path-prefix'] ?? '';
    problems.push(...pathPrefixProblems(prefix));
    if (values.kubeconfig === '') problems.push('--kubeconfig: empty');
    publishers.push({
      spec,
      paths: servePaths(prefix),
      ...(values.kubeconfig !== undefined ? { kubeconfig: values.kubeconfig } : {}),
    });
  }
  if (values.publisher !== undefined && cacheControl !== undefined) {
    problems.push(
      ...standaloneSpec({ issuer: 'https://x', cacheControl }).problems.filter((p) =>
        p.startsWith('--cache-control'),
      ),
    );
  }

  const certFile = values['tls-cert-file'];
  const keyFile = values['tls-private-key-file'];
  if (certFile === '' || keyFile === '') problems.push('--tls-cert-file and --tls-private-key-file: empty');
  else if ((certFile === undefined) !== (keyFile === undefined)) {
    problems.push('--tls-cert-file and --tls-private-key-file: give both, or neither');
  }
  const tls = certFile && keyFile ? { certFile, keyFile } : undefined;
  if (!tls && values['hsts-max-age'] !== undefined) {
    problems.push('--hsts-max-age: Strict-Transport-Security is sent over HTTPS only: give --tls-cert-file');
  }

  const listenText = values.listen ?? (tls ? ':8443' : ':8080');
  const listen = parseListenAddress(listenText);
  if (!listen) problems.push(`--listen: ${JSON.stringify(listenText)} is not host:port`);
  const healthAddr = values['health-addr'] ?? ':8081';
  if (healthAddr !== '' && !parseListenAddress(healthAddr)) {
    problems.push(`--health-addr: ${JSON.stringify(healthAddr)} is not host:port`);
  }
  if (listen && healthAddr !== '' && listenText === healthAddr) {
    problems.push('--listen and --health-addr: must differ');
  }
  const duration = (flag: string, text: string, minMs: number, maxMs: number): number => {
    const ms = parseDuration(text);
    if (ms === undefined || ms < minMs || ms > maxMs) {
      problems.push(
        `--${flag}: ${JSON.stringify(text)} is not a duration from ${formatDuration(minMs)} to ${formatDuration(maxMs)}`,
      );
      return 0;
    }
    return ms;
  };
  const syncIntervalMs = duration('sync-interval', values['sync-interval'] ?? '1m', 1000, 86_400_000);
  const staleAfterMs = duration('stale-after', values['stale-after'] ?? '5m', 1000, 7 * 86_400_000);
  if (syncIntervalMs > 0 && staleAfterMs > 0 && staleAfterMs <= syncIntervalMs) {
    problems.push('--stale-after: must be longer than --sync-interval, or /readyz would flap');
  }
  const keyRetentionMs = duration(
    'key-retention',
    values['key-retention'] ?? DEFAULT_KEY_RETENTION,
    0,
    MAX_KEY_RETENTION_MS,
  );
  const hstsMaxAgeMs = duration(
    'hsts-max-age',
    values['hsts-max-age'] ?? DEFAULT_HSTS_MAX_AGE,
    0,
    2 * MAX_KEY_RETENTION_MS,
  );
  const logLevel = values['log-level'] ?? 'info';
  if (!(LOG_LEVELS as readonly string[]).includes(logLevel)) {
    problems.push(`--log-level: ${JSON.stringify(logLevel)} is not one of ${LOG_LEVELS.join(', ')}`);
  }
  if (problems.length > 0 || !listen) throw new OidcPublisherError('CONFIG_INVALID', problems.join('; '));
  return {
    help: false,
    publishers: publishers.map((p) => ({ ...p, spec: { ...p.spec, keyRetentionMs } })),
    listen,
    ...(tls ? { tls } : {}),
    hstsMaxAgeMs: tls ? hstsMaxAgeMs : 0,
    syncIntervalMs,
    staleAfterMs,
    keyRetentionMs,
    healthAddr,
    logLevel: logLevel as ServeArgs['logLevel'],
  };
}

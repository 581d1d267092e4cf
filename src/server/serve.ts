/**
 * `oidc-publisher serve`: the issuer documents served over HTTP from memory,
 * for an Ingress or load balancer to expose as the public issuer, instead of
 * a bucket. The documents are read from the API server every sync interval
 * through the same source (ApiServerSource) and validated and rendered by the
 * same core (prepare) as the operator's; only a validated document is ever
 * served, and the last good ones keep being served while the API server is
 * unreachable. /readyz turns 503 once they are older than --stale-after.
 *
 * Exit codes: 0 stopped by SIGTERM or SIGINT, 1 could not start (kubeconfig,
 * listen), 2 bad arguments.
 */
import type { Server } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { Reason } from '../api/conditions.ts';
import { formatDuration, parseDuration } from '../core/duration.ts';
import { type DocumentSpec, prepare } from '../core/plan.ts';
import { standaloneSpec } from '../core/standalone.ts';
import { describeError, isOidcPublisherError, OidcPublisherError } from '../errors.ts';
import { loadKubeAccess } from '../kube/access.ts';
import { createLogger, type Logger } from '../log.ts';
import { ApiServerSource, type DocumentSource } from '../sources/apiserver.ts';
import { startHealthServer } from './health.ts';
import { createLimitedServer, type HttpLimits, listen, SERVE_LIMITS } from './http-server.ts';
import { type ListenAddress, parseListenAddress } from './listen-address.ts';
import { ServeMetrics } from './serve-metrics.ts';
import {
  type HeldDocuments,
  pathPrefixProblems,
  respond,
  type ServePaths,
  servePaths,
} from './serve-response.ts';

const OPTIONS = {
  kubeconfig: { type: 'string' },
  issuer: { type: 'string' },
  listen: { type: 'string' },
  'path-prefix': { type: 'string' },
  'sync-interval': { type: 'string' },
  'stale-after': { type: 'string' },
  'health-addr': { type: 'string' },
  'jwks-uri': { type: 'string' },
  'cache-control': { type: 'string' },
  'log-level': { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal'] as const;
const MAX_SOURCE_TIMEOUT_MS = 10_000;

export function serveUsage(): string {
  return `oidc-publisher serve: serve a cluster's service-account issuer documents over HTTP, from memory,
for an Ingress or load balancer to expose as the public issuer (instead of a bucket).

Usage:
  oidc-publisher serve --issuer <https url> [--kubeconfig <file>] [flags]

It serves exactly GET and HEAD of <path-prefix>/.well-known/openid-configuration (application/json)
and <path-prefix>/openid/v1/jwks (application/jwk-set+json), with Cache-Control, a strong ETag (the
SHA-256 of the bytes) and 304 on If-None-Match; 404 for any other path, 405 for other methods, and
503 until the documents have been read and validated once. The documents are read again every
--sync-interval; while the API server cannot be read, the last good ones keep being served.

Flags:
  --issuer <url>            the public issuer; must equal the API server's --service-account-issuer
  --kubeconfig <file>       the cluster to read the documents from (default: $KUBECONFIG,
                            ~/.kube/config, then in-cluster, whose rotating ServiceAccount token is
                            re-read). Your own kubeconfig, trusted: exec plugins and token files work
                            (the operator refuses them in kubeconfigs from Secrets). The identity
                            needs only get on the nonResourceURLs /.well-known/openid-configuration
                            and /openid/v1/jwks.
  --listen <host:port>      where to serve the documents (default :8080)
  --path-prefix </path>     serve the documents under this path, e.g. /cluster-a (default: none)
  --sync-interval <d>       how often to read the documents again, 1s to 24h (default 1m)
  --stale-after <d>         /readyz answers 503 once the last good read is older than this; longer
                            than --sync-interval (default 5m). /healthz stays 200.
  --health-addr <host:port> /healthz, /readyz and /metrics; empty to disable (default :8081,
                            every interface: kubelet probes connect to the Pod's IP)
  --jwks-uri <url>          jwks_uri written into the discovery document
                            (default: <issuer>/openid/v1/jwks)
  --cache-control <value>   Cache-Control of the documents (default "public, max-age=300")
  --log-level <level>       one of ${LOG_LEVELS.join(', ')} (default info)

Exit codes:
  0  stopped by SIGTERM or SIGINT
  1  could not start (kubeconfig, listen address in use), with the error code
  2  bad arguments
`;
}

export interface ServeArgs {
  help: false;
  kubeconfig?: string;
  spec: DocumentSpec;
  listen: ListenAddress;
  paths: ServePaths;
  syncIntervalMs: number;
  staleAfterMs: number;
  /** host:port for /healthz, /readyz and /metrics, or '' for none. */
  healthAddr: string;
  logLevel: (typeof LOG_LEVELS)[number];
}

/** Parses the arguments without I/O: CONFIG_INVALID naming every problem at once. */
export function parseServeArgs(argv: readonly string[]): { help: true } | ServeArgs {
  let values: Partial<Record<Exclude<keyof typeof OPTIONS, 'help'>, string>> & { help?: boolean };
  try {
    ({ values } = parseArgs({ args: [...argv], options: OPTIONS, strict: true, allowPositionals: false }));
  } catch (err) {
    throw new OidcPublisherError('CONFIG_INVALID', describeError(err).split('\n')[0] ?? 'bad arguments');
  }
  if (values.help) return { help: true };
  const problems: string[] = [];
  const { spec, problems: specProblems } = standaloneSpec({
    issuer: values.issuer,
    jwksURI: values['jwks-uri'],
    cacheControl: values['cache-control'],
  });
  problems.push(...specProblems);
  const listenText = values.listen ?? ':8080';
  const listen = parseListenAddress(listenText);
  if (!listen) problems.push(`--listen: ${JSON.stringify(listenText)} is not host:port`);
  const healthAddr = values['health-addr'] ?? ':8081';
  if (healthAddr !== '' && !parseListenAddress(healthAddr)) {
    problems.push(`--health-addr: ${JSON.stringify(healthAddr)} is not host:port`);
  }
  if (listen && healthAddr !== '' && listenText === healthAddr) {
    problems.push('--listen and --health-addr: must differ');
  }
  const prefix = values['path-prefix'] ?? '';
  problems.push(...pathPrefixProblems(prefix));
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
  const logLevel = values['log-level'] ?? 'info';
  if (!(LOG_LEVELS as readonly string[]).includes(logLevel)) {
    problems.push(`--log-level: ${JSON.stringify(logLevel)} is not one of ${LOG_LEVELS.join(', ')}`);
  }
  if (values.kubeconfig === '') problems.push('--kubeconfig: empty');
  if (problems.length > 0 || !listen) throw new OidcPublisherError('CONFIG_INVALID', problems.join('; '));
  return {
    help: false,
    spec,
    listen,
    paths: servePaths(prefix),
    syncIntervalMs,
    staleAfterMs,
    healthAddr,
    logLevel: logLevel as ServeArgs['logLevel'],
    ...(values.kubeconfig !== undefined ? { kubeconfig: values.kubeconfig } : {}),
  };
}

/**
 * The documents being served: replaced only by a read that validated, kept
 * through failed reads. Reads every sync interval, sooner (1s, 2s, 4s, ...)
 * after a failure.
 */
export class IssuerDocuments {
  readonly #source: Pick<DocumentSource, 'fetchDocuments'>;
  readonly #spec: DocumentSpec;
  readonly #log: Logger;
  readonly #metrics: ServeMetrics;
  readonly #intervalMs: number;
  readonly #now: () => number;
  #held: { docs: HeldDocuments; at: number } | undefined;
  #stop = new AbortController();
  #loop: Promise<void> | undefined;

  constructor(opts: {
    source: Pick<DocumentSource, 'fetchDocuments'>;
    spec: DocumentSpec;
    log: Logger;
    metrics: ServeMetrics;
    syncIntervalMs: number;
    now?: () => number;
  }) {
    this.#source = opts.source;
    this.#spec = opts.spec;
    this.#log = opts.log;
    this.#metrics = opts.metrics;
    this.#intervalMs = opts.syncIntervalMs;
    this.#now = opts.now ?? Date.now;
  }

  get documents(): HeldDocuments | undefined {
    return this.#held?.docs;
  }

  /** Whether the last good read is at most `maxAgeMs` old. */
  fresh(maxAgeMs: number): boolean {
    return this.#held !== undefined && this.#now() - this.#held.at <= maxAgeMs;
  }

  /** Reads, validates and renders the documents; on success serves them. Never throws. */
  async refresh(): Promise<boolean> {
    let result: string;
    try {
      const raw = await this.#source.fetchDocuments();
      const now = this.#now();
      const prep = prepare(this.#spec, raw, { previous: undefined, now: new Date(now) });
      if (prep.kind === 'invalid') throw prep.error;
      if (prep.kind === 'issuerMismatch') {
        result = Reason.IssuerMismatch;
        this.#log.warn(
          { issuer: prep.issuer, expected: prep.expected, serving: this.#held ? 'last good' : 'nothing' },
          "the API server's issuer differs from --issuer; not serving its documents",
        );
      } else {
        const jwks = prep.objects.find((o) => o.role === 'jwks');
        const discovery = prep.objects.find((o) => o.role === 'discovery');
        if (!jwks || !discovery) throw new Error('prepare rendered no JWKS or discovery document');
        const changed =
          this.#held?.docs.jwks.sha256 !== jwks.sha256 ||
          this.#held.docs.discovery.sha256 !== discovery.sha256;
        this.#held = { docs: { jwks, discovery }, at: now };
        this.#metrics.lastRefresh.set(now / 1000);
        this.#metrics.keys.set(prep.keys.length);
        this.#metrics.refreshes.inc({ result: 'ok' });
        const fields = { jwks: jwks.sha256, discovery: discovery.sha256, keys: prep.keys.length };
        if (changed) this.#log.info(fields, 'serving new documents');
        else this.#log.debug(fields, 'documents unchanged');
        return true;
      }
    } catch (err) {
      result = isOidcPublisherError(err) ? err.code : 'ERROR';
      this.#log.warn(
        { err, serving: this.#held ? 'last good' : 'nothing' },
        'reading the documents failed; keeping what is served',
      );
    }
    this.#metrics.refreshes.inc({ result });
    return false;
  }

  /** Reads now, then every sync interval, until stop(). */
  start(): void {
    if (this.#loop) return;
    const signal = this.#stop.signal;
    this.#loop = (async () => {
      let failures = 0;
      while (!signal.aborted) {
        const ok = await this.refresh();
        failures = ok ? 0 : failures + 1;
        const delay = ok
          ? this.#intervalMs
          : Math.min(this.#intervalMs, 1000 * 2 ** Math.min(failures - 1, 16));
        await sleep(delay, undefined, { signal }).catch(() => {});
      }
    })();
  }

  async stop(): Promise<void> {
    this.#stop.abort();
    await this.#loop;
  }
}

/** The HTTP server of the two documents. */
export function startIssuerServer(
  address: ListenAddress,
  deps: { paths: ServePaths; documents: () => HeldDocuments | undefined; metrics: ServeMetrics },
  limits: HttpLimits = SERVE_LIMITS,
): Promise<Server> {
  const server = createLimitedServer(limits, (req, res) => {
    const ifNoneMatch = req.headers['if-none-match'];
    const answer = respond(
      { method: req.method ?? 'GET', url: req.url ?? '/', ifNoneMatch },
      deps.paths,
      deps.documents(),
    );
    const path = answer.route === 'other' ? 'other' : deps.paths[answer.route];
    deps.metrics.requests.inc({ path, status: String(answer.status) });
    res.writeHead(answer.status, answer.headers);
    res.end(answer.body);
  });
  return listen(server, address);
}

export interface ServeIo {
  stdout(text: string): void;
  stderr(text: string): void;
  /** Resolves with the signal's name when the process is asked to stop. */
  stopped(): Promise<string>;
}

const defaultIo: ServeIo = {
  stdout: (t) => process.stdout.write(t),
  stderr: (t) => process.stderr.write(t),
  stopped: () =>
    new Promise((resolve) => {
      process.once('SIGTERM', () => resolve('SIGTERM'));
      process.once('SIGINT', () => resolve('SIGINT'));
    }),
};

function closeServer(server: Server | undefined): Promise<void> {
  if (!server) return Promise.resolve();
  return new Promise((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  });
}

export async function runServe(
  argv: readonly string[],
  env: NodeJS.ProcessEnv,
  io: ServeIo = defaultIo,
): Promise<number> {
  const fail = (code: number, err: unknown) => {
    const prefix = isOidcPublisherError(err) && err.code !== 'CONFIG_INVALID' ? `${err.code}: ` : '';
    io.stderr(`oidc-publisher serve: ${prefix}${describeError(err).replaceAll('\n', ' ')}\n`);
    return code;
  };
  let args: { help: true } | ServeArgs;
  try {
    args = parseServeArgs(argv);
  } catch (err) {
    return fail(2, err);
  }
  if (args.help) {
    io.stdout(serveUsage());
    return 0;
  }
  const stopped = io.stopped();
  const log = createLogger({ level: args.logLevel });
  const metrics = new ServeMetrics();
  let source: ApiServerSource;
  try {
    source = new ApiServerSource(await loadKubeAccess(args.kubeconfig, env), {
      timeoutMs: Math.min(MAX_SOURCE_TIMEOUT_MS, args.syncIntervalMs),
    });
  } catch (err) {
    return fail(1, err);
  }
  const documents = new IssuerDocuments({
    source,
    spec: args.spec,
    log,
    metrics,
    syncIntervalMs: args.syncIntervalMs,
  });
  let server: Server | undefined;
  let health: Server | undefined;
  try {
    server = await startIssuerServer(args.listen, {
      paths: args.paths,
      documents: () => documents.documents,
      metrics,
    });
    if (args.healthAddr !== '') {
      health = await startHealthServer(args.healthAddr, {
        ready: () => documents.fresh(args.staleAfterMs),
        metrics: metrics.registry,
      });
    }
  } catch (err) {
    await closeServer(server);
    source.close();
    const code = (err as { code?: string } | undefined)?.code;
    return fail(1, `listen: ${code ?? describeError(err)}`);
  }
  documents.start();
  log.info(
    {
      server: source.server,
      issuer: args.spec.issuerURL,
      listen: server.address(),
      paths: args.paths,
      syncInterval: formatDuration(args.syncIntervalMs),
      staleAfter: formatDuration(args.staleAfterMs),
    },
    'serving the issuer documents',
  );
  const why = await stopped;
  log.info({ why }, 'shutting down');
  await documents.stop();
  await Promise.all([closeServer(server), closeServer(health)]);
  source.close();
  return 0;
}

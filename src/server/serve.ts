/**
 * `oidc-publisher serve`: the issuer documents of one or more clusters served
 * over HTTP or HTTPS from memory, as the public issuer, instead of a bucket.
 * Each publisher's documents are read from its API server every sync interval
 * through the same source (ApiServerSource) and validated and rendered by the
 * same core (prepare, with key retention) as the operator's; only a validated
 * document is ever served, and the last good ones keep being served while the
 * API server is unreachable. /readyz turns 503 once any publisher's are older
 * than --stale-after.
 *
 * Retired keys are remembered in memory, as the operator remembers them in
 * status: the JWKS this process served last is the "stored JWKS" retention
 * takes a retired key from (it wrote those bytes itself), and the key records
 * of the last good read are the "status". A restart forgets them.
 *
 * Exit codes: 0 stopped by SIGTERM or SIGINT, 1 could not start (kubeconfig,
 * TLS files, listen), 2 bad arguments.
 */
import type { Server } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import { collectDefaultMetrics, Registry } from 'prom-client';
import { Reason } from '../api/conditions.ts';
import { type CommandIo, type Fail, runCommand } from '../commands/args.ts';
import { formatDuration } from '../core/duration.ts';
import { type KeyRecord, storedJwks } from '../core/keys.ts';
import { type DocumentSpec, prepare } from '../core/plan.ts';
import { describeError, isOidcPublisherError } from '../errors.ts';
import { loadKubeAccess } from '../kube/access.ts';
import { createLogger, type Logger } from '../log.ts';
import { ApiServerSource, type DocumentSource } from '../sources/apiserver.ts';
import { startHealthServer } from './health.ts';
import {
  createLimitedSecureServer,
  createLimitedServer,
  type HttpLimits,
  listen,
  SERVE_LIMITS,
} from './http-server.ts';
import type { ListenAddress } from './listen-address.ts';
import { parseServeArgs, type ServeArgs, serveUsage } from './serve-args.ts';
import { ServeMetrics } from './serve-metrics.ts';
import {
  type HeldDocuments,
  hstsHeader,
  notFound,
  respond,
  type ServePaths,
  selectPublisher,
} from './serve-response.ts';
import { CertificateReloader, type KeyPair } from './tls-files.ts';

const MAX_SOURCE_TIMEOUT_MS = 10_000;

/**
 * The documents being served for one issuer: replaced only by a read that validated, kept
 * through failed reads. Reads every sync interval (sooner when a retired key expires before),
 * and 1s, 2s, 4s, ... after a failure.
 */
export class IssuerDocuments {
  readonly #source: Pick<DocumentSource, 'fetchDocuments'>;
  readonly #spec: DocumentSpec;
  readonly #log: Logger;
  readonly #metrics: ServeMetrics;
  readonly #intervalMs: number;
  readonly #now: () => number;
  #held: { docs: HeldDocuments; at: number } | undefined;
  /** The keys of the last good read, with when each left the source: retention's memory. */
  #records: KeyRecord[] | undefined;
  #nextExpiryInMs: number | undefined;
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

  get issuer(): string {
    return this.#spec.issuerURL;
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
    const issuer = this.#spec.issuerURL;
    let result: string;
    try {
      const raw = await this.#source.fetchDocuments();
      const now = this.#now();
      const served = this.#held?.docs.jwks;
      const prep = prepare(this.#spec, raw, {
        previous: this.#records,
        now: new Date(now),
        // What this process served last, in its own memory: the bytes it rendered itself.
        ...(served ? { stored: storedJwks(served.body, served.sha256) } : {}),
      });
      if (prep.kind === 'invalid') throw prep.error;
      if (prep.kind === 'issuerMismatch') {
        result = Reason.IssuerMismatch;
        this.#log.warn(
          { issuer: prep.issuer, expected: prep.expected, serving: this.#held ? 'last good' : 'nothing' },
          "the API server's issuer differs from the configured one; not serving its documents",
        );
      } else {
        const jwks = prep.objects.find((o) => o.role === 'jwks');
        const discovery = prep.objects.find((o) => o.role === 'discovery');
        if (!jwks || !discovery) throw new Error('prepare rendered no JWKS or discovery document');
        const changed =
          this.#held?.docs.jwks.sha256 !== jwks.sha256 ||
          this.#held.docs.discovery.sha256 !== discovery.sha256;
        this.#held = { docs: { jwks, discovery }, at: now };
        this.#records = prep.retention.records;
        this.#nextExpiryInMs = prep.retention.nextExpiryInMs;
        this.#metrics.lastRefresh.labels(issuer).set(now / 1000);
        this.#metrics.keys.labels(issuer).set(prep.keys.length);
        this.#metrics.retainedKeys.labels(issuer).set(prep.retention.fromStorage.length);
        this.#metrics.refreshes.labels(issuer, 'ok').inc();
        for (const change of prep.retention.changes) {
          if (change.kind === 'refused') this.#log.warn(change, 'a retired key is not kept');
          else this.#log.info(change, `key ${change.kind}`);
        }
        const fields = {
          jwks: jwks.sha256,
          discovery: discovery.sha256,
          keys: prep.keys.length,
          retained: prep.retention.fromStorage.length,
        };
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
    this.#metrics.refreshes.labels(issuer, result).inc();
    return false;
  }

  /** How long to wait after a read: the interval, less when a retired key expires sooner. */
  delayAfter(ok: boolean, failures: number): number {
    if (!ok) return Math.min(this.#intervalMs, 1000 * 2 ** Math.min(failures - 1, 16));
    const expiry = this.#nextExpiryInMs;
    return expiry === undefined ? this.#intervalMs : Math.min(this.#intervalMs, Math.max(1000, expiry));
  }

  /** Reads now, then again after each delay, until stop(). */
  start(): void {
    if (this.#loop) return;
    const signal = this.#stop.signal;
    this.#loop = (async () => {
      let failures = 0;
      while (!signal.aborted) {
        const ok = await this.refresh();
        failures = ok ? 0 : failures + 1;
        await sleep(this.delayAfter(ok, failures), undefined, { signal }).catch(() => {});
      }
    })();
  }

  async stop(): Promise<void> {
    this.#stop.abort();
    await this.#loop;
  }
}

/** One publisher as the server sees it: where it answers and what it holds. */
export interface ServedPublisher {
  issuer: string;
  /** The Host it answers on (lower case, no port); absent: any host. */
  host?: string | undefined;
  paths: ServePaths;
  documents(): HeldDocuments | undefined;
}

/** HTTPS: the first pair, and the Strict-Transport-Security max-age (0 for none). */
export interface ServeTls {
  pair: Pick<KeyPair, 'cert' | 'key'>;
  hstsMaxAgeMs: number;
}

/**
 * The HTTP or HTTPS server of the publishers' documents. Over HTTPS each answer carries
 * Strict-Transport-Security, and `server.setSecureContext` serves a new pair to new connections.
 */
export function startIssuerServer(
  address: ListenAddress,
  deps: { publishers: readonly ServedPublisher[]; metrics: ServeMetrics; tls?: ServeTls },
  limits: HttpLimits = SERVE_LIMITS,
): Promise<Server> {
  const hsts = deps.tls ? hstsHeader(deps.tls.hstsMaxAgeMs) : undefined;
  const handler: Parameters<typeof createLimitedServer>[1] = (req, res) => {
    const method = req.method ?? 'GET';
    const url = req.url ?? '/';
    const i = selectPublisher(deps.publishers, req.headers.host, url);
    const publisher = i === undefined ? undefined : deps.publishers[i];
    const answer = publisher
      ? respond(
          { method, url, ifNoneMatch: req.headers['if-none-match'] },
          publisher.paths,
          publisher.documents(),
        )
      : notFound(method);
    const path = !publisher || answer.route === 'other' ? 'other' : publisher.paths[answer.route];
    deps.metrics.requests.labels(publisher?.issuer ?? '', path, String(answer.status)).inc();
    res.writeHead(
      answer.status,
      hsts ? { ...answer.headers, 'strict-transport-security': hsts } : answer.headers,
    );
    res.end(answer.body);
  };
  const server = deps.tls
    ? createLimitedSecureServer(limits, { cert: deps.tls.pair.cert, key: deps.tls.pair.key }, handler)
    : createLimitedServer(limits, handler);
  return listen(server, address);
}

export interface ServeIo extends CommandIo {
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
  const command = { name: 'serve', usage: serveUsage, parse: () => parseServeArgs(argv), errorCodes: true };
  return runCommand(command, io, (args, fail) => serve(args, env, io, fail));
}

async function serve(args: ServeArgs, env: NodeJS.ProcessEnv, io: ServeIo, fail: Fail): Promise<number> {
  const stopped = io.stopped();
  const log = createLogger({ level: args.logLevel });
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const metrics = new ServeMetrics(registry);
  const sources: ApiServerSource[] = [];
  const closeSources = () => {
    for (const s of sources) s.close();
  };
  try {
    for (const p of args.publishers) {
      sources.push(
        new ApiServerSource(await loadKubeAccess(p.kubeconfig, env), {
          timeoutMs: Math.min(MAX_SOURCE_TIMEOUT_MS, args.syncIntervalMs),
        }),
      );
    }
  } catch (err) {
    closeSources();
    return fail(1, err);
  }
  const held = args.publishers.map(
    (p, i) =>
      new IssuerDocuments({
        source: sources[i]!,
        spec: p.spec,
        log: args.publishers.length > 1 ? log.child({ issuer: p.spec.issuerURL }) : log,
        metrics,
        syncIntervalMs: args.syncIntervalMs,
      }),
  );
  let server: Server | undefined;
  let health: Server | undefined;
  let certificates: CertificateReloader | undefined;
  try {
    if (args.tls) {
      const live: { server?: Server } = {};
      certificates = new CertificateReloader({
        files: args.tls,
        log,
        metrics: {
          reloaded: (result) => metrics.tlsReloads.labels(result).inc(),
          expiry: (notAfter) => metrics.tlsExpiry.set(notAfter.getTime() / 1000),
        },
        apply: (pair) =>
          (live.server as { setSecureContext?: (o: object) => void } | undefined)?.setSecureContext?.({
            cert: pair.cert,
            key: pair.key,
            minVersion: 'TLSv1.2',
          }),
      });
      server = await startIssuerServer(args.listen, {
        publishers: publishersOf(args, held),
        metrics,
        tls: { pair: certificates.current, hstsMaxAgeMs: args.hstsMaxAgeMs },
      });
      live.server = server;
      certificates.start();
    } else {
      server = await startIssuerServer(args.listen, { publishers: publishersOf(args, held), metrics });
    }
    if (args.healthAddr !== '') {
      health = await startHealthServer(args.healthAddr, {
        ready: () => held.every((d) => d.fresh(args.staleAfterMs)),
        metrics: metrics.registry,
      });
    }
  } catch (err) {
    certificates?.stop();
    await closeServer(server);
    closeSources();
    const code = (err as { code?: string } | undefined)?.code;
    if (!args.tls || certificates) return fail(1, `listen: ${code ?? describeError(err)}`);
    return fail(1, `TLS files: ${describeError(err)}`);
  }
  for (const d of held) d.start();
  log.info(
    {
      publishers: args.publishers.map((p, i) => ({
        issuer: p.spec.issuerURL,
        server: sources[i]?.server,
        host: p.host ?? '*',
        paths: p.paths,
      })),
      listen: server.address(),
      tls: certificates
        ? { serial: certificates.current.serial, notAfter: certificates.current.notAfter.toISOString() }
        : false,
      syncInterval: formatDuration(args.syncIntervalMs),
      staleAfter: formatDuration(args.staleAfterMs),
      keyRetention: formatDuration(args.keyRetentionMs),
    },
    'serving the issuer documents',
  );
  const why = await stopped;
  log.info({ why }, 'shutting down');
  certificates?.stop();
  await Promise.all(held.map((d) => d.stop()));
  await Promise.all([closeServer(server), closeServer(health)]);
  closeSources();
  return 0;
}

function publishersOf(args: ServeArgs, held: readonly IssuerDocuments[]): ServedPublisher[] {
  return args.publishers.map((p, i) => ({
    issuer: p.spec.issuerURL,
    host: p.host,
    paths: p.paths,
    documents: () => held[i]?.documents,
  }));
}

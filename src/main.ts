/**
 * Wiring: configuration, clients, controller, health endpoints, signals.
 * Nothing else reads the environment or exits the process.
 */
import { collectDefaultMetrics, Registry } from 'prom-client';
import { type Config, parseConfig, usage } from './config.ts';
import { CanaryTokens } from './controller/canary.ts';
import { Controller } from './controller/controller.ts';
import { EventRecorder } from './controller/event-recorder.ts';
import { IntegrityKey } from './controller/integrity-key.ts';
import { LeaderElector } from './controller/leader.ts';
import { KubeLeases } from './controller/leases.ts';
import { Reconciler } from './controller/reconciler.ts';
import { describeError, isOidcPublisherError } from './errors.ts';
import { loadKubeAccess } from './kube/access.ts';
import { ClusterClient } from './kube/cluster-client.ts';
import { TokenBucket } from './kube/rate-limit.ts';
import { createLogger } from './log.ts';
import { startHealthServer } from './server/health.ts';
import { Metrics } from './server/metrics.ts';
import { AnonymousIssuerReader } from './sources/relying-party.ts';
import { SourceCache } from './sources/source-cache.ts';
import { StoreFactory } from './stores/factory.ts';
import { VERSION } from './version.ts';

/** The controller's name, the `name` label of the work queue metrics (controller-runtime's). */
const CONTROLLER_NAME = 'oidcpublisher';

export async function runOperator(config: Readonly<Config>, env: NodeJS.ProcessEnv): Promise<number> {
  const log = createLogger({ level: config.logLevel });
  const access = await loadKubeAccess(config.kubeconfig, env);
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const metrics = new Metrics(registry);
  // One client-side rate limit for the operator's calls and its Events (client-go's clientset
  // shares one the same way); leader election has a bucket of its own, so renewals never queue
  // behind a burst of reconciles.
  const bucket = () =>
    config.kubeApiQps > 0 ? new TokenBucket(config.kubeApiQps, config.kubeApiBurst) : undefined;
  const limiter = bucket();
  const cluster = new ClusterClient(access, metrics.kubeRequest, { limiter });
  const events = new EventRecorder(access, config.leaderElection.identity, log, metrics.kubeRequest, limiter);
  const sources = new SourceCache({
    secrets: cluster,
    namespace: config.namespace,
    timeoutMs: config.sourceTimeoutMs,
    defaultAccess: access,
  });
  const stores = new StoreFactory({
    secrets: cluster,
    namespace: config.namespace,
    timeoutMs: config.storageTimeoutMs,
    allowedHosts: config.storageAllowedHosts,
    gcsTokenFileDirs: config.gcsTokenFileDirs,
  });
  const issuerReader = new AnonymousIssuerReader();
  const canary = new CanaryTokens(cluster, config.namespace);
  const integrityKey = new IntegrityKey(cluster, config.namespace, log);
  const controller = new Controller(
    cluster,
    (getObject, listObjects) =>
      new Reconciler({
        cluster,
        getObject,
        listObjects,
        sources,
        stores,
        issuerReader,
        log,
        hooks: metrics,
        events,
        specPolicy: { allowForeignJwksURI: config.allowForeignJwksURI },
        canary,
        integrityKey,
      }),
    log,
    {
      concurrency: config.concurrency,
      backoffBaseMs: config.backoffBaseMs,
      backoffMaxMs: config.backoffMaxMs,
      ...(config.watchName ? { watchName: config.watchName } : {}),
      queueObserver: metrics.workQueue(CONTROLLER_NAME),
    },
    (name) => metrics.forget(name),
  );
  const health = config.healthAddr
    ? await startHealthServer(config.healthAddr, {
        ready: () => controller.informer.synced,
        metrics: metrics.registry,
      })
    : undefined;
  log.info(
    {
      version: VERSION,
      namespace: config.namespace,
      server: access.server,
      ...(access.viaClientNode ? { kubeconfigVia: `client-node (${access.viaClientNode})` } : {}),
      concurrency: config.concurrency,
      kubeApiQps: config.kubeApiQps,
      kubeApiBurst: config.kubeApiBurst,
      leaderElection: config.leaderElection.enabled,
      identity: config.leaderElection.identity,
    },
    'starting oidc-publisher',
  );
  await controller.start();

  let lostLeadership = false;
  const elector = config.leaderElection.enabled
    ? new LeaderElector(
        // A request that outlives the renew deadline is of no use: the lease is lost by then.
        new KubeLeases(access, {
          namespace: config.namespace,
          name: config.leaderElection.leaseName,
          timeoutMs: config.leaderElection.renewDeadlineMs,
          observer: metrics.kubeRequest,
          limiter: bucket(),
        }),
        {
          namespace: config.namespace,
          name: config.leaderElection.leaseName,
          identity: config.leaderElection.identity,
          leaseDurationMs: config.leaderElection.leaseDurationMs,
          renewDeadlineMs: config.leaderElection.renewDeadlineMs,
          retryPeriodMs: config.leaderElection.retryPeriodMs,
        },
        log,
      )
    : undefined;
  const stopped = new Promise<string>((resolve) => {
    process.once('SIGTERM', () => resolve('SIGTERM'));
    process.once('SIGINT', () => resolve('SIGINT'));
    if (elector) {
      elector.start({
        onStartedLeading: () => {
          metrics.leader.set(1);
          controller.startWorkers();
        },
        onStoppedLeading: () => {
          metrics.leader.set(0);
          lostLeadership = true;
          resolve('lost leadership');
        },
      });
    } else {
      metrics.leader.set(1);
      controller.startWorkers();
    }
  });
  const why = await stopped;
  log.info({ why }, 'shutting down');
  // A replica that lost the lease must not finish its reconciles: the new leader may already be
  // writing. Like controller-runtime, it skips the graceful wait (and closing the clients below
  // aborts their requests in flight).
  const finished = await controller.stop(lostLeadership ? 0 : config.shutdownGraceMs);
  await elector?.stop();
  health?.close();
  sources.close();
  stores.close();
  cluster.close();
  events.close();
  issuerReader.close();
  return lostLeadership || !finished ? 1 : 0;
}

export async function main(argv: readonly string[], env: NodeJS.ProcessEnv): Promise<number> {
  const [first, ...rest] = argv;
  if (first === '--help' || first === '-h' || first === 'help') {
    process.stdout.write(usage());
    return 0;
  }
  if (first === '--version' || first === 'version') {
    process.stdout.write(`${VERSION}\n`);
    return 0;
  }
  // Subcommands are loaded only when run: the operator does not carry their dependencies.
  if (first === 'authn-config') return (await import('./commands/authn-config.ts')).runAuthnConfig(rest, env);
  if (first === 'publish') return (await import('./commands/publish.ts')).runPublish(rest, env);
  if (first === 'serve') return (await import('./server/serve.ts')).runServe(rest, env);
  if (first === 'register') return (await import('./commands/register.ts')).runRegister(rest, env);
  const args = first === 'run' ? rest : argv;
  let config: Readonly<Config>;
  try {
    config = parseConfig(args, env);
  } catch (err) {
    process.stderr.write(`${describeError(err)}\n\n${usage()}`);
    return 2;
  }
  try {
    return await runOperator(config, env);
  } catch (err) {
    process.stderr.write(
      `oidc-publisher: ${isOidcPublisherError(err) ? `${err.code}: ` : ''}${describeError(err)}\n`,
    );
    return 1;
  }
}

/** The process entry point: runs main and exits with its code, even if a handle would keep Node alive. */
export async function run(): Promise<never> {
  const code = await main(process.argv.slice(2), process.env);
  process.exit(code);
}

/**
 * Wiring: configuration, clients, controller, health endpoints, signals.
 * Nothing else reads the environment or exits the process.
 */
import { KubeConfig } from '@kubernetes/client-node';
import { type Config, parseConfig, usage } from './config.ts';
import { Controller } from './controller/controller.ts';
import { ClusterClient } from './controller/kube.ts';
import { Reconciler } from './controller/reconciler.ts';
import { SourceCache } from './controller/sources.ts';
import { describeError, isOidcPublisherError } from './errors.ts';
import { createLogger } from './log.ts';
import { startHealthServer } from './server/health.ts';
import { StoreFactory } from './stores/factory.ts';
import { VERSION } from './version.ts';

export async function runOperator(config: Readonly<Config>): Promise<number> {
  const log = createLogger({ level: config.logLevel });
  const kc = new KubeConfig();
  if (config.kubeconfig) kc.loadFromFile(config.kubeconfig);
  else kc.loadFromDefault();
  const cluster = new ClusterClient(kc);
  const sources = new SourceCache({
    secrets: cluster,
    namespace: config.namespace,
    timeoutMs: config.sourceTimeoutMs,
    defaultKubeConfig: kc,
  });
  const stores = new StoreFactory({
    secrets: cluster,
    namespace: config.namespace,
    timeoutMs: config.storageTimeoutMs,
  });
  const controller = new Controller(
    kc,
    cluster,
    (getObject) => new Reconciler({ cluster, getObject, sources, stores, log }),
    log,
    {
      concurrency: config.concurrency,
      backoffBaseMs: config.backoffBaseMs,
      backoffMaxMs: config.backoffMaxMs,
      ...(config.watchName ? { watchName: config.watchName } : {}),
    },
  );
  const health = config.healthAddr
    ? await startHealthServer(config.healthAddr, { ready: () => controller.informer.synced })
    : undefined;
  log.info(
    {
      version: VERSION,
      namespace: config.namespace,
      server: kc.getCurrentCluster()?.server,
      concurrency: config.concurrency,
    },
    'starting oidc-publisher',
  );
  await controller.start();

  const signal = await new Promise<NodeJS.Signals>((resolve) => {
    process.once('SIGTERM', () => resolve('SIGTERM'));
    process.once('SIGINT', () => resolve('SIGINT'));
  });
  log.info({ signal }, 'shutting down');
  const finished = await controller.stop(config.shutdownGraceMs);
  health?.close();
  sources.close();
  stores.close();
  return finished ? 0 : 1;
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
  const args = first === 'run' ? rest : argv;
  let config: Readonly<Config>;
  try {
    config = parseConfig(args, env);
  } catch (err) {
    process.stderr.write(`${describeError(err)}\n\n${usage()}`);
    return 2;
  }
  try {
    return await runOperator(config);
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

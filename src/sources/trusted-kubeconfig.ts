/**
 * The user's own kubeconfig, for `publish` and `serve`: loaded the way kubectl
 * loads it, exec plugins, token files and client-key files included. Only a
 * kubeconfig the person running the command chose is loaded this way; those
 * the operator reads from Secrets go through parseUntrustedKubeconfig.
 */
import { KubeConfig } from '@kubernetes/client-node';
import { OidcPublisherError } from '../errors.ts';

/** `path`, or client-node's default: $KUBECONFIG, ~/.kube/config, then the in-cluster ServiceAccount. */
export function loadTrustedKubeConfig(path: string | undefined): KubeConfig {
  const kc = new KubeConfig();
  try {
    if (path) kc.loadFromFile(path);
    else kc.loadFromDefault();
  } catch (err) {
    const code = (err as { code?: string } | undefined)?.code;
    throw new OidcPublisherError(
      'KUBECONFIG_INVALID',
      `kubeconfig ${path ? JSON.stringify(path) : '(default)'} could not be loaded${code ? ` (${code})` : ''}`,
      { cause: err },
    );
  }
  const server = kc.getCurrentCluster()?.server;
  if (!server?.startsWith('https://')) {
    throw new OidcPublisherError(
      'KUBECONFIG_INVALID',
      `kubeconfig ${path ? JSON.stringify(path) : '(default)'} ${server ? `names a server that is not https: ${JSON.stringify(server)}` : 'has no current cluster'}`,
    );
  }
  return kc;
}

/**
 * The operator's own calls to the API server it runs against: its
 * OidcPublishers, their status and finalizers, and Secrets in its namespace.
 * API errors are mapped here; their messages (which embed response bodies)
 * are never passed on.
 */
import {
  ApiException,
  CoreV1Api,
  CustomObjectsApi,
  type KubeConfig,
  PatchStrategy,
  setHeaderOptions,
} from '@kubernetes/client-node';
import {
  API_GROUP,
  API_PLURAL,
  API_VERSION,
  type OidcPublisher,
  type OidcPublisherStatus,
} from '../api/types.ts';
import { OidcPublisherError } from '../errors.ts';

export interface OidcPublisherList {
  metadata?: { resourceVersion?: string };
  items: OidcPublisher[];
}

function apiError(op: string, err: unknown): OidcPublisherError {
  if (err instanceof ApiException) {
    const reason = (err.body as { reason?: string } | undefined)?.reason;
    return new OidcPublisherError('KUBE_API_ERROR', `${op}: HTTP ${err.code}${reason ? ` ${reason}` : ''}`);
  }
  const code = (err as { code?: string } | undefined)?.code;
  return new OidcPublisherError(
    'KUBE_API_ERROR',
    `${op}: ${code ?? (err instanceof Error ? err.name : 'failed')}`,
    {
      cause: err,
    },
  );
}

export class ClusterClient {
  readonly kc: KubeConfig;
  readonly #custom: CustomObjectsApi;
  readonly #core: CoreV1Api;

  constructor(kc: KubeConfig) {
    this.kc = kc;
    this.#custom = kc.makeApiClient(CustomObjectsApi);
    this.#core = kc.makeApiClient(CoreV1Api);
  }

  async listPublishers(): Promise<OidcPublisherList> {
    return (await this.#custom.listClusterCustomObject({
      group: API_GROUP,
      version: API_VERSION,
      plural: API_PLURAL,
    })) as OidcPublisherList;
  }

  /** The Secret's data, decoded; SECRET_NOT_FOUND when it does not exist. */
  async readSecret(namespace: string, name: string): Promise<Map<string, Buffer>> {
    try {
      const secret = await this.#core.readNamespacedSecret({ name, namespace });
      const out = new Map<string, Buffer>();
      for (const [k, v] of Object.entries(secret.data ?? {})) out.set(k, Buffer.from(v, 'base64'));
      return out;
    } catch (err) {
      if (err instanceof ApiException && err.code === 404) {
        throw new OidcPublisherError('SECRET_NOT_FOUND', `Secret ${namespace}/${name} not found`);
      }
      if (err instanceof ApiException && err.code === 403) {
        throw new OidcPublisherError(
          'SECRET_FORBIDDEN',
          `the operator may not read Secret ${namespace}/${name} (Secrets must be in the operator's namespace)`,
        );
      }
      throw apiError(`read Secret ${namespace}/${name}`, err);
    }
  }

  async patchStatus(name: string, status: OidcPublisherStatus): Promise<void> {
    try {
      await this.#custom.patchClusterCustomObjectStatus(
        { group: API_GROUP, version: API_VERSION, plural: API_PLURAL, name, body: { status } },
        setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
      );
    } catch (err) {
      if (err instanceof ApiException && err.code === 404) return;
      throw apiError(`patch status of oidcpublisher/${name}`, err);
    }
  }

  /** Sets the finalizers, guarded by resourceVersion so a concurrent change is not overwritten. */
  async setFinalizers(
    name: string,
    finalizers: string[],
    resourceVersion: string | undefined,
  ): Promise<void> {
    try {
      await this.#custom.patchClusterCustomObject(
        {
          group: API_GROUP,
          version: API_VERSION,
          plural: API_PLURAL,
          name,
          body: { metadata: { finalizers, ...(resourceVersion ? { resourceVersion } : {}) } },
        },
        setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
      );
    } catch (err) {
      if (err instanceof ApiException && err.code === 404) return;
      throw apiError(`update finalizers of oidcpublisher/${name}`, err);
    }
  }
}

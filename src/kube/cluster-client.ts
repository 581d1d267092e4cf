/**
 * The operator's own calls to the API server it runs against: its
 * OidcPublishers, their status and finalizers, and Secrets in its namespace.
 * API errors are mapped here; their messages (which embed response bodies)
 * are never passed on. Requests share one keep-alive connection pool
 * (http.ts): a Secret is read on every sync.
 */
import {
  API_GROUP,
  API_PLURAL,
  API_VERSION,
  type OidcPublisher,
  type OidcPublisherStatus,
} from '../api/types.ts';
import type { CanaryRefusal } from '../core/canary.ts';
import { OidcPublisherError } from '../errors.ts';
import { secretAllows, secretNotAllowed } from '../secrets.ts';
import type { KubeAccess } from './access.ts';
import { KubeHttp, KubeHttpError, type KubeRequestObserver, type StreamOptions } from './http.ts';
import { DEFAULT_PAGE_SIZE, listAll } from './list.ts';
import type { TokenBucket } from './rate-limit.ts';

/** A token the API server issued, with when it expires. */
export interface IssuedToken {
  token: string;
  expiresAt: Date;
}

export interface OidcPublisherList {
  metadata?: { resourceVersion?: string };
  items: OidcPublisher[];
}

function apiError(op: string, err: unknown): OidcPublisherError {
  if (err instanceof KubeHttpError) {
    return new OidcPublisherError('KUBE_API_ERROR', `${op}: ${err.message}`);
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

/** A Secret the operator keeps, as read: the object (written back with new data) and its data, decoded. */
export interface OwnSecret {
  object: Record<string, unknown>;
  data: Map<string, Buffer>;
}

function secretPath(namespace: string, name: string): string {
  return `/api/v1/namespaces/${encodeURIComponent(namespace)}/secrets/${encodeURIComponent(name)}`;
}

const MERGE_PATCH = 'application/merge-patch+json';
const PUBLISHERS = `/apis/${API_GROUP}/${API_VERSION}/${API_PLURAL}`;

export interface ClusterClientOptions {
  /** The client-side rate limit (main.ts shares one with the EventRecorder); none when absent. */
  limiter?: TokenBucket | undefined;
  /** Objects per page of a list (`limit`); 0 lists in one answer. */
  pageSize?: number;
}

export class ClusterClient {
  readonly #http: KubeHttp;
  readonly #pageSize: number;

  /** `observer` is told of each request (metrics). */
  constructor(access: KubeAccess, observer?: KubeRequestObserver, opts: ClusterClientOptions = {}) {
    this.#http = new KubeHttp(access, { observer, limiter: opts.limiter });
    this.#pageSize = opts.pageSize ?? DEFAULT_PAGE_SIZE;
  }

  /** Every OidcPublisher, in pages of `pageSize`, and the resourceVersion to watch from. */
  async listPublishers(): Promise<OidcPublisherList> {
    try {
      return await listAll<OidcPublisher>((p) => this.#http.send('GET', p), PUBLISHERS, this.#pageSize);
    } catch (err) {
      throw apiError('list oidcpublishers', err);
    }
  }

  /** Streams watch events of OidcPublishers from `resourceVersion` (see Informer). */
  async watchPublishers(
    query: { resourceVersion: string; timeoutSeconds: number },
    onEvent: (event: unknown) => void,
    opts: StreamOptions,
  ): Promise<void> {
    const params = new URLSearchParams({
      watch: 'true',
      allowWatchBookmarks: 'true',
      timeoutSeconds: String(query.timeoutSeconds),
      ...(query.resourceVersion ? { resourceVersion: query.resourceVersion } : {}),
    });
    try {
      await this.#http.stream(`${PUBLISHERS}?${params}`, onEvent, opts);
    } catch (err) {
      // 410 Gone is how a watch says "list again": the informer sees it as it is.
      if (err instanceof KubeHttpError && err.status === 410) throw err;
      if (err instanceof KubeHttpError || typeof (err as { code?: unknown } | undefined)?.code === 'string') {
        throw apiError('watch oidcpublishers', err);
      }
      throw err;
    }
  }

  /**
   * The Secret's data, decoded; SECRET_NOT_FOUND when it does not exist, SECRET_NOT_ALLOWED when its
   * allowed-publishers annotation does not name `publisher` (see secrets.ts).
   */
  async readSecret(namespace: string, name: string, publisher: string): Promise<Map<string, Buffer>> {
    let secret:
      | { metadata?: { annotations?: Record<string, string> }; data?: Record<string, string> }
      | undefined;
    try {
      secret = (await this.#http.send(
        'GET',
        `/api/v1/namespaces/${encodeURIComponent(namespace)}/secrets/${encodeURIComponent(name)}`,
      )) as typeof secret;
    } catch (err) {
      if (err instanceof KubeHttpError && err.status === 404) {
        throw new OidcPublisherError('SECRET_NOT_FOUND', `Secret ${namespace}/${name} not found`);
      }
      if (err instanceof KubeHttpError && err.status === 403) {
        throw new OidcPublisherError(
          'SECRET_FORBIDDEN',
          `the operator may not read Secret ${namespace}/${name} (Secrets must be in the operator's namespace)`,
        );
      }
      throw apiError(`read Secret ${namespace}/${name}`, err);
    }
    if (!secretAllows(secret?.metadata?.annotations, publisher))
      throw secretNotAllowed(namespace, name, publisher);
    const out = new Map<string, Buffer>();
    for (const [k, v] of Object.entries(secret?.data ?? {})) out.set(k, Buffer.from(v, 'base64'));
    return out;
  }

  /**
   * A Secret the operator itself keeps (the record MAC key), read without the allowed-publishers
   * check: its data and the object as read, or undefined when it does not exist.
   */
  async readOwnSecret(namespace: string, name: string): Promise<OwnSecret | undefined> {
    try {
      const object = (await this.#http.send('GET', secretPath(namespace, name))) as Record<string, unknown>;
      const data = new Map<string, Buffer>();
      for (const [k, v] of Object.entries((object?.data ?? {}) as Record<string, string>))
        data.set(k, Buffer.from(v, 'base64'));
      return { object, data };
    } catch (err) {
      if (err instanceof KubeHttpError && err.status === 404) return undefined;
      throw apiError(`read Secret ${namespace}/${name}`, err);
    }
  }

  /**
   * Replaces the data of a Secret the operator keeps, as read (its resourceVersion guards the
   * write; labels and annotations stay as they are). 'conflict' when it changed or went since.
   */
  async updateOwnSecret(
    namespace: string,
    name: string,
    read: OwnSecret,
    data: readonly (readonly [string, Uint8Array])[],
  ): Promise<'written' | 'conflict'> {
    const metadata = { ...((read.object.metadata ?? {}) as Record<string, unknown>) };
    delete metadata.managedFields;
    const body = {
      ...read.object,
      metadata,
      data: Object.fromEntries(data.map(([k, v]) => [k, Buffer.from(v).toString('base64')])),
    };
    try {
      await this.#http.send('PUT', secretPath(namespace, name), body);
      return 'written';
    } catch (err) {
      if (err instanceof KubeHttpError && (err.status === 409 || err.status === 404)) return 'conflict';
      throw apiError(`update Secret ${namespace}/${name}`, err);
    }
  }

  /**
   * A token of ServiceAccount `namespace/name` for `audience` (TokenRequest), or why there is none:
   * never throws, and the answer's body is never passed on. The token goes only to the caller.
   */
  async createToken(
    namespace: string,
    name: string,
    audience: string,
    expirationSeconds: number,
  ): Promise<IssuedToken | CanaryRefusal> {
    const what = `TokenRequest for ServiceAccount ${namespace}/${name}`;
    try {
      const res = (await this.#http.send(
        'POST',
        `/api/v1/namespaces/${encodeURIComponent(namespace)}/serviceaccounts/${encodeURIComponent(name)}/token`,
        {
          apiVersion: 'authentication.k8s.io/v1',
          kind: 'TokenRequest',
          spec: { audiences: [audience], expirationSeconds },
        },
      )) as { status?: { token?: unknown; expirationTimestamp?: unknown } } | undefined;
      const token = res?.status?.token;
      const expires = Date.parse(String(res?.status?.expirationTimestamp));
      if (typeof token !== 'string' || !token || Number.isNaN(expires)) {
        return { refused: 'unavailable', message: `${what}: the answer holds no token` };
      }
      return { token, expiresAt: new Date(expires) };
    } catch (err) {
      if (err instanceof KubeHttpError && err.status === 403)
        return { refused: 'forbidden', message: `${what}: HTTP 403` };
      if (err instanceof KubeHttpError && err.status === 404)
        return {
          refused: 'unavailable',
          message: `${what}: HTTP 404 (no such ServiceAccount in the operator's namespace)`,
        };
      return { refused: 'unavailable', message: apiError(what, err).message };
    }
  }

  async patchStatus(name: string, status: OidcPublisherStatus): Promise<void> {
    try {
      await this.#http.send(
        'PATCH',
        `${PUBLISHERS}/${encodeURIComponent(name)}/status`,
        { status },
        { contentType: MERGE_PATCH },
      );
    } catch (err) {
      if (err instanceof KubeHttpError && err.status === 404) return;
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
      await this.#http.send(
        'PATCH',
        `${PUBLISHERS}/${encodeURIComponent(name)}`,
        { metadata: { finalizers, ...(resourceVersion ? { resourceVersion } : {}) } },
        { contentType: MERGE_PATCH },
      );
    } catch (err) {
      if (err instanceof KubeHttpError && err.status === 404) return;
      throw apiError(`update finalizers of oidcpublisher/${name}`, err);
    }
  }

  close(): void {
    this.#http.close();
  }
}

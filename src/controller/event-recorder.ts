/**
 * Records Events (events.k8s.io/v1) about OidcPublishers. Events of
 * cluster-scoped objects live in the "default" namespace. Recording is best
 * effort: a failure is logged, never fails a sync. Sent over a keep-alive
 * connection (kube/http.ts), not a new one per Event.
 */
import { randomBytes } from 'node:crypto';
import { API_GROUP, API_VERSION, KIND, type OidcPublisher } from '../api/types.ts';
import type { EventSpec } from '../core/events.ts';
import type { KubeAccess } from '../kube/access.ts';
import { KubeHttp, type KubeRequestObserver } from '../kube/http.ts';
import type { TokenBucket } from '../kube/rate-limit.ts';
import { type Logger, serializeError } from '../log.ts';

export const EVENTS_NAMESPACE = 'default';
export const REPORTING_CONTROLLER = 'oidcpublisher.io/oidc-publisher';

/** A MicroTime as the API server wants it: RFC 3339 with six fraction digits. */
export function microTime(ms: number): string {
  return new Date(ms).toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');
}

export class EventRecorder {
  readonly #http: KubeHttp;
  readonly #instance: string;
  readonly #log: Logger;

  /** `observer` is told of each request (metrics); `limiter` is the client-side rate limit. */
  constructor(
    access: KubeAccess,
    instance: string,
    log: Logger,
    observer?: KubeRequestObserver,
    limiter?: TokenBucket,
  ) {
    this.#http = new KubeHttp(access, { observer, limiter });
    this.#instance = instance;
    this.#log = log;
  }

  async record(obj: OidcPublisher, event: EventSpec): Promise<void> {
    const name = obj.metadata.name;
    try {
      await this.#http.send('POST', `/apis/events.k8s.io/v1/namespaces/${EVENTS_NAMESPACE}/events`, {
        apiVersion: 'events.k8s.io/v1',
        kind: 'Event',
        metadata: { name: `${name}.${randomBytes(8).toString('hex')}`, namespace: EVENTS_NAMESPACE },
        eventTime: microTime(Date.now()),
        reportingController: REPORTING_CONTROLLER,
        reportingInstance: this.#instance,
        action: event.action,
        reason: event.reason,
        note: event.note.slice(0, 1000),
        type: event.type,
        regarding: {
          apiVersion: `${API_GROUP}/${API_VERSION}`,
          kind: KIND,
          name,
          ...(obj.metadata.uid ? { uid: obj.metadata.uid } : {}),
          ...(obj.metadata.resourceVersion ? { resourceVersion: obj.metadata.resourceVersion } : {}),
        },
      });
    } catch (err) {
      this.#log.warn(
        { err: serializeError(err), oidcpublisher: name, reason: event.reason },
        'could not record event',
      );
    }
  }

  close(): void {
    this.#http.close();
  }
}

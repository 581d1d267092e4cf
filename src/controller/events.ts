/**
 * Records Events (events.k8s.io/v1) about OidcPublishers. Events of
 * cluster-scoped objects live in the "default" namespace. Recording is best
 * effort: a failure is logged, never fails a sync.
 */
import { randomBytes } from 'node:crypto';
import { EventsV1Api, type KubeConfig, V1MicroTime } from '@kubernetes/client-node';
import { API_GROUP, API_VERSION, KIND, type OidcPublisher } from '../api/types.ts';
import type { EventSpec } from '../core/events.ts';
import { type Logger, serializeError } from '../log.ts';

export const EVENTS_NAMESPACE = 'default';
export const REPORTING_CONTROLLER = 'oidcpublisher.io/oidc-publisher';

export class EventRecorder {
  readonly #api: EventsV1Api;
  readonly #instance: string;
  readonly #log: Logger;

  constructor(kc: KubeConfig, instance: string, log: Logger) {
    this.#api = kc.makeApiClient(EventsV1Api);
    this.#instance = instance;
    this.#log = log;
  }

  async record(obj: OidcPublisher, event: EventSpec): Promise<void> {
    const name = obj.metadata.name;
    try {
      await this.#api.createNamespacedEvent({
        namespace: EVENTS_NAMESPACE,
        body: {
          metadata: { name: `${name}.${randomBytes(8).toString('hex')}`, namespace: EVENTS_NAMESPACE },
          eventTime: new V1MicroTime(Date.now()),
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
        },
      });
    } catch (err) {
      this.#log.warn(
        { err: serializeError(err), oidcpublisher: name, reason: event.reason },
        'could not record event',
      );
    }
  }
}

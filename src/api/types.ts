/** The OidcPublisher API: the generated spec and status plus the object envelope. */
import type {
  OidcPublisherSpec,
  OidcPublisherStatus,
  OidcPublisherStatusConditionsItem,
} from './generated.ts';

export type * from './generated.ts';

export const API_GROUP = 'oidcpublisher.io';
export const API_VERSION = 'v1alpha1';
export const API_PLURAL = 'oidcpublishers';
export const KIND = 'OidcPublisher';
/** Added to every OidcPublisher so that deletionPolicy: Delete can remove the objects. */
export const FINALIZER = 'oidcpublisher.io/cleanup';

export interface ObjectMeta {
  name: string;
  uid?: string;
  /** RFC 3339; orders OidcPublishers that name the same storage target. */
  creationTimestamp?: string;
  generation?: number;
  resourceVersion?: string;
  deletionTimestamp?: string | Date;
  finalizers?: string[];
}

export interface OidcPublisher {
  apiVersion?: string;
  kind?: string;
  metadata: ObjectMeta;
  spec: OidcPublisherSpec;
  status?: OidcPublisherStatus;
}

export type Condition = OidcPublisherStatusConditionsItem;

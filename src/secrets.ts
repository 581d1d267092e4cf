/**
 * Secrets in the operator's namespace (the only ones it may read), and which
 * OidcPublishers may use them. Whoever can create an OidcPublisher names a
 * Secret by name; the Secret must opt in, so naming it is not enough to make
 * the operator use someone else's credentials.
 */
import { OidcPublisherError } from './errors.ts';

/** Annotation on a Secret: the names of the OidcPublishers allowed to use it, comma-separated, or "*". */
export const ALLOWED_PUBLISHERS_ANNOTATION = 'oidcpublisher.io/allowed-publishers';

export interface SecretReader {
  /**
   * The Secret's data, decoded, when its ALLOWED_PUBLISHERS_ANNOTATION names `publisher`; throws
   * SECRET_NOT_FOUND, SECRET_FORBIDDEN or SECRET_NOT_ALLOWED.
   */
  readSecret(namespace: string, name: string, publisher: string): Promise<Map<string, Buffer>>;
}

/** Whether a Secret with these annotations may be used by the OidcPublisher `publisher`. Pure. */
export function secretAllows(
  annotations: Readonly<Record<string, unknown>> | undefined,
  publisher: string,
): boolean {
  const value =
    annotations && Object.hasOwn(annotations, ALLOWED_PUBLISHERS_ANNOTATION)
      ? annotations[ALLOWED_PUBLISHERS_ANNOTATION]
      : undefined;
  if (typeof value !== 'string') return false;
  const names = value
    .split(',')
    .map((n) => n.trim())
    .filter((n) => n !== '');
  return names.includes('*') || names.includes(publisher);
}

/** SECRET_NOT_ALLOWED for a Secret that does not name `publisher`. */
export function secretNotAllowed(namespace: string, name: string, publisher: string): OidcPublisherError {
  return new OidcPublisherError(
    'SECRET_NOT_ALLOWED',
    `Secret ${namespace}/${name} does not allow OidcPublisher ${JSON.stringify(publisher)} to use it: add ${JSON.stringify(publisher)} (or "*") to its annotation ${ALLOWED_PUBLISHERS_ANNOTATION} (comma-separated names)`,
  );
}

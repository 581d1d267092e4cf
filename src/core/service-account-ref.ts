/**
 * A Kubernetes ServiceAccount named on the command line as NAMESPACE/NAME, and
 * the `sub` claim of its tokens. Pure.
 */
import { SERVICE_ACCOUNT_SUBJECT_PREFIX } from './authentication-config.ts';

export interface ServiceAccountRef {
  namespace: string;
  name: string;
}

const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

/** NAMESPACE/NAME, or a problem naming the flag. */
export function parseServiceAccountRef(
  value: string,
  flag = '--service-account',
): { ref: ServiceAccountRef } | { problem: string } {
  const [namespace = '', name = '', ...rest] = value.split('/');
  if (
    rest.length > 0 ||
    namespace.length > 63 ||
    !DNS1123_LABEL.test(namespace) ||
    name.length > 253 ||
    !DNS1123_SUBDOMAIN.test(name)
  ) {
    return {
      problem: `${flag}: ${JSON.stringify(value.slice(0, 300))} is not NAMESPACE/NAME (a namespace and a ServiceAccount name, lower case)`,
    };
  }
  return { ref: { namespace, name } };
}

/** The `sub` claim of the ServiceAccount's tokens: system:serviceaccount:NAMESPACE:NAME. */
export function serviceAccountSubject(ref: ServiceAccountRef): string {
  return `${SERVICE_ACCOUNT_SUBJECT_PREFIX}${ref.namespace}:${ref.name}`;
}

/** The refs without repeats, in the order given. */
export function uniqueRefs(refs: readonly ServiceAccountRef[]): ServiceAccountRef[] {
  const seen = new Set<string>();
  return refs.filter((r) => {
    const key = `${r.namespace}/${r.name}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}

/**
 * A kustomize overlay of config/default as a user with their own build and a private CA writes
 * it: the image renamed to the local build (`images:`), never pulled, two replicas, and the CA of
 * the object store trusted through the config/ca-bundle component (a ConfigMap of ca.crt, named in
 * NODE_EXTRA_CA_CERTS).
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { parse, stringify } from 'yaml';

const ROOT = join(import.meta.dirname, '..', '..');
const NAMESPACE = 'oidc-publisher-system';

export function writeOverlay(
  dir: string,
  /** storageAllowedHosts: --storage-allowed-hosts, `<backend>=<host>` entries. */
  o: { image: string; ca: Buffer; storageAllowedHosts: string; replicas?: number },
): void {
  const at = o.image.lastIndexOf(':');
  const [newName, newTag] = [o.image.slice(0, at), o.image.slice(at + 1)];
  const shipped = parse(readFileSync(join(ROOT, 'config', 'manager', 'manager.yaml'), 'utf8')) as {
    spec: { template: { spec: { containers: { image: string }[] } } };
  };
  const name =
    shipped.spec.template.spec.containers[0]?.image.replace(/@.*$/, '').replace(/:[^/]*$/, '') ?? '';
  writeFileSync(join(dir, 'ca.crt'), o.ca);
  writeFileSync(
    join(dir, 'kustomization.yaml'),
    stringify({
      apiVersion: 'kustomize.config.k8s.io/v1beta1',
      kind: 'Kustomization',
      resources: [relative(dir, join(ROOT, 'config', 'default'))],
      components: [relative(dir, join(ROOT, 'config', 'ca-bundle'))],
      images: [{ name, newName, newTag }],
      configMapGenerator: [{ name: 'oidc-publisher-ca-bundle', namespace: NAMESPACE, files: ['ca.crt'] }],
      patches: [{ path: 'manager-patch.yaml' }],
    }),
  );
  writeFileSync(
    join(dir, 'manager-patch.yaml'),
    stringify({
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name: 'oidc-publisher', namespace: NAMESPACE },
      spec: {
        replicas: o.replicas ?? 2,
        template: {
          spec: {
            containers: [
              {
                name: 'manager',
                imagePullPolicy: 'Never',
                env: [{ name: 'OIDC_PUBLISHER_STORAGE_ALLOWED_HOSTS', value: o.storageAllowedHosts }],
              },
            ],
          },
        },
      },
    }),
  );
}

/** OidcPublishers and Secrets the benchmark creates on its bed. */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Bed } from '../test/bed/bed.ts';
import { applyYaml, createSecret, installOperator } from '../test/e2e/harness.ts';

export const S3_SECRET = 's3-writer';
/** Where an S3 publisher's objects are read anonymously through the bed's issuer URL. */
export const ISSUER_PREFIX = 'public/cluster-a';

export interface PublisherOptions {
  name: string;
  prefix: string;
  syncInterval: string;
  /** A kubeconfig Secret as the source; default the operator's own cluster. */
  sourceSecret?: string;
}

export function publisher(bed: Bed, o: PublisherOptions): Record<string, unknown> {
  const s3 = bed.state.s3;
  return {
    apiVersion: 'oidcpublisher.io/v1alpha1',
    kind: 'OidcPublisher',
    metadata: { name: o.name },
    spec: {
      issuerURL: bed.issuer,
      syncInterval: o.syncInterval,
      ...(o.sourceSecret ? { source: { kubeconfigSecretRef: { name: o.sourceSecret } } } : {}),
      storage: {
        s3: {
          bucket: s3.bucket,
          region: s3.region,
          prefix: o.prefix,
          endpoint: s3.endpoint,
          forcePathStyle: true,
          credentialsSecretRef: { name: S3_SECRET },
        },
      },
    },
  };
}

/** CRD, RBAC, the S3 credentials Secret; returns the operator's kubeconfig. */
export async function setUpOperator(bed: Bed): Promise<string> {
  const kubeconfig = await installOperator(bed);
  await createSecret(bed, S3_SECRET, {
    AWS_ACCESS_KEY_ID: bed.state.s3.accessKeyId,
    AWS_SECRET_ACCESS_KEY: bed.state.s3.secretAccessKey,
  });
  return kubeconfig;
}

/** A copy of `kubeconfig` that points at another server (a proxy), written next to it. */
export function kubeconfigFor(kubeconfig: string, server: string, name: string, bed: Bed): string {
  const text = readFileSync(kubeconfig, 'utf8').replace(/server: .*/, `server: ${server}`);
  const file = join(bed.dir, `${name}.kubeconfig`);
  writeFileSync(file, text, { mode: 0o600 });
  return file;
}

/**
 * `count` ServiceAccounts that may read the issuer documents, each as an inline kubeconfig
 * Secret, as kubeconfigs of other clusters would be stored: the sources of a fleet.
 */
export async function sourceSecrets(bed: Bed, count: number, servers: string[] = []): Promise<string[]> {
  const names: string[] = [];
  for (let i = 0; i < count; i++) {
    const sa = `source-${i}`;
    await bed.serviceAccountKubeconfig('issuer-readers', sa);
    await applyYaml(
      bed,
      `apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: issuer-reader-${sa}
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: ClusterRole
  name: system:service-account-issuer-discovery
subjects:
- kind: ServiceAccount
  name: ${sa}
  namespace: issuer-readers
`,
    );
    const token = await bed.mintToken({
      namespace: 'issuer-readers',
      serviceAccount: sa,
      durationSeconds: 7200,
    });
    const name = `kubeconfig-${sa}`;
    await createSecret(bed, name, {
      kubeconfig: bed.inlineKubeconfig(token, servers[i] ?? bed.apiserverURL),
    });
    names.push(name);
  }
  return names;
}

/**
 * The real servers the test bed runs, pinned by version and built from source
 * through the Go module proxy into a cache outside the repository.
 */
import { spawnSync } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';

export const VERSIONS = {
  kube: 'v1.35.4',
  etcd: 'v3.6.16',
  // MinIO's repository publishes no semver tags; this pseudo-version is its newest source.
  minio: 'v0.0.0-20260212201848-7aac2a2c5b7c',
  fakeGcs: 'v1.55.1',
  helm: 'v3.21.4',
  // Prometheus 3.16.0: its Go module tags a release vX.Y.Z as v0.XYY.Z.
  prometheus: 'v0.316.0',
} as const;

export type ToolGroup =
  | 'kube'
  | 'etcd'
  | 'minio'
  | 'fake-gcs-server'
  | 'helm'
  | 'node'
  | 'kubeadm'
  | 'promtool';

export interface ToolPaths {
  kubeApiserver: string;
  kubectl: string;
  etcd: string;
  minio: string;
  fakeGcsServer: string;
  helm: string;
  /** The real node's servers (group 'node'), same Kubernetes version as kube-apiserver. */
  kubelet: string;
  kubeControllerManager: string;
  kubeScheduler: string;
  kubeProxy: string;
  /** The pause binary of that Kubernetes release, compiled from its pause.c. */
  pause: string;
  /** kubeadm of the same Kubernetes version (group 'kubeadm'), for the documentation's kubeadm configurations. */
  kubeadm: string;
  /** Prometheus's promtool (group 'promtool'), for the alerting rules' unit tests. */
  promtool: string;
}

export function cacheDir(): string {
  return process.env.OIDC_PUBLISHER_CACHE ?? join(homedir(), '.cache', 'oidc-publisher');
}

export function toolPaths(): ToolPaths {
  const bin = join(cacheDir(), 'bin');
  return {
    kubeApiserver: join(bin, `kube-apiserver-${VERSIONS.kube}`),
    kubectl: join(bin, `kubectl-${VERSIONS.kube}`),
    etcd: join(bin, `etcd-${VERSIONS.etcd}`),
    minio: join(bin, `minio-${VERSIONS.minio}`),
    fakeGcsServer: join(bin, `fake-gcs-server-${VERSIONS.fakeGcs}`),
    helm: join(bin, `helm-${VERSIONS.helm}`),
    kubelet: join(bin, `kubelet-${VERSIONS.kube}`),
    kubeControllerManager: join(bin, `kube-controller-manager-${VERSIONS.kube}`),
    kubeScheduler: join(bin, `kube-scheduler-${VERSIONS.kube}`),
    kubeProxy: join(bin, `kube-proxy-${VERSIONS.kube}`),
    pause: join(bin, `pause-${VERSIONS.kube}`),
    kubeadm: join(bin, `kubeadm-${VERSIONS.kube}`),
    promtool: join(bin, `promtool-${VERSIONS.prometheus}`),
  };
}

const GROUP_FILES: Record<ToolGroup, (keyof ToolPaths)[]> = {
  kube: ['kubeApiserver', 'kubectl'],
  etcd: ['etcd'],
  minio: ['minio'],
  'fake-gcs-server': ['fakeGcsServer'],
  helm: ['helm'],
  node: ['kubelet', 'kubeControllerManager', 'kubeScheduler', 'kubeProxy', 'pause'],
  kubeadm: ['kubeadm'],
  promtool: ['promtool'],
};

/** About how long each group takes to build the first time on 2 cores (an empty Go cache). */
const GROUP_MINUTES: Record<ToolGroup, number> = {
  kube: 12,
  etcd: 3,
  minio: 8,
  'fake-gcs-server': 3,
  helm: 4,
  node: 8,
  // 2 min 7 s measured after kube-apiserver's build; 6 estimated with an empty Go cache.
  kubeadm: 6,
  // 11 CPU-minutes measured (26 min wall on cores shared with other builds).
  promtool: 8,
};

function executable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

export class ToolBuildError extends Error {
  override name = 'ToolBuildError';
}

/** Builds every missing tool of the given groups; returns the paths of all tools. */
export function ensureTools(
  groups: readonly ToolGroup[] = ['kube', 'etcd', 'minio', 'fake-gcs-server'],
): ToolPaths {
  const paths = toolPaths();
  const missing = groups.filter((g) => GROUP_FILES[g].some((k) => !executable(paths[k])));
  if (missing.length === 0) return paths;
  const script = join(import.meta.dirname, 'build-tools.sh');
  const minutes = missing.reduce((sum, g) => sum + GROUP_MINUTES[g], 0);
  process.stderr.write(
    `test bed: building ${missing.join(', ')} from source, once: about ${minutes} min on 2 cores ` +
      `(less with a warm Go cache), cached in ${join(cacheDir(), 'bin')} for every later run\n`,
  );
  const result = spawnSync('bash', [script, ...missing], {
    stdio: ['ignore', 'inherit', 'inherit'],
    env: {
      ...process.env,
      KUBE_VERSION: VERSIONS.kube,
      ETCD_VERSION: VERSIONS.etcd,
      MINIO_VERSION: VERSIONS.minio,
      FAKE_GCS_VERSION: VERSIONS.fakeGcs,
      HELM_VERSION: VERSIONS.helm,
      PROMETHEUS_VERSION: VERSIONS.prometheus,
    },
  });
  if (result.status === 3) {
    throw new ToolBuildError(
      'Go is not installed: the test bed builds kube-apiserver, etcd, MinIO and fake-gcs-server from source. ' +
        'Install Go >= 1.25 (https://go.dev/doc/install) and run the command again.',
    );
  }
  if (result.status !== 0) {
    throw new ToolBuildError(
      `building ${missing.join(', ')} failed (bash ${script} ${missing.join(' ')} exited ${result.status ?? result.signal}); see the output above`,
    );
  }
  return paths;
}

/**
 * The real servers the test bed runs, pinned by version and built from source
 * through the Go module proxy into a cache outside the repository.
 *
 * When KUBEBUILDER_ASSETS names a folder with kube-apiserver, etcd and kubectl (the convention
 * of controller-runtime's envtest and setup-envtest), each of them that reports the pinned
 * version is used from there instead; one of another version is ignored, with a line saying so,
 * and the bed's own (cached, or built) takes its place.
 */
import { spawnSync } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';

export const VERSIONS = {
  kube: 'v1.35.4',
  etcd: 'v3.6.16',
  // MinIO's repository publishes no semver tags; this pseudo-version is its newest source.
  minio: 'v0.0.0-20260212201848-7aac2a2c5b7c',
  fakeGcs: 'v1.55.1',
  helm: 'v3.21.4',
  /** github.com/aws/amazon-eks-pod-identity-webhook, run as a Deployment on the bed's node. */
  podIdentityWebhook: 'v0.6.17',
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
  | 'pod-identity-webhook'
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
  /** The AWS pod identity webhook (group 'pod-identity-webhook'), the binary of its image. */
  podIdentityWebhook: string;
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
    podIdentityWebhook: join(bin, `pod-identity-webhook-${VERSIONS.podIdentityWebhook}`),
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
  'pod-identity-webhook': ['podIdentityWebhook'],
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
  'pod-identity-webhook': 3,
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

/** The binaries an envtest assets folder holds, by their file names there. */
const ASSET_FILES = { kubeApiserver: 'kube-apiserver', kubectl: 'kubectl', etcd: 'etcd' } as const;
type AssetTool = keyof typeof ASSET_FILES;

const ASSET_GROUP: Record<AssetTool, ToolGroup> = { kubeApiserver: 'kube', kubectl: 'kube', etcd: 'etcd' };

const ASSET_VERSION: Record<AssetTool, { args: string[]; pattern: RegExp; pinned: string }> = {
  kubeApiserver: { args: ['--version'], pattern: /^Kubernetes (v\S+)$/m, pinned: VERSIONS.kube },
  // kubectl has no --version flag; `version --client` does not contact a server.
  kubectl: { args: ['version', '--client'], pattern: /^Client Version: (v\S+)$/m, pinned: VERSIONS.kube },
  etcd: { args: ['--version'], pattern: /^etcd Version: v?(\S+)$/m, pinned: VERSIONS.etcd },
};

/** The version a binary reports, `v`-prefixed, or undefined when it reports none. */
function reportedVersion(path: string, tool: AssetTool): string | undefined {
  const { args, pattern } = ASSET_VERSION[tool];
  const res = spawnSync(path, args, { encoding: 'utf8', timeout: 30_000, stdio: ['ignore', 'pipe', 'pipe'] });
  const version = pattern.exec(`${res.stdout ?? ''}\n${res.stderr ?? ''}`)?.[1];
  if (version === undefined) return undefined;
  return version.startsWith('v') ? version : `v${version}`;
}

/**
 * The binaries of KUBEBUILDER_ASSETS (`dir`) the given groups need that report the pinned
 * version; each one missing or of another version is left out, and `report` says why.
 */
export function kubebuilderAssets(
  dir: string,
  groups: readonly ToolGroup[],
  report: (line: string) => void,
): Partial<Pick<ToolPaths, AssetTool>> {
  const used: Partial<Pick<ToolPaths, AssetTool>> = {};
  const usedLines: string[] = [];
  for (const tool of Object.keys(ASSET_FILES) as AssetTool[]) {
    if (!groups.includes(ASSET_GROUP[tool])) continue;
    const path = join(dir, ASSET_FILES[tool]);
    const { pinned } = ASSET_VERSION[tool];
    if (!executable(path)) {
      report(
        `test bed: KUBEBUILDER_ASSETS=${dir} has no executable ${ASSET_FILES[tool]}; using the bed's own`,
      );
      continue;
    }
    const version = reportedVersion(path, tool);
    if (version !== pinned) {
      report(
        `test bed: ignoring ${path} of KUBEBUILDER_ASSETS: it reports ${version ?? 'no version'}, ` +
          `the bed pins ${pinned}; using the bed's own`,
      );
      continue;
    }
    used[tool] = path;
    usedLines.push(`${ASSET_FILES[tool]} ${version}`);
  }
  if (usedLines.length > 0) report(`test bed: using ${usedLines.join(', ')} from KUBEBUILDER_ASSETS=${dir}`);
  return used;
}

export interface EnsureToolsOptions {
  /** The environment KUBEBUILDER_ASSETS is read from. */
  env?: NodeJS.ProcessEnv;
  /** Where progress lines go (stderr by default). */
  report?: (line: string) => void;
}

export class ToolBuildError extends Error {
  override name = 'ToolBuildError';
}

/**
 * Builds every missing tool of the given groups; returns the paths of all tools, those of
 * KUBEBUILDER_ASSETS where it has them at the pinned versions.
 */
export function ensureTools(
  groups: readonly ToolGroup[] = ['kube', 'etcd', 'minio', 'fake-gcs-server'],
  opts: EnsureToolsOptions = {},
): ToolPaths {
  const env = opts.env ?? process.env;
  const report = opts.report ?? ((line: string) => process.stderr.write(`${line}\n`));
  const assets = env.KUBEBUILDER_ASSETS;
  const paths = { ...toolPaths(), ...(assets ? kubebuilderAssets(resolve(assets), groups, report) : {}) };
  const missing = groups.filter((g) => GROUP_FILES[g].some((k) => !executable(paths[k])));
  if (missing.length === 0) return paths;
  const script = join(import.meta.dirname, 'build-tools.sh');
  const minutes = missing.reduce((sum, g) => sum + GROUP_MINUTES[g], 0);
  report(
    `test bed: building ${missing.join(', ')} from source, once: about ${minutes} min on 2 cores ` +
      `(less with a warm Go cache), cached in ${join(cacheDir(), 'bin')} for every later run`,
  );
  const result = spawnSync('bash', [script, ...missing], {
    stdio: ['ignore', 'inherit', 'inherit'],
    env: {
      ...env,
      KUBE_VERSION: VERSIONS.kube,
      ETCD_VERSION: VERSIONS.etcd,
      MINIO_VERSION: VERSIONS.minio,
      FAKE_GCS_VERSION: VERSIONS.fakeGcs,
      HELM_VERSION: VERSIONS.helm,
      POD_IDENTITY_WEBHOOK_VERSION: VERSIONS.podIdentityWebhook,
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

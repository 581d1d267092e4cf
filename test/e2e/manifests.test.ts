/**
 * What we ship besides the code: `kubectl apply -k config/default`, the Helm chart
 * in charts/oidc-publisher, config/prometheus, config/network-policy and the Dockerfile.
 *
 * The renders are accepted by the real API server (server-side dry run, strict
 * field validation), grant the operator's ServiceAccount the same RBAC and the
 * same NetworkPolicy rules, run it hardened enough for the restricted Pod Security
 * Standard, hand it settings that src/config.ts really reads, and the chart's CRD
 * is the repository's.
 *
 * No network plugin in the bed enforces NetworkPolicy (the bed has an API server,
 * no nodes and no CNI): these tests prove the policies are valid, select the
 * operator's pods and allow the same traffic in config/ and the chart, not that
 * a network plugin blocks anything.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { parseAllDocuments, stringify } from 'yaml';
import { type Config, FLAGS, parseConfig } from '../../src/config.ts';
import type { Bed } from '../bed/bed.ts';
import { dockerfileGlobalArgs, expandDockerfileArgs } from '../bed/container-image.ts';
import { useBed } from '../bed/shared.ts';
import { ensureTools } from '../bed/tools.ts';
import { OPERATOR_NAMESPACE, ROOT } from './harness.ts';

const execFileAsync = promisify(execFile);

const CHART = join(ROOT, 'charts', 'oidc-publisher');
const CRD_FILE = 'oidcpublisher.io_oidcpublishers.yaml';
/** A second release, in another namespace and under another name, to prove the chart follows both. */
const OTHER_RELEASE = 'platform-oidc';
const OTHER_NAMESPACE = 'oidc-publisher-chart-test';
/** A namespace that enforces the restricted Pod Security Standard. */
const RESTRICTED_NAMESPACE = 'oidc-publisher-restricted';

// The parts of the objects these tests read; parsed from YAML at the boundary.
interface Meta {
  name: string;
  namespace?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}
interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: Meta;
}
interface PolicyRule {
  apiGroups?: string[];
  resources?: string[];
  resourceNames?: string[];
  nonResourceURLs?: string[];
  verbs: string[];
}
interface RoleObject extends K8sObject {
  rules?: PolicyRule[];
}
interface Subject {
  kind: string;
  name: string;
  namespace?: string;
}
interface BindingObject extends K8sObject {
  roleRef: { apiGroup: string; kind: string; name: string };
  subjects?: Subject[];
}
interface EnvVar {
  name: string;
  value?: string;
  valueFrom?: { fieldRef?: { fieldPath: string } };
}
interface Probe {
  httpGet?: { path: string; port: number | string };
}
interface VolumeMount {
  name: string;
  mountPath: string;
  readOnly?: boolean;
}
interface Volume {
  name: string;
  configMap?: { name: string };
  secret?: { secretName: string };
}
interface Container {
  name: string;
  volumeMounts?: VolumeMount[];
  image: string;
  args?: string[];
  command?: string[];
  env?: EnvVar[];
  ports?: { name?: string; containerPort: number }[];
  livenessProbe?: Probe;
  readinessProbe?: Probe;
  resources?: { requests?: Record<string, string>; limits?: Record<string, string> };
  securityContext?: {
    allowPrivilegeEscalation?: boolean;
    readOnlyRootFilesystem?: boolean;
    privileged?: boolean;
    capabilities?: { drop?: string[]; add?: string[] };
  };
}
interface PodSpec {
  serviceAccountName?: string;
  automountServiceAccountToken?: boolean;
  securityContext?: {
    runAsNonRoot?: boolean;
    runAsUser?: number;
    runAsGroup?: number;
    seccompProfile?: { type: string };
  };
  containers: Container[];
  volumes?: Volume[];
  topologySpreadConstraints?: {
    maxSkew: number;
    topologyKey: string;
    whenUnsatisfiable: string;
    labelSelector?: { matchLabels?: Record<string, string> };
  }[];
}
interface DeploymentObject extends K8sObject {
  spec: {
    replicas?: number;
    selector: { matchLabels: Record<string, string> };
    template: { metadata: { labels?: Record<string, string> }; spec: PodSpec };
  };
}
interface ServiceObject extends K8sObject {
  spec: {
    selector: Record<string, string>;
    ports: { name?: string; port: number; targetPort: number | string }[];
  };
}
interface ServiceMonitorObject extends K8sObject {
  spec: {
    selector: { matchLabels: Record<string, string> };
    namespaceSelector?: { matchNames?: string[] };
    endpoints: { port: string; path?: string; scheme?: string; interval?: string }[];
  };
}
interface PrometheusRuleObject extends K8sObject {
  spec: { groups: { name: string; rules: { alert?: string; expr: string }[] }[] };
}
interface PodDisruptionBudgetObject extends K8sObject {
  spec: {
    selector: { matchLabels: Record<string, string> };
    minAvailable?: number | string;
    maxUnavailable?: number | string;
  };
}
interface CrdObject extends K8sObject {
  spec: unknown;
}
interface LabelSelector {
  matchLabels?: Record<string, string>;
  matchExpressions?: unknown[];
}
interface PolicyPeer {
  ipBlock?: { cidr: string; except?: string[] };
  namespaceSelector?: LabelSelector;
  podSelector?: LabelSelector;
}
interface PolicyPort {
  port?: number | string;
  protocol?: string;
  endPort?: number;
}
interface NetworkPolicyObject extends K8sObject {
  spec: {
    podSelector: LabelSelector;
    policyTypes?: string[];
    ingress?: { from?: PolicyPeer[]; ports?: PolicyPort[] }[];
    egress?: { to?: PolicyPeer[]; ports?: PolicyPort[] }[];
  };
}

/** Every object in a multi-document YAML stream (empty documents skipped). */
function parseObjects(text: string, what: string): K8sObject[] {
  return parseAllDocuments(text).flatMap((doc) => {
    if (doc.errors.length > 0) throw new Error(`${what}: ${doc.errors.map((e) => e.message).join('; ')}`);
    const o = doc.toJS() as unknown;
    return typeof o === 'object' && o !== null && 'kind' in o ? [o as K8sObject] : [];
  });
}

const AGGREGATE_TO = /^rbac\.authorization\.k8s\.io\/aggregate-to-/;

/** A ClusterRole that aggregates into the built-in view/edit/admin roles (for users, not the operator). */
function aggregates(o: K8sObject): boolean {
  return o.kind === 'ClusterRole' && Object.keys(o.metadata.labels ?? {}).some((k) => AGGREGATE_TO.test(k));
}

function ofKind<T extends K8sObject>(objects: readonly K8sObject[], kind: string): T[] {
  return objects.filter((o) => o.kind === kind) as T[];
}

function only<T extends K8sObject>(objects: readonly K8sObject[], kind: string, what: string): T {
  const found = ofKind<T>(objects, kind);
  assert.equal(found.length, 1, `${what}: expected one ${kind}, found ${found.length}`);
  return found[0]!;
}

function manager(d: DeploymentObject, what: string): Container {
  const c = d.spec.template.spec.containers.find((x) => x.name === 'manager');
  assert.ok(c, `${what}: the Deployment has no container named manager`);
  return c;
}

function stderrOf(err: unknown): string {
  const e = err as { stderr?: string; message?: string };
  return (e.stderr || e.message || String(err)).trim();
}

/**
 * The configuration the operator would start with in a pod of this Deployment:
 * its args and env (downward-API fields resolved) through the real parseConfig.
 */
function operatorConfig(d: DeploymentObject, what: string): Readonly<Config> {
  const c = manager(d, what);
  const env: NodeJS.ProcessEnv = {};
  for (const e of c.env ?? []) {
    const field = e.valueFrom?.fieldRef?.fieldPath;
    if (e.value !== undefined) env[e.name] = e.value;
    else if (field === 'metadata.namespace') env[e.name] = d.metadata.namespace;
    else if (field === 'metadata.name') env[e.name] = `${d.metadata.name}-7d4b9c-x2x9q`;
  }
  const [first, ...rest] = c.args ?? [];
  assert.equal(first, 'run', `${what}: the container's args start with the run command`);
  assert.equal(c.command, undefined, `${what}: the image's ENTRYPOINT (the CLI) is kept`);
  try {
    return parseConfig(rest, env, () => {
      throw new Error('no in-cluster namespace file in this test');
    });
  } catch (err) {
    assert.fail(`${what}: the operator refuses its configuration: ${(err as Error).message}`);
  }
}

/**
 * RBAC as comparable sets. `rules`: one tuple per Role/ClusterRole rule and
 * (apiGroup, resource, resourceName, nonResourceURL, verb), scoped by the role's
 * kind and namespace. `bindings`: what each binding grants to whom. The
 * operator's namespace, ServiceAccount and Lease appear under placeholders, so
 * renders with other release names and namespaces compare equal.
 */
interface Rbac {
  rules: Set<string>;
  bindings: Set<string>;
  problems: string[];
}

function rbacOf(objects: readonly K8sObject[], what: string): Rbac {
  const d = only<DeploymentObject>(objects, 'Deployment', what);
  const cfg = operatorConfig(d, what);
  const sa = d.spec.template.spec.serviceAccountName ?? 'default';
  const ns = (n: string | undefined) => (n === cfg.namespace ? '<operator-namespace>' : (n ?? ''));
  const lease = (resource: string, name: string) =>
    resource === 'leases' && cfg.leaderElection.enabled && name === cfg.leaderElection.leaseName
      ? '<lease>'
      : name;
  const problems: string[] = [];
  const roleTuples = (role: RoleObject): string[] =>
    (role.rules ?? []).flatMap((r) => {
      const targets = r.nonResourceURLs?.length
        ? r.nonResourceURLs.map((u) => `apiGroup=- resource=- name=- url=${u}`)
        : (r.apiGroups ?? []).flatMap((g) =>
            (r.resources ?? []).flatMap((res) =>
              (r.resourceNames?.length ? r.resourceNames : ['*']).map(
                (n) => `apiGroup=${g || 'core'} resource=${res} name=${lease(res, n)} url=-`,
              ),
            ),
          );
      return targets.flatMap((t) => r.verbs.map((v) => `${t} verb=${v}`));
    });
  const roles = new Map<string, RoleObject>();
  const rules = new Set<string>();
  for (const role of [
    ...ofKind<RoleObject>(objects, 'ClusterRole').filter((r) => !aggregates(r)),
    ...ofKind<RoleObject>(objects, 'Role'),
  ]) {
    const scope = role.kind === 'ClusterRole' ? 'ClusterRole' : `Role@${ns(role.metadata.namespace)}`;
    roles.set(`${role.kind}/${role.metadata.namespace ?? ''}/${role.metadata.name}`, role);
    for (const t of roleTuples(role)) rules.add(`${scope} ${t}`);
  }
  const bindings = new Set<string>();
  const bound = new Set<RoleObject>();
  for (const b of [
    ...ofKind<BindingObject>(objects, 'ClusterRoleBinding'),
    ...ofKind<BindingObject>(objects, 'RoleBinding'),
  ]) {
    const roleNs = b.roleRef.kind === 'ClusterRole' ? '' : (b.metadata.namespace ?? '');
    const role = roles.get(`${b.roleRef.kind}/${roleNs}/${b.roleRef.name}`);
    if (!role) {
      problems.push(
        `${b.kind} ${b.metadata.name} refers to ${b.roleRef.kind} ${b.roleRef.name}, not rendered`,
      );
      continue;
    }
    const subjects = (b.subjects ?? []).map((s) =>
      s.kind === 'ServiceAccount' && s.name === sa && s.namespace === d.metadata.namespace
        ? '<operator-serviceaccount>'
        : `${s.kind} ${s.namespace ?? ''}/${s.name}`,
    );
    if (subjects.includes('<operator-serviceaccount>')) bound.add(role);
    const scope = b.kind === 'ClusterRoleBinding' ? 'cluster' : ns(b.metadata.namespace);
    bindings.add(
      `${b.kind}@${scope} -> ${b.roleRef.kind} {${roleTuples(role).sort().join('; ')}} for ${subjects.sort().join(', ')}`,
    );
  }
  for (const role of roles.values()) {
    if (!bound.has(role)) problems.push(`${role.kind} ${role.metadata.name} is bound to no one`);
  }
  const serviceAccounts = ofKind<K8sObject>(objects, 'ServiceAccount');
  if (!serviceAccounts.some((s) => s.metadata.name === sa && s.metadata.namespace === d.metadata.namespace)) {
    problems.push(`the Deployment runs as ServiceAccount ${sa}, which is not rendered`);
  }
  return { rules, bindings, problems };
}

/**
 * What a NetworkPolicy allows, as comparable tuples: one per (direction, peer,
 * port) of every rule (a rule allows any of its peers on any of its ports). The
 * operator's pods appear as a placeholder, after checking the policy selects
 * exactly the Deployment's pods in its namespace.
 */
function networkPolicyRules(objects: readonly K8sObject[], what: string): Set<string> {
  const d = only<DeploymentObject>(objects, 'Deployment', what);
  const np = only<NetworkPolicyObject>(objects, 'NetworkPolicy', what);
  assert.equal(
    np.metadata.namespace,
    d.metadata.namespace,
    `${what}: the NetworkPolicy is beside the Deployment`,
  );
  const podSelector = np.spec.podSelector.matchLabels ?? {};
  assert.ok(
    Object.keys(podSelector).length > 0 &&
      selects(podSelector, d.spec.template.metadata.labels) &&
      selects(podSelector, d.spec.selector.matchLabels),
    `${what}: the NetworkPolicy selects the operator's pods (and only them): ${JSON.stringify(np.spec.podSelector)}`,
  );
  assert.deepEqual(
    [...(np.spec.policyTypes ?? [])].sort(),
    ['Egress', 'Ingress'],
    `${what}: the NetworkPolicy restricts both directions`,
  );
  const labels = (s: LabelSelector | undefined) =>
    s === undefined
      ? '*'
      : `{${Object.entries(s.matchLabels ?? {})
          .map(([k, v]) => `${k}=${v}`)
          .sort()
          .join(',')}${s.matchExpressions?.length ? ` ${JSON.stringify(s.matchExpressions)}` : ''}}`;
  const peer = (p: PolicyPeer) =>
    p.ipBlock
      ? `ipBlock ${p.ipBlock.cidr} except [${[...(p.ipBlock.except ?? [])].sort().join(',')}]`
      : `namespaces ${p.namespaceSelector ? labels(p.namespaceSelector) : '<own>'} pods ${labels(
          p.podSelector && Object.keys(p.podSelector).length === 0 ? undefined : p.podSelector,
        )}`;
  const healthPort = manager(d, what).ports?.find((p) => p.name === 'health')?.containerPort;
  const port = (p: PolicyPort) => {
    const n = typeof p.port === 'string' && p.port === 'health' ? healthPort : p.port;
    return `${n ?? 'any'}${p.endPort ? `-${p.endPort}` : ''}/${p.protocol ?? 'TCP'}`;
  };
  const tuples = new Set<string>();
  for (const [direction, rules] of [
    ['ingress from', (np.spec.ingress ?? []).map((r) => ({ peers: r.from, ports: r.ports }))],
    ['egress to', (np.spec.egress ?? []).map((r) => ({ peers: r.to, ports: r.ports }))],
  ] as const) {
    for (const r of rules) {
      for (const p of r.peers?.length ? r.peers.map(peer) : ['anyone']) {
        for (const q of r.ports?.length ? r.ports.map(port) : ['any port'])
          tuples.add(`${direction} ${p} on ${q}`);
      }
    }
  }
  return tuples;
}

/** Fails with the tuples one side has and the other lacks. */
function assertSameSet(actual: Set<string>, expected: Set<string>, what: string): void {
  const extra = [...actual].filter((t) => !expected.has(t)).sort();
  const missing = [...expected].filter((t) => !actual.has(t)).sort();
  assert.ok(
    extra.length === 0 && missing.length === 0,
    `${what}\n  extra (granted only by the chart):\n    ${extra.join('\n    ') || '(none)'}\n` +
      `  missing (granted only by config/default):\n    ${missing.join('\n    ') || '(none)'}`,
  );
}

function selects(selector: Record<string, string>, labels: Record<string, string> | undefined): boolean {
  return Object.entries(selector).every(([k, v]) => labels?.[k] === v);
}

/** The hardening of config/manager/manager.yaml, field by field. */
function assertHardened(objects: readonly K8sObject[], what: string): void {
  const d = only<DeploymentObject>(objects, 'Deployment', what);
  const pod = d.spec.template.spec;
  const c = manager(d, what);
  const psc = pod.securityContext;
  assert.equal(psc?.runAsNonRoot, true, `${what}: pod securityContext.runAsNonRoot`);
  assert.equal(psc?.runAsUser, 65532, `${what}: pod securityContext.runAsUser`);
  assert.equal(psc?.runAsGroup, 65532, `${what}: pod securityContext.runAsGroup`);
  assert.equal(psc?.seccompProfile?.type, 'RuntimeDefault', `${what}: pod seccompProfile`);
  const csc = c.securityContext;
  assert.equal(csc?.allowPrivilegeEscalation, false, `${what}: container allowPrivilegeEscalation`);
  assert.equal(csc?.readOnlyRootFilesystem, true, `${what}: container readOnlyRootFilesystem`);
  assert.deepEqual(csc?.capabilities?.drop, ['ALL'], `${what}: container capabilities.drop`);
  assert.equal(csc?.capabilities?.add, undefined, `${what}: container adds no capabilities`);
  assert.notEqual(csc?.privileged, true, `${what}: container is not privileged`);
  assert.ok(c.resources?.requests?.cpu, `${what}: resources.requests.cpu`);
  assert.ok(c.resources?.requests?.memory, `${what}: resources.requests.memory`);
  assert.ok(c.resources?.limits?.memory, `${what}: resources.limits.memory`);

  const portOf = (p: number | string | undefined) =>
    typeof p === 'number' ? p : c.ports?.find((x) => x.name === p)?.containerPort;
  assert.equal(c.livenessProbe?.httpGet?.path, '/healthz', `${what}: livenessProbe path`);
  assert.equal(portOf(c.livenessProbe?.httpGet?.port), 8081, `${what}: livenessProbe port`);
  assert.equal(c.readinessProbe?.httpGet?.path, '/readyz', `${what}: readinessProbe path`);
  assert.equal(portOf(c.readinessProbe?.httpGet?.port), 8081, `${what}: readinessProbe port`);

  const field = (name: string) => c.env?.find((e) => e.name === name)?.valueFrom?.fieldRef?.fieldPath;
  assert.equal(field('POD_NAME'), 'metadata.name', `${what}: POD_NAME from the downward API`);
  assert.equal(field('POD_NAMESPACE'), 'metadata.namespace', `${what}: POD_NAMESPACE from the downward API`);

  // The probes reach the port the operator really listens on, and it runs in its own namespace.
  const cfg = operatorConfig(d, what);
  assert.equal(cfg.healthAddr.split(':').at(-1), '8081', `${what}: the operator serves health on 8081`);
  assert.equal(cfg.namespace, d.metadata.namespace, `${what}: the operator's namespace is the pod's`);
  assert.match(
    cfg.leaderElection.identity,
    new RegExp(`^${d.metadata.name}-`),
    `${what}: identity = pod name`,
  );
}

describe('shipped manifests: config/default, the Helm chart, config/prometheus', () => {
  const useShared = useBed();
  let bed: Bed;
  let helmBin: string;
  let helmHome: string;
  let kustomized: K8sObject[];
  let kustomizedYaml: string;
  let chartDefault: K8sObject[];
  let chartDefaultYaml: string;
  let chartMonitoring: K8sObject[];
  let chartMonitoringYaml: string;
  let chartOther: K8sObject[];
  let chartOtherYaml: string;
  let networkPolicyYaml: string;
  let networkPolicy: K8sObject[];
  let chartNetworkPolicyYaml: string;
  let chartNetworkPolicy: K8sObject[];
  let chartDashboardsYaml: string;
  let chartDashboards: K8sObject[];

  async function helm(args: readonly string[]): Promise<string> {
    const { stdout } = await execFileAsync(helmBin, [...args], {
      env: {
        PATH: process.env.PATH ?? '',
        HOME: helmHome,
        HELM_CACHE_HOME: join(helmHome, 'cache'),
        HELM_CONFIG_HOME: join(helmHome, 'config'),
        HELM_DATA_HOME: join(helmHome, 'data'),
      },
      maxBuffer: 64 * 1024 * 1024,
    });
    return stdout;
  }

  /** `helm template` of the chart, with values given as an object (written to a values file). */
  async function template(
    release: string,
    namespace: string,
    values: Record<string, unknown> = {},
  ): Promise<string> {
    const file = join(helmHome, `values-${release}-${Math.random().toString(36).slice(2)}.yaml`);
    writeFileSync(file, stringify(values));
    return helm(['template', release, CHART, '--namespace', namespace, '--values', file]);
  }

  async function dryRun(what: string, args: readonly string[], input?: string): Promise<string[]> {
    try {
      const out = await bed.kubectl(
        ['apply', '--dry-run=server', ...args],
        input === undefined ? {} : { input },
      );
      return out.split('\n').filter((l) => l.trim() !== '');
    } catch (err) {
      assert.fail(`the API server refused ${what}:\n${stderrOf(err)}`);
    }
  }

  /** Creates a namespace unless it exists; never changes one that other suites use. */
  async function ensureNamespace(name: string, labels: Record<string, string> = {}): Promise<void> {
    try {
      await bed.kubectl(['create', '-f', '-'], {
        input: JSON.stringify({ apiVersion: 'v1', kind: 'Namespace', metadata: { name, labels } }),
      });
    } catch (err) {
      if (!/AlreadyExists|already exists/.test(stderrOf(err))) throw err;
    }
  }

  before(async () => {
    bed = useShared();
    helmBin = ensureTools(['helm']).helm;
    helmHome = mkdtempSync(join(tmpdir(), 'oidc-helm-'));
    // The CRDs for real first, as installOperator does (the stand-ins make the
    // Prometheus Operator's kinds known), then the namespaces the dry runs use.
    await bed.kubectl(['apply', '-f', join(ROOT, 'crds')]);
    await bed.kubectl([
      'apply',
      '-f',
      join(import.meta.dirname, 'fixtures', 'prometheus-operator-crds.yaml'),
    ]);
    await bed.kubectl([
      'wait',
      '--for=condition=Established',
      '--timeout=60s',
      'crd/oidcpublishers.oidcpublisher.io',
      'crd/servicemonitors.monitoring.coreos.com',
      'crd/prometheusrules.monitoring.coreos.com',
    ]);
    await ensureNamespace(OPERATOR_NAMESPACE);
    await ensureNamespace(OTHER_NAMESPACE);
    await ensureNamespace(RESTRICTED_NAMESPACE, {
      'pod-security.kubernetes.io/enforce': 'restricted',
      'pod-security.kubernetes.io/enforce-version': 'latest',
    });

    kustomizedYaml = await bed.kubectl(['kustomize', join(ROOT, 'config', 'default')]);
    kustomized = parseObjects(kustomizedYaml, 'kubectl kustomize config/default');
    chartDefaultYaml = await template('oidc-publisher', OPERATOR_NAMESPACE);
    chartDefault = parseObjects(chartDefaultYaml, 'helm template (defaults)');
    chartMonitoringYaml = await template('oidc-publisher', OPERATOR_NAMESPACE, {
      metrics: { serviceMonitor: { enabled: true, labels: { release: 'kube-prometheus-stack' } } },
      prometheusRule: { enabled: true, labels: { release: 'kube-prometheus-stack' } },
    });
    chartMonitoring = parseObjects(chartMonitoringYaml, 'helm template (monitoring)');
    chartOtherYaml = await template(OTHER_RELEASE, OTHER_NAMESPACE);
    chartOther = parseObjects(chartOtherYaml, `helm template ${OTHER_RELEASE}`);
    networkPolicyYaml = await bed.kubectl(['kustomize', join(ROOT, 'config', 'network-policy')]);
    networkPolicy = parseObjects(networkPolicyYaml, 'kubectl kustomize config/network-policy');
    chartNetworkPolicyYaml = await template('oidc-publisher', OPERATOR_NAMESPACE, {
      networkPolicy: { enabled: true },
    });
    chartNetworkPolicy = parseObjects(chartNetworkPolicyYaml, 'helm template (networkPolicy.enabled)');
    chartDashboardsYaml = await template('oidc-publisher', OPERATOR_NAMESPACE, {
      dashboards: { enabled: true, labels: { grafana_folder: 'identity' } },
    });
    chartDashboards = parseObjects(chartDashboardsYaml, 'helm template (dashboards.enabled)');
  });

  after(() => {
    if (helmHome) rmSync(helmHome, { recursive: true, force: true });
  });

  it('kubectl apply --dry-run=server -k config/default is accepted, every object of it', async () => {
    const lines = await dryRun('config/default', ['-k', join(ROOT, 'config', 'default')]);
    assert.equal(
      lines.length,
      kustomized.length,
      `one line per object of config/default (${kustomized.length}), got:\n${lines.join('\n')}`,
    );
    assert.ok(
      lines.every((l) => l.endsWith('(server dry run)')),
      `every object was applied as a server dry run:\n${lines.join('\n')}`,
    );
  });

  it('the chart passes helm lint --strict', async () => {
    try {
      await helm(['lint', '--strict', CHART, '--namespace', OPERATOR_NAMESPACE]);
      await helm([
        'lint',
        '--strict',
        CHART,
        '--set',
        'metrics.serviceMonitor.enabled=true,prometheusRule.enabled=true,networkPolicy.enabled=true,crds.enabled=true,dashboards.enabled=true',
      ]);
    } catch (err) {
      assert.fail(`helm lint --strict failed:\n${(err as { stdout?: string }).stdout ?? ''}${stderrOf(err)}`);
    }
  });

  it('helm template | kubectl apply --dry-run=server is accepted: defaults, monitoring on, another release and namespace', async () => {
    for (const [what, yaml, objects] of [
      ['the chart with its defaults (no ServiceMonitor, no PrometheusRule)', chartDefaultYaml, chartDefault],
      ['the chart with the ServiceMonitor and PrometheusRule', chartMonitoringYaml, chartMonitoring],
      [`the chart as release ${OTHER_RELEASE} in ${OTHER_NAMESPACE}`, chartOtherYaml, chartOther],
    ] as const) {
      const lines = await dryRun(what, ['-f', '-'], yaml);
      assert.equal(lines.length, objects.length, `${what}: one line per object, got:\n${lines.join('\n')}`);
    }
    assert.equal(ofKind(chartDefault, 'ServiceMonitor').length, 0, 'no ServiceMonitor by default');
    assert.equal(ofKind(chartDefault, 'PrometheusRule').length, 0, 'no PrometheusRule by default');
    assert.equal(ofKind(chartMonitoring, 'ServiceMonitor').length, 1, 'a ServiceMonitor when enabled');
    assert.equal(ofKind(chartMonitoring, 'PrometheusRule').length, 1, 'a PrometheusRule when enabled');
  });

  it('the chart renders the objects of config/default, less the Namespace, in the release namespace', () => {
    // config/default runs one replica; its PodDisruptionBudget is the opt-in config/pdb.
    const kinds = (objs: readonly K8sObject[]) =>
      objs
        .filter((o) => o.kind !== 'CustomResourceDefinition' && o.kind !== 'PodDisruptionBudget')
        .map(
          (o) =>
            `${o.kind}@${o.metadata.namespace === 'default' ? 'default' : o.metadata.namespace ? 'ns' : '-'}`,
        )
        .sort();
    assert.deepEqual(
      kinds(chartDefault),
      kinds(kustomized.filter((o) => o.kind !== 'Namespace')),
      'the same kinds, each cluster-scoped, in the operator namespace or in default alike',
    );
    for (const o of chartOther) {
      if (o.metadata.namespace && o.metadata.namespace !== 'default') {
        assert.equal(
          o.metadata.namespace,
          OTHER_NAMESPACE,
          `${o.kind} ${o.metadata.name} is in the release namespace`,
        );
      }
    }
    assert.equal(ofKind(chartDefault, 'Namespace').length, 0, 'the chart creates no Namespace');
    assert.equal(
      ofKind(chartDefault, 'CustomResourceDefinition').length,
      0,
      'the CRD is in crds/, not templates/',
    );
  });

  it('config/default and the chart grant the same RBAC to the operator, bound the same way', () => {
    const expected = rbacOf(kustomized, 'config/default');
    assert.deepEqual(expected.problems, [], 'config/default: every role bound, every binding resolved');
    for (const [what, objects] of [
      ['the chart (defaults)', chartDefault],
      ['the chart (monitoring on)', chartMonitoring],
      [`the chart as ${OTHER_RELEASE} in ${OTHER_NAMESPACE}`, chartOther],
    ] as const) {
      const actual = rbacOf(objects, what);
      assert.deepEqual(actual.problems, [], `${what}: every role bound, every binding resolved`);
      assertSameSet(
        actual.rules,
        expected.rules,
        `${what}: Role/ClusterRole rules differ from config/default`,
      );
      assertSameSet(actual.bindings, expected.bindings, `${what}: bindings differ from config/default`);
    }
    // The events Role stays in "default" even when the release is elsewhere.
    const events = ofKind<RoleObject>(chartOther, 'Role').filter((r) =>
      r.rules?.some((x) => x.resources?.includes('events')),
    );
    assert.deepEqual(
      events.map((r) => r.metadata.namespace),
      ['default'],
      'the events Role is in default',
    );
  });

  it('the Deployment is hardened the same in config/default and the chart', () => {
    assertHardened(kustomized, 'config/default');
    assertHardened(chartDefault, 'the chart (defaults)');
    assertHardened(chartOther, `the chart as ${OTHER_RELEASE}`);
  });

  it('the pods of both Deployments are admitted where the restricted Pod Security Standard is enforced', async () => {
    await bed
      .kubectl([
        'create',
        'serviceaccount',
        'manifests-test',
        '-n',
        RESTRICTED_NAMESPACE,
        '--dry-run=client',
        '-o',
        'yaml',
      ])
      .then((y) => bed.kubectl(['apply', '-f', '-'], { input: y }));
    const podOf = (d: DeploymentObject, name: string) => ({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name, namespace: RESTRICTED_NAMESPACE, labels: d.spec.template.metadata.labels ?? {} },
      spec: { ...d.spec.template.spec, serviceAccountName: 'manifests-test' },
    });
    for (const [what, objects] of [
      ['config/default', kustomized],
      ['the chart', chartDefault],
    ] as const) {
      const d = only<DeploymentObject>(objects, 'Deployment', what);
      await dryRun(
        `a pod of the ${what} Deployment in a restricted namespace`,
        ['-f', '-'],
        JSON.stringify(podOf(d, 'manifests-psa')),
      );
    }
    // The control: the namespace really enforces (a pod that may escalate is refused).
    const d = only<DeploymentObject>(chartDefault, 'Deployment', 'the chart');
    const loose = podOf(d, 'manifests-psa-loose');
    loose.spec = structuredClone(loose.spec);
    for (const c of loose.spec.containers) delete c.securityContext;
    await assert.rejects(
      bed.kubectl(['apply', '--dry-run=server', '-f', '-'], { input: JSON.stringify(loose) }),
      (err: unknown) => /violates PodSecurity "restricted/.test(stderrOf(err)),
      'a pod without the container securityContext is refused in the restricted namespace',
    );
  });

  it('the chart defaults to two replicas with leader election, spread over nodes', () => {
    const d = only<DeploymentObject>(chartDefault, 'Deployment', 'the chart');
    assert.equal(d.spec.replicas, 2, 'replicaCount defaults to 2');
    const cfg = operatorConfig(d, 'the chart');
    assert.equal(cfg.leaderElection.enabled, true, 'leader election is on');
    assert.equal(cfg.leaderElection.leaseName, 'oidc-publisher', 'the Lease is named after the release');
    const spread = d.spec.template.spec.topologySpreadConstraints ?? [];
    assert.equal(spread.length, 1, 'one topology spread constraint by default');
    assert.equal(spread[0]?.topologyKey, 'kubernetes.io/hostname');
    assert.ok(
      selects(spread[0]?.labelSelector?.matchLabels ?? { none: 'none' }, d.spec.template.metadata.labels) &&
        selects(spread[0]?.labelSelector?.matchLabels ?? {}, d.spec.selector.matchLabels),
      `the spread selects this release's pods: ${JSON.stringify(spread[0]?.labelSelector)}`,
    );
    const other = operatorConfig(
      only<DeploymentObject>(chartOther, 'Deployment', OTHER_RELEASE),
      OTHER_RELEASE,
    );
    assert.equal(
      other.leaderElection.leaseName,
      `${OTHER_RELEASE}-oidc-publisher`,
      'another release, another Lease',
    );
  });

  it('chart values reach the operator through the flags and variables src/config.ts reads', async () => {
    const yaml = await template('oidc-publisher', OPERATOR_NAMESPACE, {
      logLevel: 'debug',
      concurrency: 8,
      watchName: 'cluster-issuer',
      leaderElection: {
        leaseName: 'issuer-lease',
        leaseDuration: '30s',
        renewDeadline: '20s',
        retryPeriod: '5s',
      },
      extraArgs: ['--storage-timeout=45s'],
      extraEnv: [{ name: 'OIDC_PUBLISHER_BACKOFF_MAX', value: '2m' }],
      storageAllowedHosts: ['s3=minio.storage.svc', 'azureBlob=*.blob.example.net', 'gcs=http://[fd00::1]'],
      gcsTokenFileDirs: ['/var/run/secrets/oidc-publisher/gcp', '/etc/gcp-token'],
      image: { tag: '9.9.9' },
      serviceAccount: {
        name: 'issuer-writer',
        annotations: { 'eks.amazonaws.com/role-arn': 'arn:aws:iam::1:role/x' },
      },
      podAnnotations: { 'example.com/a': 'b' },
      nodeSelector: { 'kubernetes.io/os': 'linux' },
    });
    const objects = parseObjects(yaml, 'helm template (settings)');
    const d = only<DeploymentObject>(objects, 'Deployment', 'settings');
    const cfg = operatorConfig(d, 'settings');
    assert.equal(cfg.logLevel, 'debug');
    assert.equal(cfg.concurrency, 8);
    assert.equal(cfg.watchName, 'cluster-issuer');
    assert.equal(cfg.namespace, OPERATOR_NAMESPACE);
    assert.deepEqual(
      { ...cfg.leaderElection, identity: undefined },
      {
        enabled: true,
        leaseName: 'issuer-lease',
        identity: undefined,
        leaseDurationMs: 30_000,
        renewDeadlineMs: 20_000,
        retryPeriodMs: 5_000,
      },
    );
    assert.equal(cfg.storageTimeoutMs, 45_000, 'extraArgs reach the operator');
    assert.deepEqual(
      cfg.storageAllowedHosts,
      ['s3=minio.storage.svc', 'azureBlob=*.blob.example.net', 'gcs=http://[fd00::1]'],
      'storageAllowedHosts reaches the operator, each entry with its backend',
    );
    assert.deepEqual(
      cfg.gcsTokenFileDirs,
      ['/var/run/secrets/oidc-publisher/gcp', '/etc/gcp-token'],
      'gcsTokenFileDirs reaches the operator',
    );
    assert.equal(cfg.backoffMaxMs, 120_000, 'extraEnv reaches the operator');
    assert.equal(manager(d, 'settings').image, 'ghcr.io/oidc-publisher/oidc-publisher:9.9.9');
    assert.equal(d.spec.template.spec.serviceAccountName, 'issuer-writer');
    // Every variable the chart itself sets is one src/config.ts reads.
    const known = new Set<string>(Object.values(FLAGS).map((f) => f.env));
    const unknown = (manager(d, 'settings').env ?? [])
      .map((e) => e.name)
      .filter((n) => n !== 'OIDC_PUBLISHER_BACKOFF_MAX' && !known.has(n));
    assert.deepEqual(unknown, [], 'the chart sets only variables the operator reads');
    // The Lease the operator uses is the one its Role lets it renew.
    const leaseRole = ofKind<RoleObject>(objects, 'Role').find((r) =>
      r.rules?.some((x) => x.resources?.includes('leases')),
    );
    assert.deepEqual(
      leaseRole?.rules?.flatMap((r) => r.resourceNames ?? []),
      ['issuer-lease'],
      'the leader-election Role names the configured Lease',
    );
  });

  it('the chart refuses several replicas without leader election, and drops the Lease Role when it is off', async () => {
    await assert.rejects(
      template('oidc-publisher', OPERATOR_NAMESPACE, { leaderElection: { enabled: false } }),
      (err: unknown) => /needs leaderElection.enabled/.test(stderrOf(err)),
      'replicaCount 2 with leader election off is an error',
    );
    const objects = parseObjects(
      await template('oidc-publisher', OPERATOR_NAMESPACE, {
        replicaCount: 1,
        leaderElection: { enabled: false },
      }),
      'helm template (no leader election)',
    );
    const cfg = operatorConfig(only<DeploymentObject>(objects, 'Deployment', 'single'), 'single');
    assert.equal(cfg.leaderElection.enabled, false, 'the operator runs without leader election');
    assert.ok(
      !ofKind<RoleObject>(objects, 'Role').some((r) => r.rules?.some((x) => x.resources?.includes('leases'))),
      'no Lease Role without leader election',
    );
    await assert.rejects(
      template('oidc-publisher', OPERATOR_NAMESPACE, { logLevel: 'verbose' }),
      (err: unknown) => /logLevel/.test(stderrOf(err)),
      'values.schema.json refuses an unknown log level',
    );
    // An entry without its backend once allowed a host to every backend.
    for (const entry of ['minio.storage.svc', 'http://10.0.0.5', 's3=minio:9000', 'blob=x.example']) {
      await assert.rejects(
        template('oidc-publisher', OPERATOR_NAMESPACE, { storageAllowedHosts: [entry] }),
        (err: unknown) => /storageAllowedHosts/.test(stderrOf(err)),
        `values.schema.json refuses storageAllowedHosts entry ${JSON.stringify(entry)}`,
      );
    }
  });

  it('the metrics Service and ServiceMonitor reach the health port, in config/ and the chart', async () => {
    const prometheusYaml = await bed.kubectl(['kustomize', join(ROOT, 'config', 'prometheus')]);
    const prometheus = parseObjects(prometheusYaml, 'config/prometheus');
    await dryRun('config/prometheus', ['-k', join(ROOT, 'config', 'prometheus')]);
    for (const [what, objects, monitor] of [
      ['config', kustomized, only<ServiceMonitorObject>(prometheus, 'ServiceMonitor', 'config/prometheus')],
      ['the chart', chartMonitoring, only<ServiceMonitorObject>(chartMonitoring, 'ServiceMonitor', 'chart')],
    ] as const) {
      const d = only<DeploymentObject>(objects, 'Deployment', what);
      const svc = only<ServiceObject>(objects, 'Service', what);
      const c = manager(d, what);
      assert.equal(
        svc.metadata.namespace,
        d.metadata.namespace,
        `${what}: the Service is beside the Deployment`,
      );
      assert.ok(
        selects(svc.spec.selector, d.spec.template.metadata.labels),
        `${what}: the Service selects the pods`,
      );
      const port = svc.spec.ports.find((p) => p.name === 'metrics');
      const target = c.ports?.find(
        (p) => p.name === port?.targetPort || p.containerPort === port?.targetPort,
      );
      assert.equal(target?.containerPort, 8081, `${what}: the metrics port targets the health port 8081`);
      assert.ok(
        selects(monitor.spec.selector.matchLabels, svc.metadata.labels),
        `${what}: the ServiceMonitor selects the Service`,
      );
      assert.deepEqual(
        monitor.spec.namespaceSelector?.matchNames,
        [d.metadata.namespace],
        `${what}: ServiceMonitor namespace`,
      );
      assert.deepEqual(
        monitor.spec.endpoints.map((e) => [e.port, e.path]),
        [['metrics', '/metrics']],
        `${what}: the ServiceMonitor scrapes /metrics on the metrics port`,
      );
    }
    // The alerts are the same in config/prometheus and the chart, and use metrics the operator exports.
    const configRule = only<PrometheusRuleObject>(prometheus, 'PrometheusRule', 'config/prometheus');
    const chartRule = only<PrometheusRuleObject>(chartMonitoring, 'PrometheusRule', 'chart');
    assert.deepEqual(chartRule.spec, configRule.spec, 'the chart renders the alerts of config/prometheus');
    const metricsSource = readFileSync(join(ROOT, 'src', 'server', 'metrics.ts'), 'utf8');
    for (const rule of configRule.spec.groups.flatMap((g) => g.rules)) {
      for (const metric of rule.expr.match(/oidc_publisher_[a-z_]+/g) ?? []) {
        assert.ok(
          metricsSource.includes(`'${metric}'`),
          `${rule.alert}: ${metric} is a metric of src/server/metrics.ts`,
        );
      }
    }
  });

  it('the chart with dashboards.enabled ships config/grafana/oidc-publisher.json as a ConfigMap for the Grafana sidecar', async () => {
    const lines = await dryRun('the chart with dashboards.enabled', ['-f', '-'], chartDashboardsYaml);
    assert.ok(
      lines.includes('configmap/oidc-publisher-dashboard created (server dry run)'),
      `the dashboard ConfigMap was applied:\n${lines.join('\n')}`,
    );
    const cm = only<K8sObject & { data?: Record<string, string> }>(
      chartDashboards,
      'ConfigMap',
      'the chart with dashboards.enabled',
    );
    assert.equal(cm.metadata.namespace, OPERATOR_NAMESPACE);
    assert.equal(cm.metadata.labels?.grafana_dashboard, '1', 'the label the Grafana sidecar selects');
    assert.equal(cm.metadata.labels?.grafana_folder, 'identity', 'dashboards.labels are added');
    const file = readFileSync(join(ROOT, 'config', 'grafana', 'oidc-publisher.json'), 'utf8');
    assert.deepEqual(Object.keys(cm.data ?? {}), ['oidc-publisher.json']);
    assert.deepEqual(JSON.parse(cm.data?.['oidc-publisher.json'] ?? 'null'), JSON.parse(file));
    assert.equal(ofKind(chartDefault, 'ConfigMap').length, 0, 'no dashboard ConfigMap by default');
  });

  it('config/network-policy and the chart with networkPolicy.enabled pass server dry run; the chart renders none by default', async () => {
    const lines = await dryRun('config/network-policy', ['-k', join(ROOT, 'config', 'network-policy')]);
    assert.deepEqual(
      lines,
      ['networkpolicy.networking.k8s.io/oidc-publisher created (server dry run)'],
      'config/network-policy is one NetworkPolicy, accepted',
    );
    const chartLines = await dryRun(
      'the chart with networkPolicy.enabled',
      ['-f', '-'],
      chartNetworkPolicyYaml,
    );
    assert.equal(
      chartLines.length,
      chartNetworkPolicy.length,
      `one line per object, got:\n${chartLines.join('\n')}`,
    );
    assert.ok(
      chartLines.includes('networkpolicy.networking.k8s.io/oidc-publisher created (server dry run)'),
      `the chart's NetworkPolicy was applied:\n${chartLines.join('\n')}`,
    );
    assert.equal(ofKind(chartNetworkPolicy, 'NetworkPolicy').length, 1, 'a NetworkPolicy when enabled');
    assert.equal(ofKind(chartDefault, 'NetworkPolicy').length, 0, 'no NetworkPolicy by default');
    assert.equal(ofKind(kustomized, 'NetworkPolicy').length, 0, 'config/default has none: it is opt-in');
  });

  it('config/network-policy and the chart allow the same traffic: API server, DNS, storage out; the health port in from monitoring', () => {
    // config/network-policy is applied beside config/default: judge it against that Deployment.
    const expected = networkPolicyRules([...kustomized, ...networkPolicy], 'config/network-policy');
    const actual = networkPolicyRules(chartNetworkPolicy, 'the chart (networkPolicy.enabled)');
    assertSameSet(actual, expected, 'NetworkPolicy rules differ between the chart and config/network-policy');
    const anywhere = 'ipBlock 0.0.0.0/0 except [169.254.0.0/16]';
    assertSameSet(
      expected,
      new Set([
        'ingress from namespaces {kubernetes.io/metadata.name=monitoring} pods * on 8081/TCP',
        `egress to ${anywhere} on 443/TCP`,
        `egress to ${anywhere} on 6443/TCP`,
        'egress to namespaces {kubernetes.io/metadata.name=kube-system} pods {k8s-app=kube-dns} on 53/UDP',
        'egress to namespaces {kubernetes.io/metadata.name=kube-system} pods {k8s-app=kube-dns} on 53/TCP',
      ]),
      'the rules are the documented ones (docs/network.md)',
    );
  });

  it('the chart renders the NetworkPolicy values it is given, and values.schema.json refuses bad ones', async () => {
    const values = {
      networkPolicy: {
        enabled: true,
        metrics: {
          namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'observability' } },
          podSelector: { matchLabels: { 'app.kubernetes.io/name': 'prometheus' } },
        },
        apiServer: { ipBlocks: [{ cidr: '172.18.0.2/32' }], ports: [6443] },
        storage: {
          ipBlocks: [{ cidr: '52.216.0.0/15' }, { cidr: '10.0.0.0/8', except: ['10.96.0.0/12'] }],
          ports: [443, 9000],
        },
        extraEgress: [
          { to: [{ ipBlock: { cidr: '169.254.170.23/32' } }], ports: [{ port: 80, protocol: 'TCP' }] },
        ],
      },
    };
    const yaml = await template(OTHER_RELEASE, OTHER_NAMESPACE, values);
    const objects = parseObjects(yaml, 'helm template (networkPolicy values)');
    await dryRun('the chart with networkPolicy values', ['-f', '-'], yaml);
    const rules = networkPolicyRules(objects, 'the chart (networkPolicy values)');
    assertSameSet(
      rules,
      new Set([
        'ingress from namespaces {kubernetes.io/metadata.name=observability} pods {app.kubernetes.io/name=prometheus} on 8081/TCP',
        'egress to ipBlock 172.18.0.2/32 except [] on 6443/TCP',
        'egress to namespaces {kubernetes.io/metadata.name=kube-system} pods {k8s-app=kube-dns} on 53/UDP',
        'egress to namespaces {kubernetes.io/metadata.name=kube-system} pods {k8s-app=kube-dns} on 53/TCP',
        'egress to ipBlock 52.216.0.0/15 except [] on 443/TCP',
        'egress to ipBlock 52.216.0.0/15 except [] on 9000/TCP',
        'egress to ipBlock 10.0.0.0/8 except [10.96.0.0/12] on 443/TCP',
        'egress to ipBlock 10.0.0.0/8 except [10.96.0.0/12] on 9000/TCP',
        'egress to ipBlock 169.254.170.23/32 except [] on 80/TCP',
      ]),
      'the chart renders the configured peers and ports',
    );
    for (const [bad, field] of [
      [{ apiServer: { ipBlocks: [{ cidr: 'kubernetes.default' }], ports: [443] } }, 'cidr'],
      [{ storage: { ipBlocks: [], ports: [443] } }, 'ipBlocks'],
      [{ storage: { ipBlocks: [{ cidr: '0.0.0.0/0' }], ports: [0] } }, 'ports'],
      [{ metrics: { namespaceSelector: { name: 'monitoring' } } }, 'namespaceSelector'],
    ] as const) {
      await assert.rejects(
        template('oidc-publisher', OPERATOR_NAMESPACE, { networkPolicy: { enabled: true, ...bad } }),
        (err: unknown) => new RegExp(field).test(stderrOf(err)),
        `values.schema.json refuses networkPolicy ${JSON.stringify(bad)}`,
      );
    }
  });

  it('every flag of src/config.ts has a chart value, and each value reaches the operator', async () => {
    // The defaults are the operator's own.
    const defaults = operatorConfig(
      only<DeploymentObject>(chartDefault, 'Deployment', 'defaults'),
      'defaults',
    );
    const bare = parseConfig([], { POD_NAMESPACE: OPERATOR_NAMESPACE, POD_NAME: 'p' }, () => {
      throw new Error('no in-cluster namespace file in this test');
    });
    for (const key of [
      'sourceTimeoutMs',
      'storageTimeoutMs',
      'backoffBaseMs',
      'backoffMaxMs',
      'shutdownGraceMs',
      'kubeApiQps',
      'kubeApiBurst',
      'allowForeignJwksURI',
      'healthAddr',
    ] as const) {
      assert.deepEqual(defaults[key], bare[key], `the chart's default for ${key} is the operator's`);
    }
    const yaml = await template('oidc-publisher', OPERATOR_NAMESPACE, {
      sourceTimeout: '20s',
      storageTimeout: '40s',
      backoff: { base: '2s', max: '3m' },
      shutdownGrace: '25s',
      terminationGracePeriodSeconds: 40,
      kubeApi: { qps: 12.5, burst: 30 },
      allowForeignJwksURI: true,
      healthPort: 9090,
      watchName: 'cluster-issuer',
      storageAllowedHosts: ['s3=minio.storage.svc'],
      gcsTokenFileDirs: ['/var/run/secrets/oidc-publisher/gcp', '/var/run/secrets/tokens'],
      networkPolicy: { enabled: true },
    });
    const objects = parseObjects(yaml, 'helm template (flag values)');
    // Every flag has a value that sets it; KUBECONFIG stays unset in a pod, where the
    // operator uses its in-cluster identity.
    const set = new Set(
      (manager(only<DeploymentObject>(objects, 'Deployment', 'flag values'), 'flag values').env ?? []).map(
        (e) => e.name,
      ),
    );
    const missing = Object.entries(FLAGS)
      .filter(([, f]) => f.env !== 'KUBECONFIG' && !set.has(f.env))
      .map(([name, f]) => `--${name} (${f.env})`);
    assert.deepEqual(missing, [], 'flags no chart value sets (add one to values.yaml and the Deployment)');
    await dryRun('the chart with every flag value set', ['-f', '-'], yaml);
    const d = only<DeploymentObject>(objects, 'Deployment', 'flag values');
    const cfg = operatorConfig(d, 'flag values');
    assert.deepEqual(
      {
        sourceTimeoutMs: cfg.sourceTimeoutMs,
        storageTimeoutMs: cfg.storageTimeoutMs,
        backoffBaseMs: cfg.backoffBaseMs,
        backoffMaxMs: cfg.backoffMaxMs,
        shutdownGraceMs: cfg.shutdownGraceMs,
        kubeApiQps: cfg.kubeApiQps,
        kubeApiBurst: cfg.kubeApiBurst,
        allowForeignJwksURI: cfg.allowForeignJwksURI,
        healthAddr: cfg.healthAddr,
        gcsTokenFileDirs: cfg.gcsTokenFileDirs,
      },
      {
        sourceTimeoutMs: 20_000,
        storageTimeoutMs: 40_000,
        backoffBaseMs: 2_000,
        backoffMaxMs: 180_000,
        shutdownGraceMs: 25_000,
        kubeApiQps: 12.5,
        kubeApiBurst: 30,
        allowForeignJwksURI: true,
        healthAddr: ':9090',
        gcsTokenFileDirs: ['/var/run/secrets/oidc-publisher/gcp', '/var/run/secrets/tokens'],
      },
      'each value reaches the operator',
    );
    const c = manager(d, 'flag values');
    assert.equal(
      c.ports?.find((p) => p.name === 'health')?.containerPort,
      9090,
      'the health port follows healthPort',
    );
    assert.ok(
      networkPolicyRules(objects, 'flag values').has(
        'ingress from namespaces {kubernetes.io/metadata.name=monitoring} pods * on 9090/TCP',
      ),
      'the NetworkPolicy lets monitoring in on healthPort',
    );
    for (const [bad, field] of [
      [{ kubeApi: { qps: -1 } }, 'qps'],
      [{ kubeApi: { burst: 0 } }, 'burst'],
      [{ sourceTimeout: '10' }, 'sourceTimeout'],
      [{ healthPort: 0 }, 'healthPort'],
      [{ allowForeignJwksURI: 'sometimes' }, 'allowForeignJwksURI'],
    ] as const) {
      await assert.rejects(
        template('oidc-publisher', OPERATOR_NAMESPACE, bad),
        (err: unknown) => new RegExp(field).test(stderrOf(err)),
        `values.schema.json refuses ${JSON.stringify(bad)}`,
      );
    }
  });

  it('extraVolumes, extraVolumeMounts and extraEnv mount a CA bundle and a credential file on the read-only root filesystem', async () => {
    const values = {
      extraVolumes: [
        { name: 'storage-ca', configMap: { name: 'storage-ca' } },
        { name: 'gcs-key', secret: { secretName: 'gcs-key' } },
      ],
      extraVolumeMounts: [
        { name: 'storage-ca', mountPath: '/etc/storage-ca', readOnly: true },
        { name: 'gcs-key', mountPath: '/var/run/secrets/gcs', readOnly: true },
      ],
      extraEnv: [
        { name: 'NODE_EXTRA_CA_CERTS', value: '/etc/storage-ca/ca.crt' },
        { name: 'GOOGLE_APPLICATION_CREDENTIALS', value: '/var/run/secrets/gcs/key.json' },
      ],
    };
    const yaml = await template('oidc-publisher', OPERATOR_NAMESPACE, values);
    const objects = parseObjects(yaml, 'helm template (extra volumes)');
    await dryRun('the chart with extraVolumes and extraVolumeMounts', ['-f', '-'], yaml);
    const d = only<DeploymentObject>(objects, 'Deployment', 'extra volumes');
    assertHardened(objects, 'the chart with extra volumes');
    const c = manager(d, 'extra volumes');
    assert.deepEqual(c.volumeMounts, values.extraVolumeMounts, 'the mounts are the configured ones');
    assert.deepEqual(
      d.spec.template.spec.volumes,
      values.extraVolumes,
      'the volumes are the configured ones',
    );
    const env = new Map((c.env ?? []).map((e) => [e.name, e.value]));
    assert.equal(env.get('NODE_EXTRA_CA_CERTS'), '/etc/storage-ca/ca.crt');
    assert.equal(env.get('GOOGLE_APPLICATION_CREDENTIALS'), '/var/run/secrets/gcs/key.json');
    // The pod with the mounts is still admitted where the restricted standard is enforced.
    await bed
      .kubectl([
        'create',
        'serviceaccount',
        'manifests-test',
        '-n',
        RESTRICTED_NAMESPACE,
        '--dry-run=client',
        '-o',
        'yaml',
      ])
      .then((y) => bed.kubectl(['apply', '-f', '-'], { input: y }));
    await dryRun(
      'a pod with the extra volumes in a restricted namespace',
      ['-f', '-'],
      JSON.stringify({
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: { name: 'manifests-volumes', namespace: RESTRICTED_NAMESPACE },
        spec: { ...d.spec.template.spec, serviceAccountName: 'manifests-test' },
      }),
    );
    assert.equal(
      only<DeploymentObject>(chartDefault, 'Deployment', 'defaults').spec.template.spec.volumes,
      undefined,
      'no volumes by default',
    );
    for (const bad of [
      { extraVolumeMounts: [{ name: 'storage-ca' }] },
      { extraVolumeMounts: [{ name: 'storage-ca', mountPath: 'etc/storage-ca' }] },
      { extraVolumes: [{ configMap: { name: 'storage-ca' } }] },
    ]) {
      await assert.rejects(
        template('oidc-publisher', OPERATOR_NAMESPACE, bad),
        (err: unknown) => /extraVolume/.test(stderrOf(err)),
        `values.schema.json refuses ${JSON.stringify(bad)}`,
      );
    }
  });

  it('the chart renders a PodDisruptionBudget for several replicas, none for one, and the configured budget', async () => {
    const pdbOf = (objects: readonly K8sObject[], what: string) =>
      only<PodDisruptionBudgetObject>(objects, 'PodDisruptionBudget', what);
    const d = only<DeploymentObject>(chartDefault, 'Deployment', 'defaults');
    const pdb = pdbOf(chartDefault, 'defaults');
    assert.equal(
      pdb.metadata.namespace,
      d.metadata.namespace,
      'the PodDisruptionBudget is beside the Deployment',
    );
    assert.ok(
      selects(pdb.spec.selector.matchLabels, d.spec.template.metadata.labels) &&
        selects(pdb.spec.selector.matchLabels, d.spec.selector.matchLabels),
      'the PodDisruptionBudget selects the operator pods',
    );
    assert.deepEqual(
      [pdb.spec.maxUnavailable, pdb.spec.minAvailable],
      [1, undefined],
      'one replica at a time may go',
    );
    const single = parseObjects(
      await template('oidc-publisher', OPERATOR_NAMESPACE, { replicaCount: 1 }),
      'helm template (one replica)',
    );
    assert.equal(ofKind(single, 'PodDisruptionBudget').length, 0, 'none for a single replica');
    const forced = parseObjects(
      await template('oidc-publisher', OPERATOR_NAMESPACE, {
        replicaCount: 1,
        podDisruptionBudget: { enabled: true, minAvailable: 1 },
      }),
      'helm template (one replica, budget on)',
    );
    assert.deepEqual(
      [pdbOf(forced, 'budget on').spec.minAvailable, pdbOf(forced, 'budget on').spec.maxUnavailable],
      [1, undefined],
      'enabled: true renders one, minAvailable wins over maxUnavailable',
    );
    const percentYaml = await template('oidc-publisher', OPERATOR_NAMESPACE, {
      replicaCount: 3,
      podDisruptionBudget: { minAvailable: '50%' },
    });
    await dryRun('the chart with podDisruptionBudget.minAvailable 50%', ['-f', '-'], percentYaml);
    assert.equal(pdbOf(parseObjects(percentYaml, 'percent'), 'percent').spec.minAvailable, '50%');
    const off = parseObjects(
      await template('oidc-publisher', OPERATOR_NAMESPACE, { podDisruptionBudget: { enabled: false } }),
      'helm template (budget off)',
    );
    assert.equal(ofKind(off, 'PodDisruptionBudget').length, 0, 'enabled: false renders none');
    await assert.rejects(
      template('oidc-publisher', OPERATOR_NAMESPACE, { podDisruptionBudget: { maxUnavailable: 'half' } }),
      (err: unknown) => /maxUnavailable/.test(stderrOf(err)),
      'values.schema.json refuses a budget that is neither a count nor a percentage',
    );
  });

  it('config/default and the chart ship the same view and edit ClusterRoles, aggregated into view, edit and admin', async () => {
    const aggregated = (objects: readonly K8sObject[]) =>
      ofKind<RoleObject>(objects, 'ClusterRole')
        .filter(aggregates)
        .map((r) => ({
          name: r.metadata.name,
          labels: Object.keys(r.metadata.labels ?? {})
            .filter((k) => AGGREGATE_TO.test(k))
            .map((k) => `${k}=${r.metadata.labels?.[k]}`)
            .sort(),
          rules: r.rules,
        }))
        .sort((a, b) => a.name.localeCompare(b.name));
    const expected = [
      {
        name: 'oidc-publisher-edit',
        labels: [
          'rbac.authorization.k8s.io/aggregate-to-admin=true',
          'rbac.authorization.k8s.io/aggregate-to-edit=true',
        ],
        rules: [
          {
            apiGroups: ['oidcpublisher.io'],
            resources: ['oidcpublishers'],
            verbs: ['create', 'update', 'patch', 'delete', 'deletecollection'],
          },
        ],
      },
      {
        name: 'oidc-publisher-view',
        labels: [
          'rbac.authorization.k8s.io/aggregate-to-admin=true',
          'rbac.authorization.k8s.io/aggregate-to-edit=true',
          'rbac.authorization.k8s.io/aggregate-to-view=true',
        ],
        rules: [
          { apiGroups: ['oidcpublisher.io'], resources: ['oidcpublishers'], verbs: ['get', 'list', 'watch'] },
        ],
      },
    ];
    assert.deepEqual(aggregated(kustomized), expected, 'config/default: the view and edit ClusterRoles');
    assert.deepEqual(aggregated(chartDefault), expected, 'the chart: the view and edit ClusterRoles');
    const off = parseObjects(
      await template('oidc-publisher', OPERATOR_NAMESPACE, { rbac: { aggregateClusterRoles: false } }),
      'helm template (no aggregated roles)',
    );
    assert.deepEqual(aggregated(off), [], 'rbac.aggregateClusterRoles: false renders none');
  });

  it('crds.enabled renders the CRD of crds/ as a template, kept on uninstall unless crds.keep is false', async () => {
    const repo = parseObjects(readFileSync(join(ROOT, 'crds', CRD_FILE), 'utf8'), CRD_FILE)[0] as CrdObject;
    const kept = await template('oidc-publisher', OPERATOR_NAMESPACE, { crds: { enabled: true } });
    const keptObjects = parseObjects(kept, 'helm template (crds.enabled)');
    await dryRun('the chart with crds.enabled', ['-f', '-'], kept);
    const crd = only<CrdObject>(keptObjects, 'CustomResourceDefinition', 'crds.enabled');
    assert.equal(crd.metadata.name, repo.metadata.name);
    assert.deepEqual(crd.spec, repo.spec, "the templated CRD's spec is the one of crds/");
    assert.equal(crd.metadata.annotations?.['helm.sh/resource-policy'], 'keep', 'crds.keep defaults to true');
    assert.equal(crd.metadata.labels?.['app.kubernetes.io/managed-by'], 'Helm', 'labelled as the release');
    const notKept = only<CrdObject>(
      parseObjects(
        await template('oidc-publisher', OPERATOR_NAMESPACE, { crds: { enabled: true, keep: false } }),
        'helm template (crds.keep false)',
      ),
      'CustomResourceDefinition',
      'crds.keep false',
    );
    assert.equal(
      notKept.metadata.annotations?.['helm.sh/resource-policy'],
      undefined,
      'crds.keep: false drops the policy',
    );
  });

  it('config/pdb and config/ca-bundle build with kubectl kustomize in an overlay and pass server dry run', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'oidc-kustomize-'));
    try {
      const up = relative(dir, ROOT);
      writeFileSync(join(dir, 'ca.crt'), 'a PEM bundle\n');
      writeFileSync(
        join(dir, 'kustomization.yaml'),
        stringify({
          apiVersion: 'kustomize.config.k8s.io/v1beta1',
          kind: 'Kustomization',
          resources: [join(up, 'config', 'default')],
          components: [join(up, 'config', 'pdb'), join(up, 'config', 'ca-bundle')],
          replicas: [{ name: 'oidc-publisher', count: 2 }],
          configMapGenerator: [
            { name: 'oidc-publisher-ca-bundle', namespace: 'oidc-publisher-system', files: ['ca.crt'] },
          ],
        }),
      );
      const yaml = await bed.kubectl(['kustomize', dir]);
      const objects = parseObjects(yaml, 'kubectl kustomize (config/pdb, config/ca-bundle)');
      const lines = await dryRun('config/default with config/pdb and config/ca-bundle', ['-f', '-'], yaml);
      assert.equal(lines.length, objects.length, `one line per object, got:\n${lines.join('\n')}`);
      const d = only<DeploymentObject>(objects, 'Deployment', 'overlay');
      assertHardened(objects, 'config/default with config/ca-bundle');
      const pdb = only<PodDisruptionBudgetObject>(objects, 'PodDisruptionBudget', 'overlay');
      assert.equal(
        pdb.metadata.namespace,
        d.metadata.namespace,
        'the PodDisruptionBudget is beside the Deployment',
      );
      assert.ok(
        selects(pdb.spec.selector.matchLabels, d.spec.template.metadata.labels),
        'it selects the pods',
      );
      assert.equal(pdb.spec.maxUnavailable, 1, 'one replica at a time may go, as in the chart');
      const cm = only<K8sObject & { data?: Record<string, string> }>(objects, 'ConfigMap', 'overlay');
      const c = manager(d, 'overlay');
      const mount = c.volumeMounts?.find((m) => m.name === 'ca-bundle');
      const volume = d.spec.template.spec.volumes?.find((v) => v.name === 'ca-bundle');
      assert.equal(
        volume?.configMap?.name,
        cm.metadata.name,
        'the volume is the generated ConfigMap (hash suffix and all)',
      );
      assert.equal(mount?.readOnly, true, 'the bundle is mounted read-only');
      const file = c.env?.find((e) => e.name === 'NODE_EXTRA_CA_CERTS')?.value ?? '';
      assert.equal(
        `${mount?.mountPath}/ca.crt`,
        file,
        'NODE_EXTRA_CA_CERTS names ca.crt in the mounted bundle',
      );
      assert.ok(cm.data?.['ca.crt'], 'the ConfigMap holds ca.crt');
      assert.equal(operatorConfig(d, 'overlay').namespace, d.metadata.namespace, 'the operator still starts');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("the chart's crds/ holds the repository's CRD, byte for byte", () => {
    const repo = readFileSync(join(ROOT, 'crds', CRD_FILE));
    const chart = readFileSync(join(CHART, 'crds', CRD_FILE));
    assert.ok(
      repo.equals(chart),
      `charts/oidc-publisher/crds/${CRD_FILE} differs from crds/${CRD_FILE}; copy it:\n` +
        `  cp crds/${CRD_FILE} charts/oidc-publisher/crds/`,
    );
  });
});

/**
 * A static check of the Dockerfile. Debian has no hadolint package, so this
 * asserts the properties we rely on instead of linting in general.
 */
describe('Dockerfile', () => {
  interface Instruction {
    op: string;
    args: string;
  }
  interface Stage {
    from: string;
    name?: string;
    instructions: Instruction[];
  }

  function stages(): Stage[] {
    const text = readFileSync(join(ROOT, 'Dockerfile'), 'utf8').replace(/\\\n/g, ' ');
    const result: Stage[] = [];
    const globalArgs = dockerfileGlobalArgs(text);
    for (const line of text.split('\n')) {
      const trimmed = line.trim();
      if (trimmed === '' || trimmed.startsWith('#')) continue;
      const [, op = '', args = ''] = /^(\S+)\s*(.*)$/.exec(trimmed) ?? [];
      if (op.toUpperCase() === 'FROM') {
        const [, from = '', name] = /^(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?$/i.exec(args) ?? [];
        // The base comes from ARG NODE_IMAGE: checked at its default, the image a plain build uses.
        result.push({
          from: expandDockerfileArgs(from, globalArgs),
          ...(name ? { name } : {}),
          instructions: [],
        });
      } else {
        result.at(-1)?.instructions.push({ op: op.toUpperCase(), args });
      }
    }
    return result;
  }

  it('is multi-stage, each base image pinned to an exact Node 24 release', () => {
    const all = stages();
    assert.ok(all.length >= 2, `more than one stage, found ${all.length}`);
    const names = new Set<string>();
    for (const s of all) {
      if (!names.has(s.from)) {
        assert.match(
          s.from,
          /^node:24\.\d+\.\d+-[a-z0-9.-]+(@sha256:[0-9a-f]{64})?$/,
          `base image ${s.from} is pinned`,
        );
      }
      if (s.name) names.add(s.name);
    }
  });

  it('runs as a numeric non-root user, on production dependencies only, with the CLI as ENTRYPOINT', () => {
    const all = stages();
    const final = all.at(-1)!;
    const user = final.instructions.filter((i) => i.op === 'USER').at(-1)?.args ?? '';
    const [, uid, gid] = /^(\d+)(?::(\d+))?$/.exec(user) ?? [];
    assert.ok(uid !== undefined, `USER is numeric (uid[:gid]), got ${JSON.stringify(user)}`);
    assert.notEqual(Number(uid), 0, 'USER is not root');
    if (gid !== undefined) assert.notEqual(Number(gid), 0, 'the group is not root');

    const deps = all.find((s) =>
      s.instructions.some((i) => i.op === 'RUN' && /\bnpm ci\b/.test(i.args) && /--omit=dev\b/.test(i.args)),
    );
    assert.ok(deps?.name, 'a named stage installs dependencies with npm ci --omit=dev');
    const copiesModules = final.instructions.filter((i) => i.op === 'COPY' && /node_modules/.test(i.args));
    assert.deepEqual(
      copiesModules.map((i) => /--from=(\S+)/.exec(i.args)?.[1]),
      [deps.name],
      'node_modules in the image come only from the --omit=dev stage',
    );

    const entrypoint = final.instructions.find((i) => i.op === 'ENTRYPOINT')?.args ?? '';
    const exec = JSON.parse(entrypoint) as unknown;
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as {
      bin: Record<string, string>;
    };
    assert.ok(Array.isArray(exec), 'ENTRYPOINT in exec form');
    const argv = exec as string[];
    assert.equal(argv[0], 'node', 'ENTRYPOINT runs node');
    assert.equal(argv.at(-1), pkg.bin['oidc-publisher'], 'ENTRYPOINT runs the CLI of package.json bin');
    for (const flag of argv.slice(1, -1))
      assert.match(flag, /^--[a-z0-9-]+(=\S+)?$/, 'only Node flags between');
    const cmd = final.instructions.find((i) => i.op === 'CMD')?.args;
    assert.deepEqual(cmd && (JSON.parse(cmd) as unknown), ['run'], 'CMD runs the operator');
    const expose = final.instructions.filter((i) => i.op === 'EXPOSE').map((i) => i.args);
    assert.deepEqual(expose, ['8081'], 'the image exposes the health port the manifests probe');
  });
});

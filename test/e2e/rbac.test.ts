/**
 * Least privilege, proven against the real API server.
 *
 * Every grant in config/rbac is needed: for each one (each verb of each
 * resource, resource name or non-resource URL of each rule), the rendered RBAC
 * is applied with exactly that grant removed, `kubectl auth can-i` shows it is
 * gone (and only it), and the operator, run with the reduced RBAC, visibly
 * breaks in the operation that needs it. A grant without a case here fails the
 * coverage test, and a grant whose removal breaks nothing fails its case.
 *
 * Nothing else is granted: the operator's identity cannot read Secrets outside
 * its namespace, list Secrets, write OidcPublishers, mint tokens of any
 * ServiceAccount but the canary's (in its own namespace), or write anything
 * besides its status, finalizers, Events and Lease.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { DeleteObjectsCommand } from '@aws-sdk/client-s3';
import { parseAllDocuments } from 'yaml';
import type { Bed } from '../bed/bed.ts';
import { request } from '../bed/http.ts';
import { logTail, ManagedProcess } from '../bed/process.ts';
import { createS3Client } from '../bed/s3.ts';
import { useBed } from '../bed/shared.ts';
import { ensureTools } from '../bed/tools.ts';
import {
  applyYaml,
  condition,
  createSecret,
  eventually,
  getPublisher,
  installOperator,
  metricSum,
  OPERATOR_NAMESPACE,
  OPERATOR_SA,
  OperatorProcess,
  type PublisherView,
  ROOT,
  samplePublisher,
  waitForReady,
} from './harness.ts';

const SA_USER = `system:serviceaccount:${OPERATOR_NAMESPACE}:${OPERATOR_SA}`;
const LEASE = 'oidc-publisher';
const INTEGRITY_SECRET = 'oidc-publisher-integrity';
const ELECTION = ['--lease-duration', '3s', '--renew-deadline', '2s', '--retry-period', '500ms'];
/**
 * Kubernetes binds this ClusterRole to every ServiceAccount by default; it grants the same
 * non-resource URLs as our ClusterRole. Hardened clusters remove the binding, and the operator must
 * not depend on it, so this suite removes it to show that our own rule is what the operator uses.
 */
const DEFAULT_DISCOVERY_BINDING = 'system:service-account-issuer-discovery';

interface PolicyRule {
  apiGroups?: string[];
  resources?: string[];
  resourceNames?: string[];
  nonResourceURLs?: string[];
  verbs: string[];
}
interface RbacObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string };
  rules?: PolicyRule[];
}

/** One verb on one resource (or resource name, or non-resource URL), granted by one role. */
interface Grant {
  key: string;
  roleKind: 'Role' | 'ClusterRole';
  roleName: string;
  namespace?: string;
  verb: string;
  apiGroup?: string;
  resource?: string;
  resourceName?: string;
  url?: string;
}

function grantKey(g: Omit<Grant, 'key'>): string {
  const [resource, subresource] = (g.resource ?? '').split('/');
  const what = g.url
    ? g.url
    : `${resource}${g.apiGroup ? `.${g.apiGroup}` : ''}${subresource ? `/${subresource}` : ''}${g.resourceName ? ` named ${g.resourceName}` : ''}`;
  return `${g.roleKind} ${g.namespace ? `${g.namespace}/` : ''}${g.roleName}: ${g.verb} ${what}`;
}

/** A rule as its atomic grants: apiGroup x resource x resourceName x verb, or URL x verb. */
function atoms(role: RbacObject, rule: PolicyRule): Grant[] {
  const base = {
    roleKind: role.kind as Grant['roleKind'],
    roleName: role.metadata.name,
    ...(role.metadata.namespace ? { namespace: role.metadata.namespace } : {}),
  };
  const out: Grant[] = [];
  for (const verb of rule.verbs) {
    for (const url of rule.nonResourceURLs ?? []) out.push({ ...base, verb, url, key: '' });
    for (const apiGroup of rule.apiGroups ?? []) {
      for (const resource of rule.resources ?? []) {
        const names = rule.resourceNames?.length ? rule.resourceNames : [undefined];
        for (const resourceName of names) {
          out.push({ ...base, verb, apiGroup, resource, ...(resourceName ? { resourceName } : {}), key: '' });
        }
      }
    }
  }
  return out.map((g) => ({ ...g, key: grantKey(g) }));
}

function toRule(g: Grant): PolicyRule {
  if (g.url) return { nonResourceURLs: [g.url], verbs: [g.verb] };
  return {
    apiGroups: [g.apiGroup ?? ''],
    resources: [g.resource ?? ''],
    ...(g.resourceName ? { resourceNames: [g.resourceName] } : {}),
    verbs: [g.verb],
  };
}

function isRole(o: RbacObject): boolean {
  return o.kind === 'Role' || o.kind === 'ClusterRole';
}

/** The rendered objects with exactly one grant removed (its rule split into the remaining grants). */
function without(objects: readonly RbacObject[], removed: Grant): RbacObject[] {
  let found = false;
  const out = objects.map((o) => {
    if (!isRole(o) || o.kind !== removed.roleKind || o.metadata.name !== removed.roleName) return o;
    if ((o.metadata.namespace ?? '') !== (removed.namespace ?? '')) return o;
    const rules = (o.rules ?? []).flatMap((rule) => {
      const all = atoms(o, rule);
      const kept = all.filter((g) => g.key !== removed.key);
      if (kept.length === all.length) return [rule];
      found = true;
      return kept.map(toRule);
    });
    return { ...o, rules };
  });
  assert.ok(found, `grant not in the rendered RBAC: ${removed.key}`);
  return out;
}

/** `kubectl auth can-i` as the operator's ServiceAccount: true for yes, false for no. */
async function canI(bed: Bed, args: readonly string[]): Promise<boolean> {
  try {
    const out = await bed.kubectl(['auth', 'can-i', ...args, `--as=${SA_USER}`]);
    if (out.trim() === 'yes') return true;
    throw new Error(`kubectl auth can-i ${args.join(' ')}: ${out}`);
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string };
    if (e.stdout?.trim() === 'no') return false;
    throw err;
  }
}

function canIArgs(g: Grant): string[] {
  if (g.url) return [g.verb, g.url];
  const [resource, subresource] = (g.resource ?? '').split('/');
  const args = [
    g.verb,
    `${resource}${g.apiGroup ? `.${g.apiGroup}` : ''}${g.resourceName ? `/${g.resourceName}` : ''}`,
  ];
  if (subresource) args.push(`--subresource=${subresource}`);
  if (g.namespace) args.push('-n', g.namespace);
  return args;
}

/**
 * The same question as `kubectl auth can-i --as`, asked in-process with a SubjectAccessReview as the
 * bed admin (with the groups the API server gives an impersonated ServiceAccount): cheap enough to poll.
 */
async function allowed(bed: Bed, g: Grant): Promise<boolean> {
  const [resource, subresource] = (g.resource ?? '').split('/');
  const spec = {
    user: SA_USER,
    groups: [
      'system:serviceaccounts',
      `system:serviceaccounts:${OPERATOR_NAMESPACE}`,
      'system:authenticated',
    ],
    ...(g.url
      ? { nonResourceAttributes: { path: g.url, verb: g.verb } }
      : {
          resourceAttributes: {
            verb: g.verb,
            group: g.apiGroup ?? '',
            resource,
            ...(subresource ? { subresource } : {}),
            ...(g.resourceName ? { name: g.resourceName } : {}),
            ...(g.namespace ? { namespace: g.namespace } : {}),
          },
        }),
  };
  const res = await request(`${bed.apiserverURL}/apis/authorization.k8s.io/v1/subjectaccessreviews`, {
    method: 'POST',
    ca: bed.ca,
    cert: readFileSync(bed.state.admin.cert),
    key: readFileSync(bed.state.admin.key),
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ apiVersion: 'authorization.k8s.io/v1', kind: 'SubjectAccessReview', spec }),
  });
  if (res.status !== 201) throw new Error(`SubjectAccessReview: HTTP ${res.status} ${res.text()}`);
  return (res.json() as { status?: { allowed?: boolean } }).status?.allowed === true;
}

/** Runs `fn` over `items`, `limit` at a time. */
async function pool<T, R>(items: readonly T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const results: R[] = new Array(items.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, async () => {
      while (next < items.length) {
        const i = next++;
        results[i] = await fn(items[i]!);
      }
    }),
  );
  return results;
}

interface CaseContext {
  bed: Bed;
  op: OperatorProcess;
  /** The OidcPublisher this case's operator reconciles (and only it). */
  name: string;
}

interface Case {
  /** The operator operation that needs the grant, and where in the code. */
  needs: string;
  /** Run the operator with leader election (the Lease grants); off otherwise. */
  leaderElection?: boolean;
  /** Runs with the reduced RBAC in place, before the operator starts. */
  prepare?: (bed: Bed) => Promise<void>;
  /** Waits for the breakage the missing grant causes; returns what was seen. */
  breaks: (c: CaseContext) => Promise<string>;
}

function logged(op: OperatorProcess, msg: string, detail: RegExp): Record<string, unknown> | undefined {
  return op.logs().find((l) => l.msg === msg && detail.test(JSON.stringify(l)));
}

async function waitForLog(op: OperatorProcess, msg: string, detail: RegExp, timeoutMs = 20_000) {
  return eventually(
    `the operator to log ${JSON.stringify(msg)} matching ${detail}`,
    async () => logged(op, msg, detail),
    timeoutMs,
  );
}

async function eventsAbout(bed: Bed, name: string): Promise<{ reason?: string; type?: string }[]> {
  const list = JSON.parse(
    await bed.kubectl(['get', 'events.events.k8s.io', '-n', 'default', '-o', 'json']),
  ) as { items: { regarding?: { kind?: string; name?: string }; reason?: string; type?: string }[] };
  return list.items.filter((e) => e.regarding?.kind === 'OidcPublisher' && e.regarding.name === name);
}

function hasStatus(p: PublisherView): boolean {
  return (p.status?.conditions?.length ?? 0) > 0;
}

/** The record MAC key Secret as the manifests install it: empty. */
async function emptyIntegritySecret(bed: Bed): Promise<void> {
  await bed.kubectl(['delete', 'secret', '-n', OPERATOR_NAMESPACE, INTEGRITY_SECRET, '--ignore-not-found']);
  await bed.kubectl(['apply', '-f', join(ROOT, 'config', 'rbac', 'integrity_secret.yaml')]);
}

/** Waits for Published=False/IntegrityKeyUnavailable with nothing written; returns its message. */
async function integrityKeyUnavailable(c: CaseContext): Promise<string> {
  const p = await eventually('Published=False/IntegrityKeyUnavailable', async () => {
    const v = await getPublisher(c.bed, c.name);
    const s = condition(v, 'Published');
    return s?.status === 'False' && s.reason === 'IntegrityKeyUnavailable' ? v : undefined;
  });
  assert.notEqual(condition(p, 'Ready')?.status, 'True');
  assert.equal(p.status?.objects, undefined, 'nothing was published');
  return condition(p, 'Published')?.message ?? '';
}

async function leaseHolder(bed: Bed): Promise<string | undefined> {
  try {
    const l = JSON.parse(
      await bed.kubectl(['get', 'lease', '-n', OPERATOR_NAMESPACE, LEASE, '-o', 'json']),
    ) as { spec?: { holderIdentity?: string } };
    return l.spec?.holderIdentity ?? '';
  } catch {
    return undefined;
  }
}

async function deleteLease(bed: Bed): Promise<void> {
  await bed.kubectl(['delete', 'lease', '-n', OPERATOR_NAMESPACE, LEASE, '--ignore-not-found']);
}

/** Nothing reconciled: no finalizer, no status, no Events, for a few seconds after the operator started. */
async function neverReconciled(c: CaseContext): Promise<string> {
  const p = await getPublisher(c.bed, c.name);
  assert.deepEqual(p.metadata.finalizers ?? [], [], 'no finalizer was added');
  assert.ok(!hasStatus(p), `no status was written: ${JSON.stringify(p.status)}`);
  assert.deepEqual(await eventsAbout(c.bed, c.name), [], 'no Events were recorded');
  return 'no finalizer, no status, no Events';
}

/**
 * Every grant of config/rbac, keyed as grantKey renders it, with the operation that needs it.
 * Adding a rule to config/rbac without a case here fails the coverage test.
 */
const CASES: Record<string, Case> = {
  'ClusterRole oidc-publisher-manager: list oidcpublishers.oidcpublisher.io': {
    needs:
      'the informer lists OidcPublishers (src/controller/controller.ts makeInformer, ClusterClient.listPublishers)',
    breaks: async (c) => {
      await waitForLog(c.op, 'watch of OidcPublishers failed; restarting', /Forbidden|403/);
      await eventually('/readyz to stay 503', async () => ((await c.op.readyz()) === 503 ? true : undefined));
      const seen = await neverReconciled(c);
      return `list refused (403), /readyz 503, ${seen}`;
    },
  },
  'ClusterRole oidc-publisher-manager: watch oidcpublishers.oidcpublisher.io': {
    needs: 'the informer watches OidcPublishers after listing (src/controller/informer.ts)',
    breaks: async (c) => {
      await waitForLog(c.op, 'watch of OidcPublishers failed; restarting', /Forbidden|403/);
      await eventually('/readyz to stay 503', async () => ((await c.op.readyz()) === 503 ? true : undefined));
      return 'watch refused (Forbidden), /readyz 503';
    },
  },
  'ClusterRole oidc-publisher-manager: patch oidcpublishers.oidcpublisher.io': {
    needs:
      'adding and removing the oidcpublisher.io/cleanup finalizer (ClusterClient.setFinalizers, a merge patch)',
    breaks: async (c) => {
      await waitForLog(c.op, 'reconcile failed', /update finalizers of oidcpublisher\/.*HTTP 403/);
      const seen = await neverReconciled(c);
      return `finalizer patch refused (HTTP 403), ${seen}`;
    },
  },
  'ClusterRole oidc-publisher-manager: patch oidcpublishers.oidcpublisher.io/status': {
    needs: 'writing status conditions (ClusterClient.patchStatus, a merge patch of the status subresource)',
    breaks: async (c) => {
      await waitForLog(c.op, 'reconcile failed', /patch status of oidcpublisher\/.*HTTP 403/);
      const p = await getPublisher(c.bed, c.name);
      assert.deepEqual(
        p.metadata.finalizers,
        ['oidcpublisher.io/cleanup'],
        'the finalizer patch still worked',
      );
      assert.ok(!hasStatus(p), `no status was written: ${JSON.stringify(p.status)}`);
      return 'status patch refused (HTTP 403); finalizer set, status empty';
    },
  },
  'ClusterRole oidc-publisher-manager: get /.well-known/openid-configuration': {
    needs:
      'reading the discovery document from its own API server (src/sources/apiserver.ts DISCOVERY_ENDPOINT)',
    breaks: async (c) => {
      const p = await eventually('SourceAvailable=False/SourceUnauthorized', async () => {
        const v = await getPublisher(c.bed, c.name);
        const s = condition(v, 'SourceAvailable');
        return s?.status === 'False' && s.reason === 'SourceUnauthorized' ? v : undefined;
      });
      const msg = condition(p, 'SourceAvailable')?.message ?? '';
      assert.match(msg, /\/\.well-known\/openid-configuration: HTTP 403/);
      assert.notEqual(condition(p, 'Ready')?.status, 'True');
      return `SourceAvailable=False/SourceUnauthorized: ${msg}`;
    },
  },
  'ClusterRole oidc-publisher-manager: get /openid/v1/jwks': {
    needs: 'reading the JWKS from its own API server (src/sources/apiserver.ts JWKS_ENDPOINT)',
    breaks: async (c) => {
      const p = await eventually('SourceAvailable=False/SourceUnauthorized', async () => {
        const v = await getPublisher(c.bed, c.name);
        const s = condition(v, 'SourceAvailable');
        return s?.status === 'False' && s.reason === 'SourceUnauthorized' ? v : undefined;
      });
      const msg = condition(p, 'SourceAvailable')?.message ?? '';
      assert.match(msg, /\/openid\/v1\/jwks: HTTP 403/);
      assert.notEqual(condition(p, 'Ready')?.status, 'True');
      return `SourceAvailable=False/SourceUnauthorized: ${msg}`;
    },
  },
  'Role oidc-publisher-system/oidc-publisher-secrets: get secrets': {
    needs:
      'reading the record MAC key, storage credentials and kubeconfig Secrets by name (ClusterClient.readOwnSecret, readSecret)',
    breaks: async (c) => {
      // The record MAC key is read first: without it nothing is published, storage is not reached.
      const msg = await integrityKeyUnavailable(c);
      assert.match(msg, /read Secret oidc-publisher-system\/oidc-publisher-integrity: HTTP 403/);
      return `Published=False/IntegrityKeyUnavailable: ${msg}`;
    },
  },
  'Role oidc-publisher-system/oidc-publisher-secrets: update secrets named oidc-publisher-integrity': {
    needs:
      'writing a key into the record MAC key Secret, installed empty, or putting back the key held (src/controller/integrity-key.ts)',
    prepare: emptyIntegritySecret,
    breaks: async (c) => {
      const msg = await integrityKeyUnavailable(c);
      assert.match(msg, /update Secret oidc-publisher-system\/oidc-publisher-integrity: HTTP 403/);
      return `Published=False/IntegrityKeyUnavailable: ${msg}`;
    },
  },
  'Role oidc-publisher-system/oidc-publisher-leader-election: create leases.coordination.k8s.io': {
    needs: 'creating the Lease on first start (LeaderElector, createNamespacedLease)',
    leaderElection: true,
    prepare: deleteLease,
    breaks: async (c) => {
      await waitForLog(c.op, 'lease update failed', /Forbidden|403/);
      assert.equal(await leaseHolder(c.bed), undefined, 'no Lease exists');
      assert.equal(metricSum(await c.op.metrics(), 'oidc_publisher_leader'), 0, 'never became leader');
      const seen = await neverReconciled(c);
      return `Lease create refused (403), never leader, ${seen}`;
    },
  },
  'Role oidc-publisher-system/oidc-publisher-leader-election: get leases.coordination.k8s.io named oidc-publisher':
    {
      needs: 'reading the Lease before every acquire or renew (LeaderElector, readNamespacedLease)',
      leaderElection: true,
      breaks: async (c) => {
        await waitForLog(c.op, 'lease update failed', /Forbidden|403/);
        assert.equal(metricSum(await c.op.metrics(), 'oidc_publisher_leader'), 0, 'never became leader');
        const seen = await neverReconciled(c);
        return `Lease read refused (403), never leader, ${seen}`;
      },
    },
  'Role oidc-publisher-system/oidc-publisher-leader-election: update leases.coordination.k8s.io named oidc-publisher':
    {
      needs: 'renewing, taking over and releasing the Lease (LeaderElector, replaceNamespacedLease)',
      leaderElection: true,
      prepare: deleteLease,
      breaks: async (c) => {
        // It creates the Lease (create is granted), leads, then cannot renew it and gives up leadership.
        await waitForLog(c.op, 'lease update failed', /Forbidden|403/);
        await waitForLog(c.op, 'lost the lease: could not renew it in time', /./);
        const code = await c.op.exited;
        assert.equal(code, 1, 'the operator exits 1 when it loses the Lease');
        return `Lease renewal refused (403), leadership lost after the renew deadline, exit ${code}`;
      },
    },
  'Role oidc-publisher-system/oidc-publisher-canary: create serviceaccounts/token named oidc-publisher-canary':
    {
      needs:
        'requesting the canary token of spec.verification.canary (src/controller/canary.ts, ClusterClient.createToken, a TokenRequest)',
      breaks: async (c) => {
        const p = await eventually('Verified=False/CanaryTokenForbidden', async () => {
          const v = await getPublisher(c.bed, c.name);
          const s = condition(v, 'Verified');
          return s?.status === 'False' && s.reason === 'CanaryTokenForbidden' ? v : undefined;
        });
        const msg = condition(p, 'Verified')?.message ?? '';
        assert.match(msg, /ServiceAccount oidc-publisher-system\/oidc-publisher-canary: HTTP 403/);
        assert.equal(condition(p, 'Published')?.status, 'True', 'the documents are still published');
        assert.equal(condition(p, 'Ready')?.reason, 'CanaryTokenForbidden');
        assert.equal(await c.op.readyz(), 200, 'the operator keeps running');
        return `Verified=False/CanaryTokenForbidden, documents published: ${msg}`;
      },
    },
  'Role default/oidc-publisher-events: create events.events.k8s.io': {
    needs:
      'recording Events about OidcPublishers in "default" (src/controller/event-recorder.ts EventRecorder.record)',
    breaks: async (c) => {
      await waitForReady(c.bed, c.name, 'True', 'Ready');
      await waitForLog(c.op, 'could not record event', /Forbidden|403/);
      assert.deepEqual(await eventsAbout(c.bed, c.name), [], 'no Events were recorded');
      return 'Ready, but every Event create refused (403) and none recorded';
    },
  },
};

describe('RBAC: least privilege against the real API server', () => {
  let bed: Bed;
  let kubeconfig: string;
  let rendered: RbacObject[];
  let grants: Grant[];
  const running = new Set<OperatorProcess>();
  let serial = 0;
  const useOwn = useBed(
    { gcs: false },
    {
      beforeStop: async () => {
        for (const op of running) await op.stop('SIGTERM');
      },
    },
  );

  /**
   * A publisher of its own Cache-Control, so its objects differ from what the bucket serves
   * already: every case must reach storage (and its credentials Secret) to publish.
   */
  function publisher(name: string): string {
    return JSON.stringify(
      samplePublisher(bed, {
        name,
        spec: {
          cacheControl: `public, max-age=${600 + serial}`,
          verification: { canary: { serviceAccountRef: { name: 'oidc-publisher-canary' } } },
        },
      }),
    );
  }

  async function applyRbac(objects: readonly RbacObject[]): Promise<void> {
    await applyYaml(bed, JSON.stringify({ apiVersion: 'v1', kind: 'List', items: objects }));
  }

  /**
   * Waits until the authorizer answers `expected` for every grant (RBAC changes reach it quickly,
   * not at once).
   */
  async function waitForGrants(expected: (g: Grant) => boolean): Promise<void> {
    await eventually(
      'the authorizer to reflect the applied RBAC',
      async () => {
        const answers = await Promise.all(grants.map((g) => allowed(bed, g)));
        const wrong = grants.filter((g, i) => answers[i] !== expected(g));
        if (wrong.length === 0) return true;
        throw new Error(`the authorizer differs for: ${wrong.map((g) => g.key).join('; ')}`);
      },
      15_000,
    );
  }

  async function runOperator(name: string, leaderElection: boolean): Promise<OperatorProcess> {
    const args = ['--oidcpublisher', name, '--leader-elect', leaderElection ? 'true' : 'false'];
    if (leaderElection) args.push(...ELECTION, '--pod-name', `rbac-${name}`);
    const op = await OperatorProcess.launch(bed, kubeconfig, args);
    running.add(op);
    return op;
  }

  async function stopOperator(op: OperatorProcess): Promise<number> {
    const code = await op.stop('SIGTERM');
    running.delete(op);
    return code;
  }

  async function removePublisher(name: string): Promise<void> {
    await bed.kubectl([
      'patch',
      'oidcpublisher',
      name,
      '--type=merge',
      '-p',
      '{"metadata":{"finalizers":null}}',
    ]);
    await bed.kubectl(['delete', 'oidcpublisher', name, '--wait=false']);
    // Every case publishes to the same prefix, and a publisher overwrites only objects it wrote:
    // the next case's publisher (another UID) starts from an empty prefix.
    const s3 = createS3Client(bed.state.s3, bed.ca);
    try {
      await s3.send(
        new DeleteObjectsCommand({
          Bucket: bed.state.s3.bucket,
          Delete: {
            Objects: ['openid/v1/jwks', '.well-known/openid-configuration'].map((k) => ({
              Key: `public/cluster-a/${k}`,
            })),
          },
        }),
      );
    } finally {
      s3.destroy();
    }
  }

  before(async () => {
    bed = useOwn();
    kubeconfig = await installOperator(bed);
    await createSecret(bed, 's3-writer', {
      AWS_ACCESS_KEY_ID: bed.state.s3.accessKeyId,
      AWS_SECRET_ACCESS_KEY: bed.state.s3.secretAccessKey,
    });
    await bed.kubectl(['delete', 'clusterrolebinding', DEFAULT_DISCOVERY_BINDING, '--ignore-not-found']);
    const text = await bed.kubectl(['kustomize', join(ROOT, 'config', 'rbac')]);
    rendered = parseAllDocuments(text).map((d) => d.toJS() as RbacObject);
    grants = rendered.filter(isRole).flatMap((r) => (r.rules ?? []).flatMap((rule) => atoms(r, rule)));
  });

  after(async () => {
    for (const op of running) await stopOperator(op);
  });

  it('has a case for every grant in config/rbac, and every case is a grant there', () => {
    const keys = grants.map((g) => g.key);
    assert.equal(new Set(keys).size, keys.length, `a grant is listed twice: ${keys.join('; ')}`);
    assert.deepEqual(
      [...keys].sort(),
      Object.keys(CASES).sort(),
      'config/rbac grants (actual) vs. the grants this suite knows an operator operation for (expected)',
    );
  });

  it('with the full RBAC, can-i allows every grant and the operator works: Lease, finalizer, status, Events', async (t) => {
    await waitForGrants(() => true);
    const answers = await pool(grants, 4, (g) => canI(bed, canIArgs(g)));
    assert.deepEqual(
      grants.filter((_, i) => !answers[i]).map((g) => g.key),
      [],
      'kubectl auth can-i says no to these grants',
    );
    await deleteLease(bed);
    const name = `rbac-${serial++}`;
    await applyYaml(bed, publisher(name));
    const op = await runOperator(name, true);
    try {
      const p = await waitForReady(bed, name, 'True', 'Ready');
      assert.deepEqual(p.metadata.finalizers, ['oidcpublisher.io/cleanup']);
      assert.match(
        condition(p, 'Verified')?.message ?? '',
        /a token the API server issued \(kid .*\) verifies/,
        'the canary token was requested and verified',
      );
      assert.equal(await leaseHolder(bed), `rbac-${name}`);
      assert.equal(await op.readyz(), 200);
      const secret = JSON.parse(
        await bed.kubectl(['get', 'secret', '-n', OPERATOR_NAMESPACE, INTEGRITY_SECRET, '-o', 'json']),
      ) as { data?: Record<string, string> };
      assert.equal(
        Buffer.from(secret.data?.['record-mac-key'] ?? '', 'base64').length,
        32,
        'the operator wrote a 32-byte key into its record MAC key Secret',
      );
      const events = await eventually('an Event about the publisher', async () => {
        const e = await eventsAbout(bed, name);
        return e.length > 0 ? e : undefined;
      });
      for (const msg of ['reconcile failed', 'lease update failed', 'could not record event']) {
        assert.deepEqual(
          op.logs().filter((l) => l.msg === msg),
          [],
          `no ${JSON.stringify(msg)} with the full RBAC`,
        );
      }
      t.diagnostic(`events: ${events.map((e) => `${e.type}/${e.reason}`).join(', ')}`);
    } finally {
      assert.equal(await stopOperator(op), 0, 'exits 0 on SIGTERM');
    }
    await removePublisher(name);
  });

  for (const [key, c] of Object.entries(CASES)) {
    it(`needs ${key}: for ${c.needs}`, async (t) => {
      const grant = grants.find((g) => g.key === key);
      assert.ok(grant, `config/rbac grants ${key}`);
      await applyRbac(without(rendered, grant));
      let op: OperatorProcess | undefined;
      const name = `rbac-${serial++}`;
      try {
        // Exactly this grant is gone; every other one is still there.
        await waitForGrants((g) => g.key !== key);
        assert.equal(
          await canI(bed, canIArgs(grant)),
          false,
          `kubectl auth can-i ${canIArgs(grant).join(' ')} --as=${SA_USER}`,
        );
        await c.prepare?.(bed);
        await applyYaml(bed, publisher(name));
        op = await runOperator(name, c.leaderElection ?? false);
        const seen = await c.breaks({ bed, op, name });
        t.diagnostic(seen);
      } catch (err) {
        const tail = op?.output.slice(-8).join('\n') ?? '';
        throw new Error(`${(err as Error).message}\noperator's last lines:\n${tail}`, { cause: err });
      } finally {
        if (op) await stopOperator(op);
        await applyRbac(rendered);
        await waitForGrants(() => true);
        await removePublisher(name);
      }
    });
  }

  describe('what the operator identity cannot do', () => {
    interface Check {
      args: string[];
      why: string;
    }
    const checks: Check[] = [];
    const deny = (why: string, ...args: string[]) => checks.push({ args, why });

    // Secrets: by name in its own namespace only.
    for (const ns of ['kube-system', 'default']) {
      deny('read Secrets in another namespace', 'get', 'secrets', '-n', ns);
      deny('read Secrets in another namespace', 'get', 'secrets/s3-writer', '-n', ns);
    }
    deny('list Secrets cluster-wide', 'list', 'secrets', '--all-namespaces');
    deny('list Secrets in its namespace', 'list', 'secrets', '-n', OPERATOR_NAMESPACE);
    deny('watch Secrets in its namespace', 'watch', 'secrets', '-n', OPERATOR_NAMESPACE);
    // The one Secret it writes is the record MAC key: update only, never create, patch or delete.
    for (const verb of ['update', 'patch', 'delete']) {
      deny(`${verb} other Secrets`, verb, 'secrets/s3-writer', '-n', OPERATOR_NAMESPACE);
    }
    for (const verb of ['patch', 'delete']) {
      deny(`${verb} the record MAC key`, verb, `secrets/${INTEGRITY_SECRET}`, '-n', OPERATOR_NAMESPACE);
    }
    // OidcPublishers: watch them, patch finalizers and status; nothing else.
    for (const verb of ['create', 'update', 'delete', 'deletecollection', 'get']) {
      deny('write (or GET) OidcPublishers', verb, 'oidcpublishers.oidcpublisher.io');
    }
    deny('update status', 'update', 'oidcpublishers.oidcpublisher.io', '--subresource=status');
    // The Lease: only its own, and never delete it.
    deny(
      'touch another Lease',
      'update',
      'leases.coordination.k8s.io/kube-scheduler',
      '-n',
      OPERATOR_NAMESPACE,
    );
    deny('touch another Lease', 'get', 'leases.coordination.k8s.io/other', '-n', OPERATOR_NAMESPACE);
    deny('list Leases', 'list', 'leases.coordination.k8s.io', '-n', OPERATOR_NAMESPACE);
    for (const verb of ['patch', 'delete']) {
      deny(
        'patch or delete its Lease',
        verb,
        `leases.coordination.k8s.io/${LEASE}`,
        '-n',
        OPERATOR_NAMESPACE,
      );
    }
    deny('create Leases elsewhere', 'create', 'leases.coordination.k8s.io', '-n', 'kube-system');
    deny('create Leases elsewhere', 'create', 'leases.coordination.k8s.io', '-n', 'default');
    // Events: create in "default" only, never read or change them.
    for (const ns of [OPERATOR_NAMESPACE, 'kube-system']) {
      deny('create Events outside "default"', 'create', 'events.events.k8s.io', '-n', ns);
    }
    for (const verb of ['update', 'patch', 'delete', 'list']) {
      deny('change or read Events', verb, 'events.events.k8s.io', '-n', 'default');
    }
    deny('create core Events', 'create', 'events', '-n', 'default');
    // Escalation paths.
    for (const ns of [OPERATOR_NAMESPACE, 'default', 'kube-system']) {
      deny('mint ServiceAccount tokens', 'create', 'serviceaccounts', '--subresource=token', '-n', ns);
      deny(
        'mint its own tokens',
        'create',
        `serviceaccounts/${OPERATOR_SA}`,
        '--subresource=token',
        '-n',
        ns,
      );
      deny(
        'mint tokens of a ServiceAccount',
        'create',
        'serviceaccounts/default',
        '--subresource=token',
        '-n',
        ns,
      );
      if (ns !== OPERATOR_NAMESPACE) {
        deny(
          'mint canary tokens outside its namespace',
          'create',
          'serviceaccounts/oidc-publisher-canary',
          '--subresource=token',
          '-n',
          ns,
        );
      }
      deny('exec into pods', 'create', 'pods', '--subresource=exec', '-n', ns);
    }
    // The canary ServiceAccount: tokens of it only; never read, change or bind it.
    for (const verb of ['get', 'update', 'patch', 'delete']) {
      deny(
        `${verb} the canary ServiceAccount`,
        verb,
        'serviceaccounts/oidc-publisher-canary',
        '-n',
        OPERATOR_NAMESPACE,
      );
    }
    deny('impersonate', 'impersonate', 'users');
    deny('impersonate', 'impersonate', 'serviceaccounts', '-n', 'kube-system');
    deny('escalate', 'escalate', 'clusterroles.rbac.authorization.k8s.io');
    deny('bind', 'bind', 'clusterroles.rbac.authorization.k8s.io');
    deny(
      'approve CSRs',
      'update',
      'certificatesigningrequests.certificates.k8s.io',
      '--subresource=approval',
    );
    // Writes to everything else, in its namespace, "default" and kube-system.
    const namespaced = [
      'configmaps',
      'pods',
      'services',
      'serviceaccounts',
      'secrets',
      'events',
      'deployments.apps',
      'daemonsets.apps',
      'roles.rbac.authorization.k8s.io',
      'rolebindings.rbac.authorization.k8s.io',
      'networkpolicies.networking.k8s.io',
    ];
    const clusterScoped = [
      'namespaces',
      'nodes',
      'clusterroles.rbac.authorization.k8s.io',
      'clusterrolebindings.rbac.authorization.k8s.io',
      'customresourcedefinitions.apiextensions.k8s.io',
      'mutatingwebhookconfigurations.admissionregistration.k8s.io',
      'validatingwebhookconfigurations.admissionregistration.k8s.io',
    ];
    const writes = ['create', 'update', 'patch', 'delete', 'deletecollection'];
    for (const verb of writes) {
      for (const r of namespaced) {
        for (const ns of [OPERATOR_NAMESPACE, 'default', 'kube-system']) {
          deny(`${verb} ${r}`, verb, r, '-n', ns);
        }
      }
      for (const r of clusterScoped) deny(`${verb} ${r}`, verb, r);
    }
    // Reads it has no use for.
    for (const r of ['configmaps', 'pods', 'serviceaccounts', 'deployments.apps']) {
      deny(`read ${r}`, 'list', r, '--all-namespaces');
      deny(`read ${r}`, 'get', r, '-n', OPERATOR_NAMESPACE);
    }
    deny('read ClusterRoles', 'list', 'clusterroles.rbac.authorization.k8s.io');

    it(`is refused all of ${checks.length} spot checks (kubectl auth can-i)`, async () => {
      await waitForGrants(() => true);
      const answers = await pool(checks, 6, (c) => canI(bed, c.args));
      const allowed = checks.filter((_, i) => answers[i]).map((c) => `${c.why}: ${c.args.join(' ')}`);
      assert.deepEqual(allowed, [], 'these should be refused');
    });

    it('holds nothing beyond its grants and what every authenticated user gets, in any namespace (kubectl auth can-i --list)', async () => {
      // What every authenticated identity may do, by the API server's defaults.
      const harmless = (r: ListedRule) =>
        (r.resource === '' && r.verbs.every((v) => v === 'get')) ||
        (/^self(subject(access|rules)?)?reviews\.(authorization|authentication)\.k8s\.io$/.test(r.resource) &&
          r.verbs.every((v) => v === 'create'));
      const ours = new Set([
        'leases.coordination.k8s.io [] create',
        'leases.coordination.k8s.io [oidc-publisher] get update',
        'secrets [] get',
        `secrets [${INTEGRITY_SECRET}] update`,
        'oidcpublishers.oidcpublisher.io [] list watch patch',
        'oidcpublishers.oidcpublisher.io/status [] patch',
        'events.events.k8s.io [] create',
        'serviceaccounts/token [oidc-publisher-canary] create',
      ]);
      const unexpected: string[] = [];
      for (const ns of [OPERATOR_NAMESPACE, 'default', 'kube-system']) {
        const text = await bed.kubectl(['auth', 'can-i', '--list', '-n', ns, `--as=${SA_USER}`]);
        for (const r of parseCanIList(text)) {
          if (harmless(r)) continue;
          const key = `${r.resource} [${r.names.join(' ')}] ${r.verbs.join(' ')}`;
          const expectedHere =
            ours.has(key) &&
            (!key.startsWith('leases') || ns === OPERATOR_NAMESPACE) &&
            (!key.startsWith('secrets') || ns === OPERATOR_NAMESPACE) &&
            (!key.startsWith('serviceaccounts') || ns === OPERATOR_NAMESPACE) &&
            (!key.startsWith('events') || ns === 'default');
          if (!expectedHere) unexpected.push(`-n ${ns}: ${key}`);
        }
      }
      assert.deepEqual(unexpected, [], 'permissions beyond the operator grants and the API server defaults');
    });
  });
});

interface ListedRule {
  resource: string;
  urls: string[];
  names: string[];
  verbs: string[];
}

/** The table `kubectl auth can-i --list` prints. */
function parseCanIList(text: string): ListedRule[] {
  const rows: ListedRule[] = [];
  for (const line of text.split('\n').slice(1)) {
    if (!line.trim()) continue;
    const m = line.match(/^(\S*)\s+\[([^\]]*)\]\s+\[([^\]]*)\]\s+\[([^\]]*)\]\s*$/);
    assert.ok(m, `unexpected line of kubectl auth can-i --list: ${JSON.stringify(line)}`);
    const list = (s: string | undefined) => (s ? s.split(' ').filter(Boolean) : []);
    rows.push({ resource: m[1] ?? '', urls: list(m[2]), names: list(m[3]), verbs: list(m[4]) });
  }
  return rows;
}

/**
 * The ClusterRoles of config/aggregate-roles (the chart renders the same; manifests.test.ts
 * compares them) aggregate into the built-in view, edit and admin ClusterRoles. Aggregation
 * is the kube-controller-manager's clusterrole-aggregation controller: the suite runs that
 * controller alone, against the bed's API server, then asks the API server as users bound
 * to the built-in roles.
 */
describe('RBAC: view, edit and admin users and OidcPublishers', () => {
  const useShared = useBed();
  let bed: Bed;
  let controller: ManagedProcess | undefined;
  const USERS = { view: 'oidc-test-viewer', edit: 'oidc-test-editor', admin: 'oidc-test-admin' } as const;

  /** `kubectl auth can-i` as a user: true for yes, false for no (exit status 1). */
  async function canI(user: string, args: readonly string[]): Promise<boolean> {
    try {
      return (await bed.kubectl(['auth', 'can-i', ...args, '--as', user])).trim() === 'yes';
    } catch (err) {
      const e = err as { stdout?: string; stderr?: string };
      if ((e.stdout ?? '').trim() === 'no') return false;
      throw new Error(`kubectl auth can-i ${args.join(' ')} as ${user}: ${e.stderr ?? String(err)}`);
    }
  }

  before(async () => {
    bed = useShared();
    await bed.kubectl(['apply', '-f', join(ROOT, 'crds')]);
    await bed.kubectl([
      'wait',
      '--for=condition=Established',
      '--timeout=60s',
      'crd/oidcpublishers.oidcpublisher.io',
    ]);
    await bed.kubectl(['apply', '-k', join(ROOT, 'config', 'aggregate-roles')]);
    for (const [role, user] of Object.entries(USERS)) {
      await bed.kubectl(['apply', '-f', '-'], {
        input: JSON.stringify({
          apiVersion: 'rbac.authorization.k8s.io/v1',
          kind: 'ClusterRoleBinding',
          metadata: { name: user },
          roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: role },
          subjects: [{ apiGroup: 'rbac.authorization.k8s.io', kind: 'User', name: user }],
        }),
      });
    }
    const logFile = join(bed.dir, 'kube-controller-manager-aggregation.log');
    controller = ManagedProcess.start({
      name: 'kube-controller-manager',
      command: ensureTools(['node']).kubeControllerManager,
      args: [
        `--kubeconfig=${bed.adminKubeconfig}`,
        '--controllers=clusterrole-aggregation',
        '--leader-elect=false',
        '--secure-port=0',
        '--v=0',
      ],
      logFile,
    });
    await eventually(
      'the built-in view ClusterRole aggregates oidc-publisher-view',
      async () => ((await canI(USERS.view, ['list', 'oidcpublishers.oidcpublisher.io'])) ? true : undefined),
      60_000,
    ).catch((err: unknown) => {
      throw new Error(`${(err as Error).message}\nkube-controller-manager log:\n${logTail(logFile)}`);
    });
  });

  after(async () => {
    await controller?.stop('SIGTERM');
    if (!bed) return;
    for (const user of Object.values(USERS)) {
      await bed.kubectl(['delete', 'clusterrolebinding', user, '--ignore-not-found']);
    }
  });

  it('view may get, list and watch OidcPublishers, and nothing more', async () => {
    const resource = 'oidcpublishers.oidcpublisher.io';
    for (const verb of ['get', 'list', 'watch']) {
      assert.equal(await canI(USERS.view, [verb, resource]), true, `view may ${verb} OidcPublishers`);
    }
    for (const verb of ['create', 'update', 'patch', 'delete', 'deletecollection']) {
      assert.equal(await canI(USERS.view, [verb, resource]), false, `view may not ${verb} OidcPublishers`);
    }
    // A real read, not only can-i.
    await bed.kubectl(['get', 'oidcpublishers', '--as', USERS.view]);
    await assert.rejects(
      bed.kubectl(['create', '--dry-run=server', '-f', '-', '--as', USERS.view], {
        input: JSON.stringify(samplePublisher(bed, { name: 'rbac-view-create' })),
      }),
      (err: unknown) => /forbidden/i.test((err as { stderr?: string }).stderr ?? ''),
      'view is refused creating an OidcPublisher',
    );
  });

  it('edit and admin may create, change and delete OidcPublishers', async () => {
    const resource = 'oidcpublishers.oidcpublisher.io';
    for (const user of [USERS.edit, USERS.admin]) {
      for (const verb of [
        'get',
        'list',
        'watch',
        'create',
        'update',
        'patch',
        'delete',
        'deletecollection',
      ]) {
        assert.equal(await canI(user, [verb, resource]), true, `${user} may ${verb} OidcPublishers`);
      }
      const out = await bed.kubectl(['create', '--dry-run=server', '-f', '-', '--as', user], {
        input: JSON.stringify(samplePublisher(bed, { name: 'rbac-edit-create' })),
      });
      assert.match(out, /created \(server dry run\)/, `${user} creates an OidcPublisher`);
    }
  });

  it('no view, edit or admin user may write status: it is the operator’s', async () => {
    for (const user of Object.values(USERS)) {
      for (const verb of ['update', 'patch']) {
        assert.equal(
          await canI(user, [verb, 'oidcpublishers.oidcpublisher.io', '--subresource=status']),
          false,
          `${user} may not ${verb} oidcpublishers/status`,
        );
      }
    }
  });
});

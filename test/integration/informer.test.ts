/**
 * The informer against the bed's real API server: list, then watches that the
 * server ends (short ones here) resumed from the last resourceVersion, and
 * bookmarks (the API server sends one about every minute) taken as where to
 * resume, without errors and without listing again; adds, updates and deletes
 * reported once each.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { OidcPublisher } from '../../src/api/types.ts';
import { Informer } from '../../src/controller/informer.ts';
import { loadKubeAccess, StaticAccess } from '../../src/kube/access.ts';
import { ClusterClient } from '../../src/kube/cluster-client.ts';
import { parseUntrustedKubeconfig } from '../../src/sources/kubeconfig.ts';
import type { Bed } from '../bed/bed.ts';
import { useBed } from '../bed/shared.ts';
import { applyYaml, eventually, installOperator } from '../e2e/harness.ts';

function publisher(name: string, prefix: string): string {
  return JSON.stringify({
    apiVersion: 'oidcpublisher.io/v1alpha1',
    kind: 'OidcPublisher',
    metadata: { name },
    spec: {
      issuerURL: 'https://issuer.example.com/cluster',
      storage: { s3: { bucket: 'issuer', region: 'us-east-1', prefix } },
    },
  });
}

describe('informer against the API server', () => {
  const useShared = useBed();
  let bed: Bed;
  let cluster: ClusterClient;
  let informer: Informer<OidcPublisher>;
  const seen: string[] = [];
  const errors: unknown[] = [];
  let lists = 0;
  const watches: { resourceVersion: string }[] = [];
  let synced = 0;
  let long: Informer<OidcPublisher>;
  let longLists = 0;
  const longWatches: string[] = [];
  const longErrors: unknown[] = [];
  const bookmarks: string[] = [];

  before(async () => {
    bed = useShared();
    await installOperator(bed);
    await applyYaml(bed, publisher('informer-a', 'informer/a'));
    cluster = new ClusterClient(await loadKubeAccess(bed.adminKubeconfig, {}));
    informer = new Informer<OidcPublisher>(
      {
        list: () => {
          lists += 1;
          return cluster.listPublishers();
        },
        watch: (query, onEvent, opts) => {
          watches.push({ resourceVersion: query.resourceVersion });
          return cluster.watchPublishers(query, onEvent, opts);
        },
      },
      {
        onAdd: (o) => seen.push(`add ${o.metadata.name}`),
        onUpdate: (o) => seen.push(`update ${o.metadata.name} ${o.spec.storage.s3?.prefix}`),
        onDelete: (o) => seen.push(`delete ${o.metadata.name}`),
        onError: (err) => errors.push(err),
        onSynced: () => {
          synced += 1;
        },
      },
      // Watches of 2 to 4 s: the server ends several during the test, with a bookmark before each end.
      { watchSeconds: 2 },
    );
    await informer.start();
    // A second one with long watches, which the API server keeps alive with bookmarks.
    long = new Informer<OidcPublisher>(
      {
        list: () => {
          longLists += 1;
          return cluster.listPublishers();
        },
        watch: (query, onEvent, opts) => {
          longWatches.push(query.resourceVersion);
          return cluster.watchPublishers(
            query,
            (e) => {
              const { type, object } = e as {
                type: string;
                object: { metadata: { resourceVersion: string } };
              };
              if (type === 'BOOKMARK') bookmarks.push(object.metadata.resourceVersion);
              onEvent(e);
            },
            opts,
          );
        },
      },
      {
        onAdd: () => undefined,
        onUpdate: () => undefined,
        onDelete: () => undefined,
        onError: (err) => longErrors.push(err),
      },
      { watchSeconds: 70 },
    );
    await long.start();
  });
  after(async () => {
    await informer?.stop();
    await long?.stop();
    cluster?.close();
  });

  it('lists what exists and reports it as added', () => {
    assert.equal(informer.synced, true);
    assert.ok(seen.includes('add informer-a'), `seen: ${seen.join('; ')}`);
    assert.equal(informer.get('informer-a')?.spec.storage.s3?.prefix, 'informer/a');
  });

  it('reports a create, an update and a delete once each, as they happen', async () => {
    await applyYaml(bed, publisher('informer-b', 'informer/b'));
    await eventually('informer-b added', async () => seen.includes('add informer-b') || undefined);
    await applyYaml(bed, publisher('informer-b', 'informer/b2'));
    await eventually(
      'informer-b updated',
      async () => seen.includes('update informer-b informer/b2') || undefined,
    );
    await bed.kubectl(['delete', 'oidcpublisher', 'informer-b', '--wait=false']);
    await eventually('informer-b deleted', async () => seen.includes('delete informer-b') || undefined);
    assert.equal(informer.get('informer-b'), undefined);
    for (const e of ['add informer-b', 'update informer-b informer/b2', 'delete informer-b']) {
      assert.equal(seen.filter((s) => s === e).length, 1, `${e} once; seen: ${seen.join('; ')}`);
    }
  });

  it('resumes watches the server ends, from where it was, without an error or a new list', async () => {
    const before = watches.length;
    await new Promise((r) => setTimeout(r, 9000));
    assert.ok(
      watches.length >= before + 2,
      `expected at least 2 more watches, got ${watches.length - before}`,
    );
    assert.deepEqual(errors, [], 'no watch error');
    assert.equal(lists, 1, 'listed once');
    assert.equal(synced, 1, 'synced once');
    for (const w of watches) assert.ok(w.resourceVersion, 'every watch starts from a resourceVersion');
    // A change after several resumed watches is still seen: nothing was skipped or replayed.
    await applyYaml(bed, publisher('informer-a', 'informer/a2'));
    await eventually(
      'informer-a updated',
      async () => seen.includes('update informer-a informer/a2') || undefined,
    );
    assert.equal(seen.filter((s) => s === 'add informer-a').length, 1, `seen: ${seen.join('; ')}`);
  });

  it('takes a bookmark as where to resume: no error, no new list', async () => {
    await eventually('a bookmark from the API server', async () => bookmarks[0], 90_000);
    await new Promise((r) => setTimeout(r, 500));
    assert.deepEqual(longErrors, [], 'no watch error after the bookmark');
    assert.equal(longLists, 1, 'listed once');
    assert.equal(long.synced, true);
    await applyYaml(bed, publisher('informer-c', 'informer/c'));
    await eventually('informer-c seen by the long watch', async () => long.get('informer-c'));
    assert.deepEqual(longWatches.length, 1, 'still the first watch');
  });

  it('backs off when the watch is refused while lists are allowed, instead of listing in a loop', async () => {
    // A ServiceAccount that may list OidcPublishers but not watch them.
    await applyYaml(
      bed,
      JSON.stringify({
        apiVersion: 'rbac.authorization.k8s.io/v1',
        kind: 'ClusterRole',
        metadata: { name: 'informer-list-only' },
        rules: [{ apiGroups: ['oidcpublisher.io'], resources: ['oidcpublishers'], verbs: ['list'] }],
      }),
    );
    await bed.serviceAccountKubeconfig('informer-check', 'list-only');
    await bed.kubectl([
      'create',
      'clusterrolebinding',
      'informer-list-only',
      '--clusterrole=informer-list-only',
      '--serviceaccount=informer-check:list-only',
    ]);
    const token = await bed.mintToken({ namespace: 'informer-check', serviceAccount: 'list-only' });
    const listOnly = new ClusterClient(
      new StaticAccess(parseUntrustedKubeconfig(bed.inlineKubeconfig(token))),
    );
    let listed = 0;
    const delays: number[] = [];
    let resynced = 0;
    const refused = new Informer<OidcPublisher>(
      {
        list: () => {
          listed += 1;
          return listOnly.listPublishers();
        },
        watch: (query, onEvent, opts) => listOnly.watchPublishers(query, onEvent, opts),
      },
      {
        onAdd: () => undefined,
        onUpdate: () => undefined,
        onDelete: () => undefined,
        onError: (_err, restartInMs) => delays.push(restartInMs),
        onSynced: (recovered) => {
          if (recovered) resynced += 1;
        },
      },
    );
    try {
      await refused.start();
      await new Promise((r) => setTimeout(r, 6000));
    } finally {
      await refused.stop();
      listOnly.close();
    }
    // Retries after 0.5, 1, 2 and 4 s: at most 4 lists in 6 s, not one every half second.
    assert.ok(listed >= 2 && listed <= 4, `listed ${listed} times in 6 s; retry delays ${delays.join(', ')}`);
    assert.deepEqual(delays.slice(0, 3), [500, 1000, 2000], 'the delays double');
    assert.equal(resynced, listed - 1, 'each relist after an error counts as a recovery');
  });
});

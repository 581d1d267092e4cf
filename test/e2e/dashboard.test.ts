/**
 * Every metric the Grafana dashboard (config/grafana/oidc-publisher.json) and the alerting rules
 * (config/prometheus/prometheus_rule.yaml) query is one the operator exports: the names are read
 * from a real scrape of /metrics of the operator publishing to the bed's MinIO, not from the source.
 */
import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import { stringify } from 'yaml';
import type { Bed } from '../bed/bed.ts';
import { useBed } from '../bed/shared.ts';
import { metricsOf, readDashboard, ruleExpressions } from '../unit/grafana-dashboard.ts';
import {
  applyYaml,
  createSecret,
  eventually,
  installOperator,
  OperatorProcess,
  samplePublisher,
  waitForReady,
} from './harness.ts';

const NAME = 'dashboard-issuer';

/** The sample names of an exposition (a histogram's _bucket, _sum and _count among them). */
function sampleNames(text: string): Set<string> {
  return new Set(
    text
      .split('\n')
      .filter((l) => l && !l.startsWith('#'))
      .map((l) => /^[a-zA-Z_:][a-zA-Z0-9_:]*/.exec(l)?.[0] ?? ''),
  );
}

describe('dashboard and alerts query metrics the operator exports (real scrape)', () => {
  let bed: Bed;
  let op: OperatorProcess | undefined;
  const useOwn = useBed(
    { gcs: false },
    {
      beforeStop: async () => {
        await op?.stop('SIGTERM');
      },
    },
  );
  let exported: Set<string>;

  before(async () => {
    bed = useOwn();
    const kubeconfig = await installOperator(bed);
    await createSecret(bed, 's3-writer', {
      AWS_ACCESS_KEY_ID: bed.state.s3.accessKeyId,
      AWS_SECRET_ACCESS_KEY: bed.state.s3.secretAccessKey,
    });
    op = await OperatorProcess.start(bed, kubeconfig);
    await applyYaml(
      bed,
      stringify(
        samplePublisher(bed, {
          name: NAME,
          spec: { issuerURL: bed.issuer },
          s3: { prefix: 'public/cluster-a' },
        }),
      ),
    );
    await waitForReady(bed, NAME, 'True');
    const running = op;
    // The series of a publisher appear with its first sync's status; the work queue's once it ran.
    exported = await eventually('the publisher and work queue series on /metrics', async () => {
      const names = sampleNames(await running.metrics());
      return names.has('oidc_publisher_keys_trusted') && names.has('workqueue_work_duration_seconds_bucket')
        ? names
        : undefined;
    });
  });

  it('every metric a dashboard panel queries is on /metrics', () => {
    const missing = readDashboard().panels.flatMap((p) =>
      (p.targets ?? []).flatMap((t) =>
        metricsOf(t.expr ?? '')
          .filter((m) => !exported.has(m))
          .map((m) => `${p.title}: ${m}`),
      ),
    );
    assert.deepEqual(missing, [], 'metrics the dashboard queries that the operator does not export');
  });

  it('every metric an alerting rule queries is on /metrics', () => {
    const missing = [...ruleExpressions()].flatMap(([alert, expr]) =>
      metricsOf(expr)
        .filter((m) => !exported.has(m))
        .map((m) => `${alert}: ${m}`),
    );
    assert.deepEqual(missing, [], 'metrics the alerts query that the operator does not export');
    assert.ok(exported.has('oidc_publisher_keys_trusted_at_timestamp_seconds'), 'the trustedAt gauge is set');
  });
});

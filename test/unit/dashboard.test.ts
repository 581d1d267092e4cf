/**
 * The Grafana dashboard (config/grafana/oidc-publisher.json, shipped by the chart): a structural
 * check in the spirit of grafana's dashboard-linter rules (template-datasource-rule,
 * panel-datasource-rule, target-rate-interval-rule, panel-title-description-rule,
 * panel-units-rule), since the linter's module is not available from the Go module proxy here;
 * the metrics it queries are checked against a real scrape in test/e2e/dashboard.test.ts.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import {
  CHART_DASHBOARD_FILE,
  DASHBOARD_FILE,
  type Dashboard,
  metricsOf,
  type Panel,
  readDashboard,
} from './grafana-dashboard.ts';
import { readDoc } from './markdown.ts';

// biome-ignore lint/suspicious/noTemplateCurlyInString: Grafana's variable, not a JavaScript template
const DATASOURCE = '${datasource}';

/** What the dashboard must show, each by a metric some panel queries. */
const REQUIRED: [string, string][] = [
  ['publishers by Ready', 'oidc_publisher_ready'],
  ['publishers by KeysTrusted', 'oidc_publisher_keys_trusted'],
  ['time since the last successful sync', 'oidc_publisher_last_success_timestamp_seconds'],
  ['syncs by result', 'oidc_publisher_reconcile_total'],
  ['API errors by code', 'rest_client_requests_total'],
  ['storage write latency', 'oidc_publisher_publish_duration_seconds_bucket'],
  ['API request latency', 'rest_client_request_duration_seconds_bucket'],
  ['work queue depth', 'workqueue_depth'],
  ['work queue latency', 'workqueue_queue_duration_seconds_bucket'],
  ['process memory', 'process_resident_memory_bytes'],
];

/** Problems of the dashboard, each naming the panel and the rule it breaks; empty when none. */
export function lint(d: Dashboard): string[] {
  const problems: string[] = [];
  if (!d.uid || !/^[a-zA-Z0-9_-]{1,40}$/.test(d.uid))
    problems.push(`uid ${String(d.uid)}: 1-40 of [a-zA-Z0-9_-]`);
  if (!d.title) problems.push('no title');
  if (typeof d.schemaVersion !== 'number') problems.push('no schemaVersion');
  const ds = d.templating.list.find((v) => v.name === 'datasource');
  if (ds?.type !== 'datasource' || ds.query !== 'prometheus')
    problems.push('template-datasource-rule: a variable "datasource" of type datasource, query prometheus');
  for (const v of d.templating.list.filter((x) => x.type === 'query'))
    if (v.datasource?.uid !== DATASOURCE)
      problems.push(`variable ${v.name}: datasource is not ${DATASOURCE}`);
  const ids = new Set<number>();
  const cells = new Map<string, string>();
  for (const p of d.panels) {
    const name = `panel ${JSON.stringify(p.title)}`;
    if (p.id === undefined || ids.has(p.id)) problems.push(`${name}: id missing or not unique`);
    else ids.add(p.id);
    if (!p.title || !p.description) problems.push(`${name}: panel-title-description-rule`);
    if (p.datasource?.uid !== DATASOURCE) problems.push(`${name}: panel-datasource-rule (${DATASOURCE})`);
    if (!p.fieldConfig?.defaults?.unit) problems.push(`${name}: panel-units-rule`);
    problems.push(...gridProblems(p, name, cells));
    const targets = p.targets ?? [];
    if (targets.length === 0) problems.push(`${name}: no query`);
    const refIds = new Set<string>();
    for (const t of targets) {
      const expr = t.expr ?? '';
      if (!expr) problems.push(`${name}: a target without expr`);
      if (!t.refId || refIds.has(t.refId)) problems.push(`${name}: refId missing or not unique`);
      refIds.add(t.refId ?? '');
      if (t.datasource?.uid !== DATASOURCE) problems.push(`${name}: target ${t.refId} datasource`);
      for (const m of expr.matchAll(/\b(?:rate|irate|increase)\([^[]*\[([^\]]+)\]/g))
        if (m[1] !== '$__rate_interval') problems.push(`${name}: target-rate-interval-rule ([${m[1]}])`);
      // Every selector of the operator's metrics is scoped to the chosen namespace.
      for (const metric of metricsOf(expr)) {
        const selectors = [...expr.matchAll(new RegExp(`\\b${metric}(\\{[^}]*\\})?`, 'g'))];
        for (const s of selectors)
          if (!s[1]?.includes('namespace=~"$namespace"'))
            problems.push(`${name}: ${metric} without namespace=~"$namespace"`);
      }
    }
  }
  return problems;
}

function gridProblems(p: Panel, name: string, cells: Map<string, string>): string[] {
  const g = p.gridPos;
  if (!g) return [`${name}: no gridPos`];
  if (g.x < 0 || g.w < 1 || g.x + g.w > 24 || g.h < 1) return [`${name}: gridPos outside the 24 columns`];
  const problems: string[] = [];
  for (let x = g.x; x < g.x + g.w; x++)
    for (let y = g.y; y < g.y + g.h; y++) {
      const other = cells.get(`${x},${y}`);
      if (other && !problems.length) problems.push(`${name}: overlaps ${other}`);
      cells.set(`${x},${y}`, name);
    }
  return problems;
}

describe('Grafana dashboard (config/grafana/oidc-publisher.json)', () => {
  const d = readDashboard();

  it('is the one the chart ships', () => {
    assert.equal(
      readFileSync(CHART_DASHBOARD_FILE, 'utf8'),
      readFileSync(DASHBOARD_FILE, 'utf8'),
      'charts/oidc-publisher/dashboards/oidc-publisher.json is a copy of config/grafana/oidc-publisher.json',
    );
  });

  it('passes the structural rules: datasource variable, titles, descriptions, units, rate intervals, layout', () => {
    assert.deepEqual(lint(d), []);
  });

  it('the rules catch what they check', () => {
    const broken = structuredClone(d);
    const first = broken.panels[0] as Panel;
    delete first.description;
    first.datasource = { type: 'prometheus', uid: 'prom' };
    (broken.panels[1] as Panel).gridPos = { ...(first.gridPos ?? { h: 1, w: 1, x: 0, y: 0 }) };
    const t = (broken.panels[4] as Panel).targets?.[0];
    if (t) t.expr = 'sum(rate(oidc_publisher_reconcile_total[5m]))';
    const problems = lint(broken).join('\n');
    for (const expected of [
      /panel-title-description-rule/,
      /panel-datasource-rule/,
      /overlaps/,
      /target-rate-interval-rule \(\[5m\]\)/,
      /oidc_publisher_reconcile_total without namespace/,
    ])
      assert.match(problems, expected);
  });

  it('shows what an operator of oidc-publisher needs', () => {
    const queried = new Set(
      d.panels.flatMap((p) => (p.targets ?? []).flatMap((t) => metricsOf(t.expr ?? ''))),
    );
    for (const [what, metric] of REQUIRED)
      assert.ok(queried.has(metric), `${what}: a panel queries ${metric}`);
  });

  it('every panel is described in docs/troubleshooting.md', () => {
    const doc = readDoc('docs/troubleshooting.md');
    for (const p of d.panels)
      assert.ok(doc.includes(`| ${p.title} |`), `docs/troubleshooting.md has a row for the panel ${p.title}`);
  });
});

/**
 * The alerting rules as Prometheus evaluates them, by Prometheus's own promtool of a pinned
 * release (built from source into the tool cache on first use):
 *
 * - the rules of config/prometheus/prometheus_rule.yaml and of the chart's PrometheusRule
 *   (helm template with prometheusRule.enabled, defaults) pass `promtool check rules`;
 * - both pass the unit tests of test/prometheus/alerts.test.yaml (`promtool test rules`), in which
 *   each alert fires on the series that should fire it and not on a healthy series;
 * - those tests can fail: every alert has a case that expects it and one that expects nothing,
 *   and promtool refuses the tests when one alert's expression is made to never fire, or to
 *   always fire.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { parse, parseAllDocuments, stringify } from 'yaml';
import { ensureTools, type ToolPaths } from '../bed/tools.ts';

const ROOT = join(import.meta.dirname, '..', '..');
const TESTS = join(ROOT, 'test', 'prometheus', 'alerts.test.yaml');
const NAMESPACE = 'oidc-publisher-system';
/** Building promtool the first time takes minutes; the test waits for it. */
const BUILD_TIMEOUT_MS = 30 * 60_000;

interface Rule {
  alert?: string;
  expr: string;
}
interface RuleGroups {
  groups: { name: string; rules: Rule[] }[];
}
interface RuleTests {
  tests: { name: string; alert_rule_test?: { alertname: string; exp_alerts?: unknown[] }[] }[];
}

function specOf(docs: readonly unknown[], what: string): RuleGroups {
  const rules = docs.filter((d) => (d as { kind?: string } | null)?.kind === 'PrometheusRule');
  assert.equal(rules.length, 1, `${what}: one PrometheusRule`);
  return (rules[0] as { spec: RuleGroups }).spec;
}

function alertsOf(spec: RuleGroups): string[] {
  return spec.groups.flatMap((g) => g.rules.flatMap((r) => (r.alert ? [r.alert] : [])));
}

describe('alerting rules (promtool of a pinned Prometheus)', { timeout: BUILD_TIMEOUT_MS }, () => {
  let tools: ToolPaths;
  let dir: string;
  let configRules: RuleGroups;
  let chartRules: RuleGroups;

  /** Runs promtool in the scratch directory; returns its exit status and output. */
  function promtool(args: readonly string[]): { status: number | null; output: string } {
    const r = spawnSync(tools.promtool, args, { cwd: dir, encoding: 'utf8', timeout: 120_000 });
    return { status: r.status, output: `${r.stdout}${r.stderr}` };
  }

  /** `promtool test rules` of the alert tests against `rules` (written as rules.yaml beside them). */
  function testRules(rules: RuleGroups): { status: number | null; output: string } {
    writeFileSync(join(dir, 'rules.yaml'), stringify(rules));
    return promtool(['test', 'rules', 'alerts.test.yaml']);
  }

  before(() => {
    tools = ensureTools(['promtool', 'helm']);
    dir = mkdtempSync(join(tmpdir(), 'oidc-promtool-'));
    copyFileSync(TESTS, join(dir, 'alerts.test.yaml'));
    configRules = specOf(
      [parse(readFileSync(join(ROOT, 'config', 'prometheus', 'prometheus_rule.yaml'), 'utf8'))],
      'config/prometheus',
    );
    const helmHome = join(dir, 'helm');
    const rendered = spawnSync(
      tools.helm,
      [
        'template',
        'oidc-publisher',
        join(ROOT, 'charts', 'oidc-publisher'),
        '--namespace',
        NAMESPACE,
        '--set',
        'prometheusRule.enabled=true',
        '--show-only',
        'templates/prometheusrule.yaml',
      ],
      {
        encoding: 'utf8',
        env: {
          PATH: process.env.PATH ?? '',
          HOME: helmHome,
          HELM_CACHE_HOME: join(helmHome, 'cache'),
          HELM_CONFIG_HOME: join(helmHome, 'config'),
          HELM_DATA_HOME: join(helmHome, 'data'),
        },
      },
    );
    assert.equal(rendered.status, 0, `helm template failed: ${rendered.stderr}`);
    chartRules = specOf(
      parseAllDocuments(rendered.stdout).map((d) => d.toJS()),
      'the chart',
    );
  });

  after(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  for (const [what, rules] of [
    ['config/prometheus', () => configRules],
    ['the chart (prometheusRule.enabled)', () => chartRules],
  ] as const) {
    it(`${what}: promtool check rules accepts the rules`, () => {
      writeFileSync(join(dir, 'rules.yaml'), stringify(rules()));
      const r = promtool(['check', 'rules', 'rules.yaml']);
      assert.equal(r.status, 0, `promtool check rules:\n${r.output}`);
      assert.match(r.output, new RegExp(`SUCCESS: ${alertsOf(rules()).length} rules found`));
    });

    it(`${what}: every alert passes its unit tests (promtool test rules)`, () => {
      const r = testRules(rules());
      assert.equal(r.status, 0, `promtool test rules:\n${r.output}`);
      assert.match(r.output, /SUCCESS/);
    });
  }

  it('every alert has a test that expects it to fire and one that expects it not to', () => {
    const tests = parse(readFileSync(TESTS, 'utf8')) as RuleTests;
    const cases = tests.tests.flatMap((t) => t.alert_rule_test ?? []);
    for (const alert of alertsOf(configRules)) {
      const of = cases.filter((c) => c.alertname === alert);
      assert.ok(
        of.some((c) => (c.exp_alerts ?? []).length > 0),
        `${alert}: a case where it fires`,
      );
      assert.ok(
        of.some((c) => (c.exp_alerts ?? []).length === 0),
        `${alert}: a case where it does not`,
      );
    }
  });

  it('the tests fail when one alert never fires or always fires', () => {
    for (const alert of alertsOf(configRules)) {
      for (const [how, expr] of [
        ['never fires', 'vector(1) == 0'],
        ['always fires', 'vector(1)'],
      ] as const) {
        const mutated: RuleGroups = {
          groups: configRules.groups.map((g) => ({
            ...g,
            rules: g.rules.map((r) => (r.alert === alert ? { ...r, expr } : r)),
          })),
        };
        const r = testRules(mutated);
        assert.notEqual(r.status, 0, `${alert} ${how}: promtool test rules should fail, got:\n${r.output}`);
        assert.match(r.output, new RegExp(`alertname: ${alert}`), `${alert} ${how}: promtool names it`);
      }
    }
  });
});

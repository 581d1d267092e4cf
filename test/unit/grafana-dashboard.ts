/**
 * The Grafana dashboard of config/grafana/oidc-publisher.json, read as typed values, and the
 * metric names its queries (and the alerting rules') use.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';

export const ROOT = join(import.meta.dirname, '..', '..');
export const DASHBOARD_FILE = join(ROOT, 'config', 'grafana', 'oidc-publisher.json');
export const CHART_DASHBOARD_FILE = join(
  ROOT,
  'charts',
  'oidc-publisher',
  'dashboards',
  'oidc-publisher.json',
);

export interface Datasource {
  type?: string;
  uid?: string;
}
export interface Target {
  refId?: string;
  expr?: string;
  legendFormat?: string;
  datasource?: Datasource;
}
export interface Panel {
  id?: number;
  type?: string;
  title?: string;
  description?: string;
  datasource?: Datasource;
  gridPos?: { h: number; w: number; x: number; y: number };
  fieldConfig?: { defaults?: { unit?: string } };
  targets?: Target[];
}
export interface Variable {
  name: string;
  type: string;
  query?: unknown;
  datasource?: Datasource;
}
export interface Dashboard {
  uid?: string;
  title?: string;
  schemaVersion?: number;
  panels: Panel[];
  templating: { list: Variable[] };
}

export function readDashboard(file = DASHBOARD_FILE): Dashboard {
  return JSON.parse(readFileSync(file, 'utf8')) as Dashboard;
}

/** The metrics of this operator's families a PromQL expression selects (Grafana variables and all). */
export function metricsOf(expr: string): string[] {
  const names = expr.match(/\b(?:oidc_publisher|workqueue|rest_client|process|nodejs)_[a-z0-9_]+\b/g) ?? [];
  return [...new Set(names)];
}

/** The expressions of the alerting rules of config/prometheus/prometheus_rule.yaml, by alert. */
export function ruleExpressions(): Map<string, string> {
  const rule = parse(readFileSync(join(ROOT, 'config', 'prometheus', 'prometheus_rule.yaml'), 'utf8')) as {
    spec: { groups: { rules: { alert?: string; expr: string }[] }[] };
  };
  return new Map(
    rule.spec.groups.flatMap((g) =>
      g.rules.map((r) => [r.alert ?? '(recording)', r.expr] as [string, string]),
    ),
  );
}

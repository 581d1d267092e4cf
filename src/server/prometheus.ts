/**
 * Counters, gauges and histograms in the Prometheus text format (0.0.4): the
 * little of a metrics library the operator uses. prom-client would bring
 * `cluster`, `zlib` and a quantile library into every process, about 10 MB
 * of memory for nothing the operator needs.
 */

type Labels<L extends string> = Partial<Record<L, string>>;

function escapeHelp(s: string): string {
  return s.replaceAll('\\', '\\\\').replaceAll('\n', '\\n');
}

function escapeLabel(s: string): string {
  return s.replaceAll('\\', '\\\\').replaceAll('\n', '\\n').replaceAll('"', '\\"');
}

function formatValue(v: number): string {
  if (Number.isNaN(v)) return 'NaN';
  if (v === Number.POSITIVE_INFINITY) return '+Inf';
  if (v === Number.NEGATIVE_INFINITY) return '-Inf';
  return String(v);
}

function formatLabels(pairs: readonly (readonly [string, string])[]): string {
  return pairs.length ? `{${pairs.map(([k, v]) => `${k}="${escapeLabel(v)}"`).join(',')}}` : '';
}

interface Metric {
  readonly name: string;
  render(): string;
}

abstract class Series<L extends string, V> implements Metric {
  readonly name: string;
  readonly #help: string;
  readonly #type: string;
  protected readonly labelNames: readonly L[];
  protected readonly series = new Map<string, { labels: (readonly [string, string])[]; value: V }>();

  constructor(type: string, opts: { name: string; help: string; labelNames?: readonly L[] }) {
    this.name = opts.name;
    this.#help = opts.help;
    this.#type = type;
    this.labelNames = opts.labelNames ?? [];
  }

  protected entry(labels: Labels<L>, init: () => V): { value: V } {
    const pairs = this.labelNames.map((n) => [n, labels[n] ?? ''] as const);
    for (const key of Object.keys(labels)) {
      if (!this.labelNames.includes(key as L)) throw new Error(`${this.name}: unknown label ${key}`);
    }
    const key = JSON.stringify(pairs.map(([, v]) => v));
    let e = this.series.get(key);
    if (!e) {
      e = { labels: pairs, value: init() };
      this.series.set(key, e);
    }
    return e;
  }

  /** Drops the series with these labels. */
  remove(labels: Labels<L>): void {
    this.series.delete(JSON.stringify(this.labelNames.map((n) => labels[n] ?? '')));
  }

  protected abstract lines(labels: (readonly [string, string])[], value: V): string[];

  render(): string {
    const out = [`# HELP ${this.name} ${escapeHelp(this.#help)}`, `# TYPE ${this.name} ${this.#type}`];
    for (const { labels, value } of this.series.values()) out.push(...this.lines(labels, value));
    return `${out.join('\n')}\n`;
  }
}

export class Counter<L extends string = never> extends Series<L, number> {
  constructor(opts: { name: string; help: string; labelNames?: readonly L[] }) {
    super('counter', opts);
    // A counter without labels exists from the start at 0, as prom-client shows it.
    if (this.labelNames.length === 0) this.entry({}, () => 0);
  }

  inc(labels: Labels<L> = {}, by = 1): void {
    if (!(by >= 0)) throw new Error(`${this.name}: a counter only goes up`);
    const e = this.entry(labels, () => 0);
    e.value += by;
  }

  protected lines(labels: (readonly [string, string])[], value: number): string[] {
    return [`${this.name}${formatLabels(labels)} ${formatValue(value)}`];
  }
}

export class Gauge<L extends string = never> extends Series<L, number> {
  constructor(opts: { name: string; help: string; labelNames?: readonly L[] }) {
    super('gauge', opts);
    if (this.labelNames.length === 0) this.entry({}, () => 0);
  }

  /** `set(value)` without labels, or `set(labels, value)`. */
  set(labelsOrValue: Labels<L> | number, value?: number): void {
    const [labels, v] = typeof labelsOrValue === 'number' ? [{}, labelsOrValue] : [labelsOrValue, value ?? 0];
    this.entry(labels, () => 0).value = v;
  }

  protected lines(labels: (readonly [string, string])[], value: number): string[] {
    return [`${this.name}${formatLabels(labels)} ${formatValue(value)}`];
  }
}

interface Buckets {
  counts: number[];
  sum: number;
  count: number;
}

export class Histogram<L extends string = never> extends Series<L, Buckets> {
  readonly #buckets: readonly number[];

  constructor(opts: { name: string; help: string; buckets: readonly number[]; labelNames?: readonly L[] }) {
    super('histogram', opts);
    this.#buckets = [...opts.buckets].sort((a, b) => a - b);
    if (this.labelNames.length === 0) this.entry({}, () => this.#empty());
  }

  #empty(): Buckets {
    return { counts: this.#buckets.map(() => 0), sum: 0, count: 0 };
  }

  observe(labelsOrValue: Labels<L> | number, value?: number): void {
    const [labels, v] = typeof labelsOrValue === 'number' ? [{}, labelsOrValue] : [labelsOrValue, value ?? 0];
    const b = this.entry(labels, () => this.#empty()).value;
    this.#buckets.forEach((le, i) => {
      if (v <= le) b.counts[i] = (b.counts[i] ?? 0) + 1;
    });
    b.sum += v;
    b.count += 1;
  }

  protected lines(labels: (readonly [string, string])[], b: Buckets): string[] {
    const out = this.#buckets.map(
      (le, i) => `${this.name}_bucket${formatLabels([...labels, ['le', formatValue(le)]])} ${b.counts[i]}`,
    );
    out.push(`${this.name}_bucket${formatLabels([...labels, ['le', '+Inf']])} ${b.count}`);
    out.push(`${this.name}_sum${formatLabels(labels)} ${formatValue(b.sum)}`);
    out.push(`${this.name}_count${formatLabels(labels)} ${b.count}`);
    return out;
  }
}

/** The metrics one /metrics endpoint shows. */
export class Registry {
  readonly contentType = 'text/plain; version=0.0.4; charset=utf-8';
  readonly #metrics: Metric[] = [];

  register<M extends Metric>(metric: M): M {
    if (this.#metrics.some((m) => m.name === metric.name)) throw new Error(`${metric.name} registered twice`);
    this.#metrics.push(metric);
    return metric;
  }

  metrics(): string {
    return this.#metrics.map((m) => m.render()).join('');
  }
}

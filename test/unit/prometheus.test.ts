import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Counter, Gauge, Histogram, Registry } from '../../src/server/prometheus.ts';

describe('Prometheus text format', () => {
  it('renders a labelled counter with escaped help and label values', () => {
    const c = new Counter({ name: 'x_total', help: 'a\\b\nc', labelNames: ['who'] });
    c.inc({ who: 'say "hi"\n' });
    c.inc({ who: 'say "hi"\n' }, 2);
    c.inc({ who: 'plain' });
    assert.equal(
      c.render(),
      '# HELP x_total a\\\\b\\nc\n# TYPE x_total counter\nx_total{who="say \\"hi\\"\\n"} 3\nx_total{who="plain"} 1\n',
    );
  });

  it('shows an unlabelled counter and gauge at 0 before any change, and none of a labelled one', () => {
    const r = new Registry();
    r.register(new Counter({ name: 'a_total', help: 'h' }));
    r.register(new Gauge({ name: 'g', help: 'h' }));
    r.register(new Gauge({ name: 'l', help: 'h', labelNames: ['p'] }));
    assert.equal(
      r.metrics(),
      '# HELP a_total h\n# TYPE a_total counter\na_total 0\n# HELP g h\n# TYPE g gauge\ng 0\n# HELP l h\n# TYPE l gauge\n',
    );
  });

  it('sets gauges with and without labels, and removes a series', () => {
    const g = new Gauge({ name: 'g', help: 'h', labelNames: ['p'] });
    g.set({ p: 'a' }, 1.5);
    g.set({ p: 'b' }, 2);
    g.remove({ p: 'a' });
    assert.match(g.render(), /^g\{p="b"\} 2$/m);
    assert.doesNotMatch(g.render(), /p="a"/);
    const plain = new Gauge({ name: 'p', help: 'h' });
    plain.set(7);
    assert.match(plain.render(), /^p 7$/m);
  });

  it('renders cumulative histogram buckets, +Inf, sum and count', () => {
    const h = new Histogram({ name: 'd_seconds', help: 'h', buckets: [1, 0.1] });
    for (const v of [0.05, 0.5, 2]) h.observe(v);
    assert.equal(
      h.render(),
      [
        '# HELP d_seconds h',
        '# TYPE d_seconds histogram',
        'd_seconds_bucket{le="0.1"} 1',
        'd_seconds_bucket{le="1"} 2',
        'd_seconds_bucket{le="+Inf"} 3',
        'd_seconds_sum 2.55',
        'd_seconds_count 3',
        '',
      ].join('\n'),
    );
  });

  it('refuses unknown labels, a counter going down, and a name registered twice', () => {
    const c = new Counter({ name: 'c_total', help: 'h', labelNames: ['a'] });
    assert.throws(() => c.inc({ b: 'x' } as never), /unknown label b/);
    assert.throws(() => c.inc({ a: 'x' }, -1), /only goes up/);
    const r = new Registry();
    r.register(c);
    assert.throws(() => r.register(new Counter({ name: 'c_total', help: 'h' })), /registered twice/);
  });
});

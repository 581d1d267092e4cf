import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { formatDuration, parseDuration } from '../../src/core/duration.ts';

describe('parseDuration', () => {
  const valid: { name: string; input: string; expected: number }[] = [
    { name: 'parses seconds', input: '10s', expected: 10_000 },
    { name: 'parses minutes', input: '1m', expected: 60_000 },
    { name: 'parses hours', input: '24h', expected: 86_400_000 },
    { name: 'parses milliseconds', input: '250ms', expected: 250 },
    { name: 'parses zero', input: '0s', expected: 0 },
    { name: 'adds up several units', input: '1h2m3s4ms', expected: 3_723_004 },
    { name: 'adds up minutes and seconds', input: '1m30s', expected: 90_000 },
    { name: 'parses fractions', input: '1.5h', expected: 5_400_000 },
    { name: 'rounds to whole milliseconds', input: '1.0004s', expected: 1000 },
    { name: 'accepts a unit repeated, as Go does', input: '1s1s', expected: 2000 },
  ];
  for (const { name, input, expected } of valid) {
    it(`${name} (${JSON.stringify(input)})`, () => {
      const got = parseDuration(input);
      assert.equal(got, expected, `expected ${expected} ms for ${input}, got ${got}`);
    });
  }

  const invalid: { name: string; input: string }[] = [
    { name: 'refuses the empty string', input: '' },
    { name: 'refuses a number without unit', input: '10' },
    { name: 'refuses a unit without number', input: 's' },
    { name: 'refuses a negative duration', input: '-1s' },
    { name: 'refuses days', input: '1d' },
    { name: 'refuses spaces', input: '1 s' },
    { name: 'refuses leading space', input: ' 1s' },
    { name: 'refuses trailing space', input: '1s ' },
    { name: 'refuses an upper-case unit', input: '1S' },
    { name: 'refuses exponent notation', input: '1e3s' },
    { name: 'refuses a trailing unit without number', input: '10sm' },
    { name: 'refuses a fraction without leading digit', input: '.5s' },
    { name: 'refuses microseconds', input: '5us' },
  ];
  for (const { name, input } of invalid) {
    it(`${name} (${JSON.stringify(input)})`, () => {
      const got = parseDuration(input);
      assert.equal(got, undefined, `expected undefined for ${JSON.stringify(input)}, got ${got}`);
    });
  }
});

describe('formatDuration', () => {
  const cases: { name: string; input: number; expected: string }[] = [
    { name: 'writes whole hours in h', input: 7_200_000, expected: '2h' },
    { name: 'writes whole minutes in m', input: 90 * 60_000, expected: '90m' },
    { name: 'writes whole seconds in s', input: 90_000, expected: '90s' },
    { name: 'writes the rest in ms', input: 1500, expected: '1500ms' },
  ];
  for (const { name, input, expected } of cases) {
    it(name, () => {
      const got = formatDuration(input);
      assert.equal(got, expected, `expected ${expected} for ${input} ms, got ${got}`);
    });
  }

  it('is read back by parseDuration as the same number of milliseconds (property)', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 10 * 86_400_000 }), (ms) => {
        const text = formatDuration(ms);
        assert.equal(parseDuration(text), ms, `expected ${ms} back from ${text}`);
      }),
    );
  });
});

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Condition } from '../../src/api/types.ts';
import { type ConditionInput, findCondition, mergeConditions } from '../../src/core/conditions.ts';

const T0 = new Date('2025-03-04T05:06:07.890Z');
const T1 = new Date('2025-03-04T06:00:00.123Z');
const T0_STAMP = '2025-03-04T05:06:07Z';
const T1_STAMP = '2025-03-04T06:00:00Z';

function input(type: string, status: ConditionInput['status'], reason = 'R', message = 'm'): ConditionInput {
  return { type, status, reason, message };
}

describe('mergeConditions', () => {
  it('stamps new conditions with now, to the second, and the generation', () => {
    const got = mergeConditions(undefined, [input('Ready', 'True', 'Ready', 'ok')], 3, T0);
    const expected: Condition[] = [
      {
        type: 'Ready',
        status: 'True',
        observedGeneration: 3,
        lastTransitionTime: T0_STAMP,
        reason: 'Ready',
        message: 'ok',
      },
    ];
    assert.deepEqual(got, expected, `expected ${JSON.stringify(expected)}, got ${JSON.stringify(got)}`);
  });

  const transitions: {
    name: string;
    before: ConditionInput['status'];
    after: ConditionInput['status'];
    expected: string;
  }[] = [
    {
      name: 'keeps lastTransitionTime when True stays True',
      before: 'True',
      after: 'True',
      expected: T0_STAMP,
    },
    {
      name: 'keeps lastTransitionTime when False stays False',
      before: 'False',
      after: 'False',
      expected: T0_STAMP,
    },
    {
      name: 'keeps lastTransitionTime when Unknown stays Unknown',
      before: 'Unknown',
      after: 'Unknown',
      expected: T0_STAMP,
    },
    {
      name: 'moves lastTransitionTime when True becomes False',
      before: 'True',
      after: 'False',
      expected: T1_STAMP,
    },
    {
      name: 'moves lastTransitionTime when False becomes True',
      before: 'False',
      after: 'True',
      expected: T1_STAMP,
    },
    {
      name: 'moves lastTransitionTime when True becomes Unknown',
      before: 'True',
      after: 'Unknown',
      expected: T1_STAMP,
    },
  ];
  for (const { name, before, after, expected } of transitions) {
    it(name, () => {
      const prev = mergeConditions(undefined, [input('Ready', before, 'Old', 'old')], 1, T0);
      const [got] = mergeConditions(prev, [input('Ready', after, 'New', 'new')], 2, T1);
      assert.equal(got?.lastTransitionTime, expected, `expected ${expected}, got ${got?.lastTransitionTime}`);
      assert.equal(got?.reason, 'New', 'expected the reason to follow the input');
      assert.equal(got?.message, 'new', 'expected the message to follow the input');
      assert.equal(
        got?.observedGeneration,
        2,
        `expected observedGeneration 2, got ${got?.observedGeneration}`,
      );
    });
  }

  it('keeps the order of existing types, appends new ones and keeps types not given', () => {
    const prev = mergeConditions(
      undefined,
      [input('A', 'True'), input('B', 'True'), input('C', 'True')],
      1,
      T0,
    );
    const got = mergeConditions(prev, [input('D', 'True'), input('B', 'False')], 2, T1);
    assert.deepEqual(
      got.map((c) => c.type),
      ['A', 'B', 'C', 'D'],
      `expected A, B, C, D; got ${got.map((c) => c.type).join(', ')}`,
    );
    assert.deepEqual(got[0], prev[0], 'expected a condition that was not given to stay as it was');
    assert.equal(got[1]?.lastTransitionTime, T1_STAMP);
  });

  it('truncates a message longer than 32000 characters', () => {
    const [got] = mergeConditions(undefined, [input('Ready', 'False', 'R', 'x'.repeat(40_000))], 1, T0);
    assert.equal(
      got?.message.length,
      32_001,
      `expected 32000 characters and an ellipsis, got ${got?.message.length}`,
    );
    assert.ok(got?.message.endsWith('…'));
  });

  it('does not change the conditions it is given', () => {
    const prev = mergeConditions(undefined, [input('Ready', 'True')], 1, T0);
    const copy = structuredClone(prev);
    mergeConditions(prev, [input('Ready', 'False')], 2, T1);
    assert.deepEqual(prev, copy);
  });
});

describe('findCondition', () => {
  const conditions = mergeConditions(undefined, [input('A', 'True'), input('B', 'False')], 1, T0);
  it('finds a condition by type', () => {
    assert.equal(findCondition(conditions, 'B')?.status, 'False');
  });
  it('returns undefined for an absent type or list', () => {
    assert.equal(findCondition(conditions, 'Ready'), undefined);
    assert.equal(findCondition(undefined, 'A'), undefined);
  });
});

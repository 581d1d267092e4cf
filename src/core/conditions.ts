/** metav1.Condition bookkeeping: lastTransitionTime moves only when the status flips. */
import type { Condition } from '../api/types.ts';

export type ConditionStatus = 'True' | 'False' | 'Unknown';

export interface ConditionInput {
  type: string;
  status: ConditionStatus;
  reason: string;
  message: string;
}

/** `current` updated with `next`, keeping the order of existing types and the transition times of unchanged statuses. */
export function mergeConditions(
  current: readonly Condition[] | undefined,
  next: readonly ConditionInput[],
  generation: number,
  now: Date,
): Condition[] {
  const byType = new Map((current ?? []).map((c) => [c.type, c]));
  const stamp = now.toISOString().replace(/\.\d{3}Z$/, 'Z');
  const merged = new Map<string, Condition>();
  for (const c of current ?? []) merged.set(c.type, c);
  for (const n of next) {
    const prev = byType.get(n.type);
    merged.set(n.type, {
      type: n.type,
      status: n.status,
      observedGeneration: generation,
      lastTransitionTime: prev && prev.status === n.status ? prev.lastTransitionTime : stamp,
      reason: n.reason,
      message: n.message.length > 32_000 ? `${n.message.slice(0, 32_000)}…` : n.message,
    });
  }
  return [...merged.values()];
}

export function findCondition(
  conditions: readonly Condition[] | undefined,
  type: string,
): Condition | undefined {
  return conditions?.find((c) => c.type === type);
}

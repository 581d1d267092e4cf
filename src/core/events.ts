/**
 * The Kubernetes Events a sync is worth: what changed, not every sync. Pure:
 * derived from the status before and after.
 */
import { ConditionType, Reason } from '../api/conditions.ts';
import type { OidcPublisherStatus } from '../api/types.ts';
import { findCondition } from './conditions.ts';
import type { SyncOutcome } from './status.ts';

export interface EventSpec {
  type: 'Normal' | 'Warning';
  /** A condition reason, or KeysChanged. */
  reason: string;
  action: 'Publish' | 'Sync';
  note: string;
}

export const KEYS_CHANGED = 'KeysChanged';

export function eventsFor(
  prev: OidcPublisherStatus | undefined,
  next: OidcPublisherStatus,
  outcome: SyncOutcome,
): EventSpec[] {
  const events: EventSpec[] = [];
  const written = outcome.written ?? [];
  if (written.length > 0) {
    events.push({
      type: 'Normal',
      reason: Reason.DocumentsPublished,
      action: 'Publish',
      note: `wrote ${written.map((w) => `${w.object.key} (${w.why})`).join(', ')}`,
    });
  }
  const before = new Set((prev?.keys ?? []).map((k) => k.kid));
  const after = new Set((next.keys ?? []).map((k) => k.kid));
  if (prev?.keys && written.length > 0) {
    const added = [...after].filter((k) => !before.has(k));
    const removed = [...before].filter((k) => !after.has(k));
    if (added.length || removed.length) {
      const parts = [
        ...(added.length ? [`added ${added.join(', ')}`] : []),
        ...(removed.length ? [`removed ${removed.join(', ')}`] : []),
      ];
      events.push({
        type: 'Normal',
        reason: KEYS_CHANGED,
        action: 'Publish',
        note: `published key set changed: ${parts.join('; ')}`,
      });
    }
  }
  const wasReady = findCondition(prev?.conditions, ConditionType.Ready);
  const ready = findCondition(next.conditions, ConditionType.Ready);
  if (
    ready &&
    ready.status !== 'True' &&
    (wasReady?.status !== ready.status || wasReady?.reason !== ready.reason)
  ) {
    events.push({ type: 'Warning', reason: ready.reason, action: 'Sync', note: ready.message });
  } else if (ready?.status === 'True' && wasReady && wasReady.status !== 'True') {
    events.push({
      type: 'Normal',
      reason: Reason.Ready,
      action: 'Sync',
      note: `recovered: ${ready.message}`,
    });
  }
  return events;
}

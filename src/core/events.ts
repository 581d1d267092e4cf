/**
 * The Kubernetes Events a sync is worth: what changed, not every sync. Pure:
 * derived from the status before and after.
 */
import { ConditionType, Reason } from '../api/conditions.ts';
import type { OidcPublisherStatus } from '../api/types.ts';
import { findCondition } from './conditions.ts';
import type { KeyChangeKind } from './keys.ts';
import type { SyncOutcome } from './status.ts';

export interface EventSpec {
  type: 'Normal' | 'Warning';
  /** A condition reason, or one of KEY_EVENT_REASONS. */
  reason: string;
  action: 'Publish' | 'Sync';
  note: string;
}

/** Event reasons for changes of the published key set. */
export const KEY_EVENT_REASONS: Record<KeyChangeKind, string> = {
  added: 'KeyAdded',
  retired: 'KeyRetired',
  removed: 'KeyRemoved',
  restored: 'KeyRestored',
};

function keyNote(kind: KeyChangeKind, kid: string, expiresAt: string | undefined): string {
  switch (kind) {
    case 'added':
      return `published new key ${kid}`;
    case 'retired':
      return `key ${kid} left the source; it stays published until ${expiresAt ?? 'keyRetention ends'}`;
    case 'removed':
      return `key ${kid} removed from the published JWKS: its retention ended`;
    case 'restored':
      return `key ${kid} is served by the source again; it is no longer retired`;
  }
}

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
  if (outcome.written && outcome.preparation?.kind === 'ready') {
    for (const change of outcome.preparation.retention.changes) {
      const record = next.keys?.find((k) => k.kid === change.kid);
      events.push({
        type: 'Normal',
        reason: KEY_EVENT_REASONS[change.kind],
        action: 'Publish',
        note: keyNote(change.kind, change.kid, record?.expiresAt),
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

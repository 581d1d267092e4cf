/**
 * The Kubernetes Events a sync is worth: what changed, not every sync. Pure:
 * derived from the status before and after.
 */
import { ConditionType, Reason } from '../api/conditions.ts';
import type { OidcPublisherStatus } from '../api/types.ts';
import { findCondition } from './conditions.ts';
import type { KeyChange, KeyChangeKind } from './keys.ts';
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
  retained: 'KeyRetained',
  refused: 'KeyRefused',
};

/** At most this many KeyRefused Events per sync; the rest are counted in one more. */
export const MAX_REFUSED_EVENTS = 10;

/**
 * The key changes of a sync, for Events and the key-change metric: none unless it published.
 * A retained key counts when the sync wrote the JWKS with it, taken again from storage (not in
 * the sync that retired it, which says so already).
 */
export function keyChangesOf(outcome: SyncOutcome): KeyChange[] {
  const prep = outcome.preparation;
  if (!outcome.written || prep?.kind !== 'ready') return [];
  const changes = [...prep.retention.changes];
  if (outcome.written.some((w) => w.object.role === 'jwks')) {
    const retiring = new Set(changes.filter((c) => c.kind === 'retired').map((c) => c.kid));
    for (const kid of prep.retention.fromStorage)
      if (!retiring.has(kid)) changes.push({ kind: 'retained', kid });
  }
  return changes;
}

function keyNote(change: KeyChange, expiresAt: string | undefined): string {
  const kid = JSON.stringify(change.kid.slice(0, 100));
  const material = change.thumbprint ? ` (thumbprint ${change.thumbprint})` : '';
  switch (change.kind) {
    case 'added':
      return `published new key ${change.kid}${material}`;
    case 'retired':
      return `key ${change.kid} left the source; it stays published until ${expiresAt ?? 'keyRetention ends'}`;
    case 'removed':
      return `key ${change.kid}${material} removed from the published JWKS: ${change.why ?? 'its retention ended'}`;
    case 'restored':
      return `key ${change.kid} is served by the source again; it is no longer retired`;
    case 'retained':
      return `key ${change.kid} is not served by the source; republished from the JWKS the operator last wrote to storage (its SHA-256 verified) until ${expiresAt ?? 'keyRetention ends'}`;
    case 'refused':
      return `status.keys records key ${kid}, which the source does not serve; not published: ${change.why ?? 'not trusted'}`;
  }
}

function sameSigningKey(a: OidcPublisherStatus | undefined, b: OidcPublisherStatus): boolean {
  return a?.verification?.signingKeyID === b.verification?.signingKeyID;
}

/**
 * Events: writes, key changes, a Ready that turns False (or recovers), the API server signing with
 * a key relying parties may not know yet (Warning SigningKeyNotTrusted), a key whose algorithm a
 * declared relying party refuses (Warning AlgorithmNotAccepted) and every served key
 * becoming trusted (Normal AllKeysTrusted: the signing key may be switched).
 */
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
  let refused = 0;
  for (const change of keyChangesOf(outcome)) {
    if (change.kind === 'refused' && ++refused > MAX_REFUSED_EVENTS) continue;
    const record = next.keys?.find((k) => k.kid === change.kid);
    // A key removed because its kid is now served with other material: tokens it signed under that
    // kid stop verifying at once, without retention.
    const replaced = change.kind === 'removed' && change.thumbprint !== undefined;
    events.push({
      type: change.kind === 'refused' || replaced ? 'Warning' : 'Normal',
      reason: KEY_EVENT_REASONS[change.kind],
      action: 'Publish',
      note: keyNote(change, record?.expiresAt),
    });
  }
  if (refused > MAX_REFUSED_EVENTS) {
    events.push({
      type: 'Warning',
      reason: KEY_EVENT_REASONS.refused,
      action: 'Publish',
      note: `${refused - MAX_REFUSED_EVENTS} more status.keys records were refused and not published`,
    });
  }
  const wasTrusted = findCondition(prev?.conditions, ConditionType.KeysTrusted);
  const trusted = findCondition(next.conditions, ConditionType.KeysTrusted);
  const warns =
    trusted?.reason === Reason.SigningKeyNotTrusted || trusted?.reason === Reason.AlgorithmNotAccepted;
  if (
    trusted &&
    warns &&
    (wasTrusted?.reason !== trusted.reason ||
      !sameSigningKey(prev, next) ||
      wasTrusted.message !== trusted.message)
  ) {
    events.push({ type: 'Warning', reason: trusted.reason, action: 'Sync', note: trusted.message });
  } else if (trusted?.status === 'True' && wasTrusted?.status === 'False') {
    events.push({ type: 'Normal', reason: trusted.reason, action: 'Sync', note: trusted.message });
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

/**
 * One sync of one OidcPublisher through the Reconciler, as external-dns tests RunOnce: the source's
 * documents as plain data, the bucket, the public issuer, the status writer and the Event
 * recorder in memory (reconcile-world.ts). One case per condition reason a sync can produce; each
 * names the exact writes (key, bytes as JSON, headers, metadata) or deletes, the five conditions,
 * the Events, what the work queue is told, and the finalizers left.
 */
import assert from 'node:assert/strict';
import { createPrivateKey, generateKeyPairSync, type JsonWebKey, type KeyObject, sign } from 'node:crypto';
import { describe, it } from 'node:test';
import { Registry } from 'prom-client';
import { ConditionType, Reason } from '../../src/api/conditions.ts';
import { FINALIZER, type OidcPublisherSpec } from '../../src/api/types.ts';
import { CANARY_RENEW_MS } from '../../src/controller/canary.ts';
import type { ReconcileResult } from '../../src/controller/queue.ts';
import { CANARY_AUDIENCE } from '../../src/core/canary.ts';
import { renderJwks, sha256Hex, validateJwks } from '../../src/core/documents.ts';
import { macKey } from '../../src/core/record-mac.ts';
import { DISCOVERY_PATH, JWKS_PATH } from '../../src/core/spec.ts';
import { type ErrorCode, ErrorCodes, OidcPublisherError } from '../../src/errors.ts';
import { Metrics } from '../../src/server/metrics.ts';
import {
  HASH_METADATA_KEY,
  OWNER_NAME_METADATA_KEY,
  OWNER_UID_METADATA_KEY,
} from '../../src/stores/store.ts';
import {
  discoveryJson,
  EC_PUBLIC,
  ISSUER,
  type JwkJson,
  jwksJson,
  OKP_PUBLIC,
  PUBLIC_JWKS_URI,
  PUBLISHER_NAME,
  PUBLISHER_UID,
  RSA_PRIVATE,
  RSA_PUBLIC,
  samplePublisher,
} from './fixtures.ts';
import { World } from './reconcile-world.ts';

const JWKS_KEY = JWKS_PATH;
const DISCOVERY_KEY = DISCOVERY_PATH;
const CACHE_CONTROL = 'public, max-age=300';
const SYNC_MS = 60_000;
const REQUEUE: ReconcileResult = { requeueAfterMs: SYNC_MS };
const BACKOFF: ReconcileResult = { backoff: true, maxDelayMs: SYNC_MS };

/** A write as the bucket holds it, with its body parsed. */
interface SeenWrite {
  key: string;
  contentType: string;
  cacheControl: string;
  metadata: Record<string, string>;
  json: unknown;
  /** Why it was written, as the reconciler reported it. */
  why: string;
}

type ExpectedWrite = Omit<SeenWrite, 'metadata'>;

function jwksWrite(keys: readonly JwkJson[], why: string, cacheControl = CACHE_CONTROL): ExpectedWrite {
  const sorted = [...keys].sort((a, b) => String(a.kid).localeCompare(String(b.kid)));
  return {
    key: JWKS_KEY,
    contentType: 'application/jwk-set+json',
    cacheControl,
    json: { keys: sorted },
    why,
  };
}

function discoveryWrite(why: string, cacheControl = CACHE_CONTROL): ExpectedWrite {
  return {
    key: DISCOVERY_KEY,
    contentType: 'application/json',
    cacheControl,
    json: { ...JSON.parse(discoveryJson()), jwks_uri: PUBLIC_JWKS_URI },
    why,
  };
}

const SOURCE_OK = 'SourceAvailable=True/DocumentsFetched';
const ISSUER_OK = 'IssuerMatched=True/IssuerMatches';
const VERIFIED = 'Verified=True/Verified';
const READY = 'Ready=True/Ready';
const NOT_READ = 'IssuerMatched=Unknown/SourceNotRead';
const NOT_PUBLISHED = 'Published=Unknown/NotAttempted';
const NOT_VERIFIED = 'Verified=Unknown/NotAttempted';
const KT_NOT_YET = 'KeysTrusted=False/KeyNotYetTrusted';
const KT_NONE = 'KeysTrusted=Unknown/KeysNotPublished';
const KT_SIGNING = 'KeysTrusted=False/SigningKeyNotTrusted';
const KT_NOT_ATTEMPTED = 'KeysTrusted=Unknown/NotAttempted';
const FIRST_SYNC_EVENTS = ['Normal DocumentsPublished', 'Normal KeyAdded', 'Normal KeyAdded'];

const err = (code: ErrorCode, message = `${code.toLowerCase()} in a test`) =>
  new OidcPublisherError(code, message);

/** A stored object's custom metadata as a write by `uid`/`name` leaves it. */
function ownedBy(uid: string, name: string, sha256 = 'f'.repeat(64)): Record<string, string> {
  return { [HASH_METADATA_KEY]: sha256, [OWNER_UID_METADATA_KEY]: uid, [OWNER_NAME_METADATA_KEY]: name };
}

/** Signs a canary token as the API server would, RS256 with `kid`. */
function canaryToken(key: KeyObject, kid: string, nowS: number): string {
  const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');
  const input = `${b64({ alg: 'RS256', kid })}.${b64({
    iss: ISSUER,
    aud: [CANARY_AUDIENCE],
    sub: 'system:serviceaccount:oidc-publisher-system:oidc-publisher-canary',
    iat: nowS,
    nbf: nowS,
    exp: nowS + 600,
  })}`;
  return `${input}.${sign('sha256', Buffer.from(input), key).toString('base64url')}`;
}

/** The key the source API server signs with: RSA_PUBLIC's private half. */
const SOURCE_SIGNING_KEY = createPrivateKey({ key: RSA_PRIVATE as JsonWebKey, format: 'jwk' });
/** A key the source API server signs with that was never published. */
const UNPUBLISHED_KEY = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;

const CANARY_SPEC: Partial<OidcPublisherSpec> = {
  verification: { canary: { serviceAccountRef: { name: 'oidc-publisher-canary' } } },
};

function issueToken(w: World, key: KeyObject, kid: string): void {
  w.cluster.token = () => ({
    token: canaryToken(key, kid, w.now.getTime() / 1000),
    expiresAt: new Date(w.now.getTime() + 600_000),
  });
}

/** The kid rsa-1 served with the key material of another key pair. */
const SWAPPED_RSA: JwkJson = {
  ...RSA_PUBLIC,
  n: generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey.export({ format: 'jwk' }).n,
};

/** The first sync, then the sync under test starts from its result. */
async function afterFirstSync(w: World): Promise<void> {
  const first = await w.reconcile();
  assert.deepEqual(first, REQUEUE, 'the first sync of the arrangement succeeds');
  w.advance(1000);
}

interface Case {
  name: string;
  spec?: Partial<OidcPublisherSpec>;
  /** The world before the sync under test; what earlier syncs here did is not counted. */
  arrange?(w: World): Promise<void> | void;
  writes: ExpectedWrite[];
  deletes?: string[];
  /** `Type=Status/Reason` of the six conditions, in this order; empty when status must not be written. */
  conditions: string[];
  events: string[];
  result: ReconcileResult;
  /** The finalizers left; default [FINALIZER]. 'gone' when the API server removed the object. */
  finalizers?: string[] | 'gone';
  check?(w: World): void;
}

const CONDITION_ORDER: string[] = [
  ConditionType.SourceAvailable,
  ConditionType.IssuerMatched,
  ConditionType.Published,
  ConditionType.Verified,
  ConditionType.KeysTrusted,
  ConditionType.Ready,
];

function sourceFailure(
  code: ErrorCode,
  reason: string,
  where: 'fetch' | 'setup',
  describeAs = `${code} ${where === 'fetch' ? 'reading the documents' : 'getting the source'}`,
): Case {
  const transient = ErrorCodes[code].retry === 'transient';
  return {
    name: `source: ${describeAs}: SourceAvailable=False/${reason}, nothing read from or written to storage`,
    arrange: (w) => {
      if (where === 'fetch') w.source = err(code);
      else w.sourceSetupError = err(code);
    },
    writes: [],
    conditions: [
      `SourceAvailable=False/${reason}`,
      NOT_READ,
      NOT_PUBLISHED,
      NOT_VERIFIED,
      KT_NONE,
      `Ready=False/${reason}`,
    ],
    events: [`Warning ${reason}`],
    result: transient ? BACKOFF : REQUEUE,
    check: (w) => {
      assert.deepEqual(w.store.calls, [], 'no storage call');
      assert.equal(w.view.reads, 0, 'no read of the public issuer');
    },
  };
}

function storageFailure(code: ErrorCode, reason: string, where: 'setup' | 'head' | 'put'): Case {
  const transient = ErrorCodes[code].retry === 'transient';
  return {
    name: `storage: ${code} on ${where === 'setup' ? 'getting the store' : where.toUpperCase()}: Published=False/${reason}, nothing written`,
    arrange: (w) => {
      if (where === 'setup') w.storeSetupError = err(code);
      else w.store.fail(where, err(code));
    },
    writes: [],
    conditions: [
      SOURCE_OK,
      ISSUER_OK,
      `Published=False/${reason}`,
      NOT_VERIFIED,
      KT_NONE,
      `Ready=False/${reason}`,
    ],
    events: [`Warning ${reason}`],
    result: transient ? BACKOFF : REQUEUE,
  };
}

function verificationFailure(
  name: string,
  reason: string,
  arrange: (w: World) => void,
  check?: (w: World) => void,
): Case {
  return {
    name: `after a good sync, ${name}: Verified=False/${reason}, nothing written`,
    arrange: async (w) => {
      await afterFirstSync(w);
      arrange(w);
    },
    writes: [],
    conditions: [
      SOURCE_OK,
      ISSUER_OK,
      'Published=True/UpToDate',
      `Verified=False/${reason}`,
      KT_NOT_YET,
      `Ready=False/${reason}`,
    ],
    events: [`Warning ${reason}`],
    result: REQUEUE,
    ...(check ? { check } : {}),
  };
}

/** The canary a minute after a good sync, when the API server's answer to a TokenRequest changed. */
function canaryCase(
  name: string,
  reason: string,
  keysTrusted: string,
  arrange: (w: World) => void,
  check?: (w: World) => void,
): Case {
  return {
    name: `canary: ${name}: Verified=False/${reason}`,
    spec: CANARY_SPEC,
    arrange: async (w) => {
      issueToken(w, SOURCE_SIGNING_KEY, 'rsa-1');
      await afterFirstSync(w);
      // Past the cached token's renewal: this sync asks the API server again.
      w.advance(CANARY_RENEW_MS);
      arrange(w);
    },
    writes: [],
    conditions: [
      SOURCE_OK,
      ISSUER_OK,
      'Published=True/UpToDate',
      `Verified=False/${reason}`,
      keysTrusted,
      `Ready=False/${reason}`,
    ],
    events: [`Warning ${reason}`],
    result: REQUEUE,
    check: (w) => {
      assert.equal(w.cluster.tokenRequests.length, 1, 'a TokenRequest in this sync');
      check?.(w);
    },
  };
}

const cases: Case[] = [
  {
    name: 'first sync: writes the JWKS, then the discovery document pointing at the public jwks_uri',
    writes: [jwksWrite([RSA_PUBLIC, EC_PUBLIC], 'missing'), discoveryWrite('missing')],
    conditions: [SOURCE_OK, ISSUER_OK, 'Published=True/DocumentsPublished', VERIFIED, KT_NOT_YET, READY],
    events: FIRST_SYNC_EVENTS,
    result: REQUEUE,
    check: (w) => {
      const s = w.obj.status;
      assert.deepEqual(
        s?.objects?.map((o) => [o.key, o.sha256]),
        w.store.writes.map((x) => [x.key, x.bodySha256]),
        'status.objects records the hashes written',
      );
      assert.deepEqual(
        s?.keys?.map((k) => k.kid),
        ['ec-1', 'rsa-1'],
      );
      assert.equal(s?.keyCount, 2);
      assert.equal(s?.storageURL, 's3://oidc/');
      assert.equal(s?.lastPublishTime, '2025-06-01T12:00:00Z');
      assert.equal(w.view.reads, 2, 'read before (nothing there) and after the writes');
    },
  },
  {
    name: 'after a restart, the public issuer serves exactly the documents: UpToDate with no HEAD and no write',
    arrange: async (w) => {
      await afterFirstSync(w);
      w.restart();
    },
    writes: [],
    conditions: [SOURCE_OK, ISSUER_OK, 'Published=True/UpToDate', VERIFIED, KT_NOT_YET, READY],
    events: [],
    result: REQUEUE,
    check: (w) => assert.deepEqual(w.store.calls, [], 'no storage call at all'),
  },
  {
    name: 'verification off, after a restart: HEADs both objects, writes nothing, Verified=Unknown/VerificationDisabled',
    spec: { verification: { enabled: false } },
    arrange: async (w) => {
      await afterFirstSync(w);
      w.restart();
    },
    writes: [],
    conditions: [
      SOURCE_OK,
      ISSUER_OK,
      'Published=True/UpToDate',
      'Verified=Unknown/VerificationDisabled',
      KT_NOT_YET,
      READY,
    ],
    events: [],
    result: REQUEUE,
    check: (w) => {
      assert.deepEqual(w.store.calls, [
        { op: 'head', key: JWKS_KEY },
        { op: 'head', key: DISCOVERY_KEY },
      ]);
      assert.equal(w.view.reads, 0, 'the public issuer is not read');
    },
  },
  {
    name: 'spec.cacheControl changed: both objects rewritten with the new header (headers changed)',
    arrange: async (w) => {
      await afterFirstSync(w);
      w.edit((o) => {
        o.spec.cacheControl = 'public, max-age=60';
      });
    },
    writes: [
      jwksWrite([RSA_PUBLIC, EC_PUBLIC], 'headers changed', 'public, max-age=60'),
      discoveryWrite('headers changed', 'public, max-age=60'),
    ],
    conditions: [SOURCE_OK, ISSUER_OK, 'Published=True/DocumentsPublished', VERIFIED, KT_NOT_YET, READY],
    events: ['Normal DocumentsPublished'],
    // trustedAt follows the current max-age (published 1 s ago + 60 s): status cannot hold it later.
    result: { requeueAfterMs: 59_100 },
  },
  {
    name: 'a key added at the source: only the JWKS is rewritten (content changed), KeyAdded',
    arrange: async (w) => {
      await afterFirstSync(w);
      w.source = { discovery: discoveryJson(), jwks: jwksJson([RSA_PUBLIC, EC_PUBLIC, OKP_PUBLIC]) };
    },
    writes: [jwksWrite([RSA_PUBLIC, EC_PUBLIC, OKP_PUBLIC], 'content changed')],
    conditions: [SOURCE_OK, ISSUER_OK, 'Published=True/DocumentsPublished', VERIFIED, KT_NOT_YET, READY],
    events: ['Normal DocumentsPublished', 'Normal KeyAdded'],
    result: REQUEUE,
  },
  {
    name: "the JWKS's max-age after publishing, every key is trusted: KeysTrusted=True/AllKeysTrusted",
    arrange: async (w) => {
      await afterFirstSync(w);
      w.advance(299_000);
    },
    writes: [],
    conditions: [
      SOURCE_OK,
      ISSUER_OK,
      'Published=True/UpToDate',
      VERIFIED,
      'KeysTrusted=True/AllKeysTrusted',
      READY,
    ],
    events: ['Normal AllKeysTrusted'],
    result: REQUEUE,
  },
  {
    name: 'first sync with a max-age of 30 s: requeued when the keys become trusted, before the sync interval',
    spec: { cacheControl: 'public, max-age=30' },
    writes: [
      jwksWrite([RSA_PUBLIC, EC_PUBLIC], 'missing', 'public, max-age=30'),
      discoveryWrite('missing', 'public, max-age=30'),
    ],
    conditions: [SOURCE_OK, ISSUER_OK, 'Published=True/DocumentsPublished', VERIFIED, KT_NOT_YET, READY],
    events: FIRST_SYNC_EVENTS,
    result: { requeueAfterMs: 30_100 },
  },
  {
    name: 'spec.relyingParties names azure and the source serves an ES256 key: KeysTrusted=False/AlgorithmNotAccepted',
    // The generated type reads "vault"[] for the whole union's array (the generator's precedence).
    spec: { relyingParties: ['azure'] as unknown as OidcPublisherSpec['relyingParties'] },
    writes: [jwksWrite([RSA_PUBLIC, EC_PUBLIC], 'missing'), discoveryWrite('missing')],
    conditions: [
      SOURCE_OK,
      ISSUER_OK,
      'Published=True/DocumentsPublished',
      VERIFIED,
      'KeysTrusted=False/AlgorithmNotAccepted',
      READY,
    ],
    events: [...FIRST_SYNC_EVENTS, 'Warning AlgorithmNotAccepted'],
    result: REQUEUE,
  },
  {
    name: 'spec.sources with one source unreachable: the other one is published, SourceAvailable=False/SourcesStale names it',
    spec: { sources: [{}, { kubeconfigSecretRef: { name: 'green' } }] },
    arrange: async (w) => {
      w.secretSources.set(
        'green',
        new OidcPublisherError('SOURCE_UNREACHABLE', 'connect ECONNREFUSED green'),
      );
    },
    writes: [jwksWrite([RSA_PUBLIC, EC_PUBLIC], 'missing'), discoveryWrite('missing')],
    conditions: [
      'SourceAvailable=False/SourcesStale',
      ISSUER_OK,
      'Published=True/DocumentsPublished',
      VERIFIED,
      KT_NOT_YET,
      'Ready=False/SourcesStale',
    ],
    events: [...FIRST_SYNC_EVENTS, 'Warning SourcesStale'],
    result: REQUEUE,
    check: (w) => {
      const c = w.obj.status?.conditions?.find((x) => x.type === 'SourceAvailable');
      assert.match(
        c?.message ?? '',
        /^source secret\/green: connect ECONNREFUSED green; the other sources' keys are published/,
      );
    },
  },
  {
    name: 'spec.sources: the keys of both clusters are merged into one JWKS',
    spec: { sources: [{}, { kubeconfigSecretRef: { name: 'green' } }] },
    arrange: async (w) => {
      w.source = { discovery: discoveryJson(), jwks: jwksJson([RSA_PUBLIC]) };
      w.secretSources.set('green', { discovery: discoveryJson(), jwks: jwksJson([EC_PUBLIC]) });
    },
    writes: [jwksWrite([RSA_PUBLIC, EC_PUBLIC], 'missing'), discoveryWrite('missing')],
    conditions: [SOURCE_OK, ISSUER_OK, 'Published=True/DocumentsPublished', VERIFIED, KT_NOT_YET, READY],
    events: FIRST_SYNC_EVENTS,
    result: REQUEUE,
  },
  {
    name: 'spec.sources: the earlier source misses a read and a later one serves its kid with other material: the published key is kept, that source is left out (KID_CONFLICT)',
    spec: {
      sources: [{}, { kubeconfigSecretRef: { name: 'green' } }, { kubeconfigSecretRef: { name: 'blue' } }],
    },
    arrange: async (w) => {
      w.source = { discovery: discoveryJson(), jwks: jwksJson([RSA_PUBLIC]) };
      w.secretSources.set('green', { discovery: discoveryJson(), jwks: jwksJson([EC_PUBLIC]) });
      w.secretSources.set('blue', { discovery: discoveryJson(), jwks: jwksJson([OKP_PUBLIC]) });
      await afterFirstSync(w);
      w.source = err('SOURCE_UNREACHABLE', 'connect ECONNREFUSED cluster');
      w.secretSources.set('green', { discovery: discoveryJson(), jwks: jwksJson([EC_PUBLIC, SWAPPED_RSA]) });
    },
    // rsa-1 and ec-1 are retained from the stored JWKS: the same bytes, nothing written.
    writes: [],
    conditions: [
      'SourceAvailable=False/SourcesStale',
      ISSUER_OK,
      'Published=True/UpToDate',
      VERIFIED,
      KT_NOT_YET,
      'Ready=False/SourcesStale',
    ],
    events: ['Normal KeyRetired', 'Normal KeyRetired', 'Warning SourcesStale'],
    result: REQUEUE,
    check: (w) => {
      const published = JSON.parse(String(w.store.objects.get(JWKS_KEY)?.body)) as { keys: JwkJson[] };
      assert.equal(
        published.keys.find((k) => k.kid === 'rsa-1')?.n,
        RSA_PUBLIC.n,
        'the published rsa-1 is kept',
      );
      const record = w.obj.status?.keys?.find((k) => k.kid === 'rsa-1');
      assert.equal(record?.jwk?.n, RSA_PUBLIC.n, 'status records the kept key');
      assert.equal(record?.publishedAt, '2025-06-01T12:00:00Z');
      const c = w.obj.status?.conditions?.find((x) => x.type === 'SourceAvailable');
      assert.match(
        c?.message ?? '',
        /^source cluster: connect ECONNREFUSED cluster; source secret\/green: it serves kid "rsa-1" with other key material \(thumbprint [\w-]+\) than the published JWKS holds/,
      );
    },
  },
  {
    name: 'spec.sources, a source stale and status edited to the material another source now serves under its kid: still a new key (Warning KeyRemoved), trusted from now',
    spec: {
      sources: [{}, { kubeconfigSecretRef: { name: 'green' } }, { kubeconfigSecretRef: { name: 'blue' } }],
    },
    arrange: async (w) => {
      w.source = { discovery: discoveryJson(), jwks: jwksJson([RSA_PUBLIC]) };
      w.secretSources.set('green', { discovery: discoveryJson(), jwks: jwksJson([EC_PUBLIC]) });
      w.secretSources.set('blue', { discovery: discoveryJson(), jwks: jwksJson([OKP_PUBLIC]) });
      await afterFirstSync(w);
      w.advance(600_000);
      assert.deepEqual(await w.reconcile(), REQUEUE);
      w.advance(1000);
      w.source = err('SOURCE_UNREACHABLE', 'connect ECONNREFUSED cluster');
      w.secretSources.set('green', { discovery: discoveryJson(), jwks: jwksJson([EC_PUBLIC, SWAPPED_RSA]) });
      w.edit((o) => {
        const rsa = o.status?.keys?.find((k) => k.kid === 'rsa-1');
        if (rsa?.jwk) rsa.jwk.n = SWAPPED_RSA.n as string;
      });
    },
    writes: [jwksWrite([SWAPPED_RSA, EC_PUBLIC, OKP_PUBLIC], 'content changed')],
    conditions: [
      'SourceAvailable=False/SourcesStale',
      ISSUER_OK,
      'Published=True/DocumentsPublished',
      VERIFIED,
      KT_NOT_YET,
      'Ready=False/SourcesStale',
    ],
    events: ['Normal DocumentsPublished', 'Warning KeyRemoved', 'Normal KeyAdded', 'Warning SourcesStale'],
    result: REQUEUE,
    check: (w) => {
      const record = w.obj.status?.keys?.find((k) => k.kid === 'rsa-1');
      assert.equal(
        record?.publishedAt,
        '2025-06-01T12:10:02Z',
        'published now, not when the old material was',
      );
    },
  },
  {
    name: 'the API server serves a kid with other key material: published as a new key (KeyRemoved, KeyAdded), not trusted until one cache lifetime from now',
    arrange: async (w) => {
      await afterFirstSync(w);
      w.advance(600_000);
      assert.deepEqual(await w.reconcile(), REQUEUE);
      assert.equal(
        w.obj.status?.conditions?.find((x) => x.type === 'KeysTrusted')?.reason,
        'AllKeysTrusted',
        'the old rsa-1 was trusted',
      );
      w.advance(1000);
      w.source = { discovery: discoveryJson(), jwks: jwksJson([SWAPPED_RSA, EC_PUBLIC]) };
    },
    writes: [jwksWrite([SWAPPED_RSA, EC_PUBLIC], 'content changed')],
    conditions: [SOURCE_OK, ISSUER_OK, 'Published=True/DocumentsPublished', VERIFIED, KT_NOT_YET, READY],
    events: ['Normal DocumentsPublished', 'Warning KeyRemoved', 'Normal KeyAdded'],
    result: { requeueAfterMs: SYNC_MS },
    check: (w) => {
      const record = w.obj.status?.keys?.find((k) => k.kid === 'rsa-1');
      assert.equal(
        record?.publishedAt,
        '2025-06-01T12:10:02Z',
        'published now, not when the old material was',
      );
      assert.equal(record?.trustedAt, '2025-06-01T12:15:02Z');
      const notes = w.cluster.events.map((e) => e.event.note);
      assert.match(
        notes[1] ?? '',
        /^key rsa-1 \(thumbprint [\w-]{43}\) removed from the published JWKS: the source now serves this kid with other key material/,
      );
      assert.match(notes[2] ?? '', /published new key rsa-1 \(thumbprint [\w-]{43}\)/);
    },
  },
  {
    name: 'a key left the source: retained from the stored JWKS (same bytes, no write), KeyRetired, requeued when it expires',
    spec: { keyRetention: '30s' },
    arrange: async (w) => {
      await afterFirstSync(w);
      w.source = { discovery: discoveryJson(), jwks: jwksJson([EC_PUBLIC]) };
    },
    writes: [],
    conditions: [SOURCE_OK, ISSUER_OK, 'Published=True/UpToDate', VERIFIED, KT_NOT_YET, READY],
    events: ['Normal KeyRetired'],
    result: { requeueAfterMs: 30_100 },
    check: (w) => {
      const rsa = w.obj.status?.keys?.find((k) => k.kid === 'rsa-1');
      assert.equal(rsa?.retiredAt, '2025-06-01T12:00:01Z');
      assert.equal(rsa?.expiresAt, '2025-06-01T12:00:31Z');
      assert.deepEqual(
        w.store.calls,
        [
          { op: 'head', key: JWKS_KEY },
          { op: 'get', key: JWKS_KEY },
        ],
        'the stored JWKS is read back, nothing else',
      );
    },
  },
  {
    name: 'a retained key whose retention ended: the JWKS is rewritten without it, KeyRemoved',
    spec: { keyRetention: '30s' },
    arrange: async (w) => {
      await afterFirstSync(w);
      w.source = { discovery: discoveryJson(), jwks: jwksJson([EC_PUBLIC]) };
      assert.deepEqual(await w.reconcile(), { requeueAfterMs: 30_100 });
      w.advance(30_000);
    },
    writes: [jwksWrite([EC_PUBLIC], 'content changed')],
    conditions: [SOURCE_OK, ISSUER_OK, 'Published=True/DocumentsPublished', VERIFIED, KT_NOT_YET, READY],
    events: ['Normal DocumentsPublished', 'Normal KeyRemoved'],
    result: REQUEUE,
  },
  {
    name: 'status records a key the operator never published: not published, Published=True/RetainedKeysRefused, KeyRefused',
    arrange: async (w) => {
      await afterFirstSync(w);
      w.edit((o) => {
        o.status?.keys?.push({
          kid: 'ed-1',
          kty: 'OKP',
          alg: 'EdDSA',
          firstSeen: '2025-06-01T11:00:00Z',
          retiredAt: '2025-06-01T11:30:00Z',
          jwk: OKP_PUBLIC,
        });
      });
    },
    writes: [],
    conditions: [SOURCE_OK, ISSUER_OK, 'Published=True/RetainedKeysRefused', VERIFIED, KT_NOT_YET, READY],
    events: ['Warning KeyRefused'],
    result: REQUEUE,
    check: (w) => {
      assert.deepEqual(
        w.obj.status?.keys?.map((k) => k.kid),
        ['ec-1', 'rsa-1'],
        'the record is dropped',
      );
      assert.match(w.cluster.events[0]?.event.note ?? '', /"ed-1".*does not hold this kid/);
    },
  },
  {
    name: 'the stored JWKS was changed in storage: the retired key is refused and the JWKS rewritten without it',
    arrange: async (w) => {
      await afterFirstSync(w);
      const stored = w.store.objects.get(JWKS_KEY);
      assert.ok(stored);
      stored.body = renderJwks(validateJwks(jwksJson([RSA_PUBLIC, EC_PUBLIC, OKP_PUBLIC])));
      w.source = { discovery: discoveryJson(), jwks: jwksJson([EC_PUBLIC]) };
    },
    writes: [jwksWrite([EC_PUBLIC], 'content changed')],
    conditions: [SOURCE_OK, ISSUER_OK, 'Published=True/RetainedKeysRefused', VERIFIED, KT_NOT_YET, READY],
    events: ['Normal DocumentsPublished', 'Warning KeyRefused'],
    result: REQUEUE,
    check: (w) => assert.match(w.cluster.events[1]?.event.note ?? '', /"rsa-1".*changed in storage/),
  },
  {
    name: 'the stored JWKS cannot be read for retention: nothing published rather than a retired key dropped',
    arrange: async (w) => {
      await afterFirstSync(w);
      w.source = { discovery: discoveryJson(), jwks: jwksJson([EC_PUBLIC]) };
      w.store.fail('head', err('STORAGE_UNREACHABLE'));
    },
    writes: [],
    conditions: [
      SOURCE_OK,
      ISSUER_OK,
      'Published=False/StorageUnreachable',
      NOT_VERIFIED,
      KT_NOT_YET,
      'Ready=False/StorageUnreachable',
    ],
    events: ['Warning StorageUnreachable'],
    result: BACKOFF,
    check: (w) => assert.equal(w.view.reads, 0),
  },
  {
    name: "a bucket writer and a status writer together: a key in a JWKS with this publisher's metadata and hash, recorded in status without the operator's MAC, is refused",
    arrange: async (w) => {
      await afterFirstSync(w);
      for (const k of w.obj.status?.keys ?? [])
        assert.match(k.mac ?? '', /^v1\.[0-9a-f]{8}\./, `the operator sealed the record of ${k.kid}`);
      // The bucket writer: the JWKS with their key, its hash and this publisher's UID in the metadata.
      const body = renderJwks(validateJwks(jwksJson([RSA_PUBLIC, EC_PUBLIC, OKP_PUBLIC])));
      w.store.seed(JWKS_KEY, body, { metadata: ownedBy(PUBLISHER_UID, PUBLISHER_NAME, sha256Hex(body)) });
      // The status writer: a record of the same key, as retention writes one, but unsealed.
      w.edit((o) => {
        o.status?.keys?.push({
          kid: 'ed-1',
          kty: 'OKP',
          alg: 'EdDSA',
          firstSeen: '2025-06-01T11:00:00Z',
          retiredAt: '2025-06-01T12:00:00Z',
          jwk: OKP_PUBLIC,
        });
      });
    },
    writes: [jwksWrite([RSA_PUBLIC, EC_PUBLIC], 'content changed')],
    conditions: [SOURCE_OK, ISSUER_OK, 'Published=True/RetainedKeysRefused', VERIFIED, KT_NOT_YET, READY],
    events: ['Normal DocumentsPublished', 'Warning KeyRefused'],
    result: REQUEUE,
    check: (w) => {
      assert.deepEqual(
        w.obj.status?.keys?.map((k) => k.kid),
        ['ec-1', 'rsa-1'],
        'the record is dropped',
      );
      assert.match(w.cluster.events[1]?.event.note ?? '', /"ed-1".*carries no MAC of the operator/);
    },
  },
  {
    name: 'the record MAC key changed (its Secret emptied while no replica held it): the retired key is refused, naming both key ids',
    arrange: async (w) => {
      await afterFirstSync(w);
      w.source = { discovery: discoveryJson(), jwks: jwksJson([EC_PUBLIC]) };
      w.integrityKey = macKey(Buffer.alloc(32, 9));
    },
    writes: [jwksWrite([EC_PUBLIC], 'content changed')],
    conditions: [SOURCE_OK, ISSUER_OK, 'Published=True/RetainedKeysRefused', VERIFIED, KT_NOT_YET, READY],
    events: ['Normal DocumentsPublished', 'Warning KeyRefused'],
    result: REQUEUE,
    check: (w) =>
      assert.match(
        w.cluster.events[1]?.event.note ?? '',
        /"rsa-1".*made with integrity key [0-9a-f]{8}, the operator holds key [0-9a-f]{8} \(its Secret was emptied, re-created or replaced\)/,
      ),
  },
  {
    name: 'the record MAC key Secret is missing or cannot be read or written: nothing published rather than a retired key dropped',
    arrange: async (w) => {
      await afterFirstSync(w);
      w.source = { discovery: discoveryJson(), jwks: jwksJson([EC_PUBLIC]) };
      w.integrityKey = err('INTEGRITY_KEY_UNAVAILABLE');
    },
    writes: [],
    conditions: [
      SOURCE_OK,
      ISSUER_OK,
      'Published=False/IntegrityKeyUnavailable',
      NOT_VERIFIED,
      KT_NOT_YET,
      'Ready=False/IntegrityKeyUnavailable',
    ],
    events: ['Warning IntegrityKeyUnavailable'],
    result: BACKOFF,
    check: (w) => {
      assert.equal(w.view.reads, 0);
      assert.deepEqual(
        w.obj.status?.keys?.map((k) => k.retiredAt),
        [undefined, undefined],
        'status.keys kept',
      );
    },
  },

  {
    name: 'spec.sources, none usable (one down, one with another issuer): SourcesStale names both, nothing read from or written to storage',
    spec: { sources: [{}, { kubeconfigSecretRef: { name: 'green' } }] },
    arrange: (w) => {
      w.source = err('SOURCE_UNREACHABLE');
      w.secretSources.set('green', {
        discovery: discoveryJson({ issuer: 'https://elsewhere.example.com' }),
        jwks: jwksJson([EC_PUBLIC]),
      });
    },
    writes: [],
    conditions: [
      'SourceAvailable=False/SourcesStale',
      NOT_READ,
      NOT_PUBLISHED,
      NOT_VERIFIED,
      KT_NONE,
      'Ready=False/SourcesStale',
    ],
    events: ['Warning SourcesStale'],
    result: BACKOFF,
    check: (w) => {
      assert.deepEqual(w.store.calls, [], 'no storage call');
      const c = w.obj.status?.conditions?.find((x) => x.type === 'SourceAvailable');
      assert.match(
        c?.message ?? '',
        /^source cluster: .*; source secret\/green: its issuer "https:\/\/elsewhere\.example\.com" differs .*; nothing was published/,
      );
    },
  },
  sourceFailure('SOURCE_UNREACHABLE', 'SourceUnreachable', 'fetch'),
  sourceFailure('SOURCE_UNAUTHORIZED', 'SourceUnauthorized', 'fetch'),
  sourceFailure('SOURCE_HTTP_ERROR', 'SourceError', 'fetch'),
  sourceFailure('SOURCE_TOO_LARGE', 'InvalidDocuments', 'fetch'),
  sourceFailure('SECRET_NOT_FOUND', 'KubeconfigSecretNotFound', 'setup'),
  sourceFailure('SECRET_FORBIDDEN', 'KubeconfigSecretNotFound', 'setup'),
  sourceFailure('SECRET_NOT_ALLOWED', 'SecretNotAllowed', 'setup'),
  sourceFailure('KUBECONFIG_INVALID', 'KubeconfigInvalid', 'setup'),
  sourceFailure('KUBECONFIG_REFUSED', 'KubeconfigRefused', 'setup'),
  {
    name: 'source: the JWKS carries private key material: SourceAvailable=False/InvalidDocuments, nothing written',
    arrange: (w) => {
      w.source = { discovery: discoveryJson(), jwks: jwksJson([RSA_PRIVATE]) };
    },
    writes: [],
    conditions: [
      'SourceAvailable=False/InvalidDocuments',
      NOT_READ,
      NOT_PUBLISHED,
      NOT_VERIFIED,
      KT_NONE,
      'Ready=False/InvalidDocuments',
    ],
    events: ['Warning InvalidDocuments'],
    result: REQUEUE,
    check: (w) => assert.deepEqual(w.store.calls, []),
  },
  {
    name: "source: the API server's issuer is another: IssuerMatched=False/IssuerMismatch, nothing written",
    arrange: (w) => {
      w.source = {
        discovery: discoveryJson({ issuer: 'https://other.example.com' }),
        jwks: jwksJson([RSA_PUBLIC]),
      };
    },
    writes: [],
    conditions: [
      SOURCE_OK,
      'IssuerMatched=False/IssuerMismatch',
      NOT_PUBLISHED,
      NOT_VERIFIED,
      KT_NONE,
      'Ready=False/IssuerMismatch',
    ],
    events: ['Warning IssuerMismatch'],
    result: REQUEUE,
    check: (w) => {
      assert.equal(w.obj.status?.issuer, 'https://other.example.com');
      assert.deepEqual(w.store.calls, []);
    },
  },

  storageFailure('STORAGE_CREDENTIALS_INVALID', 'StorageCredentialsInvalid', 'setup'),
  storageFailure('SECRET_NOT_FOUND', 'StorageCredentialsInvalid', 'setup'),
  storageFailure('SECRET_NOT_ALLOWED', 'SecretNotAllowed', 'setup'),
  storageFailure('STORAGE_ENDPOINT_REFUSED', 'StorageEndpointRefused', 'setup'),
  storageFailure('STORAGE_BUCKET_NOT_FOUND', 'BucketNotFound', 'head'),
  storageFailure('STORAGE_ERROR', 'StorageError', 'head'),
  storageFailure('STORAGE_ACCESS_DENIED', 'StorageAccessDenied', 'put'),
  storageFailure('STORAGE_UNREACHABLE', 'StorageUnreachable', 'put'),
  {
    name: "storage: the discovery document's PUT is refused after the JWKS landed: Published=False/StorageAccessDenied",
    arrange: (w) => w.store.fail('put', err('STORAGE_ACCESS_DENIED'), DISCOVERY_KEY),
    writes: [jwksWrite([RSA_PUBLIC, EC_PUBLIC], 'missing')],
    conditions: [
      SOURCE_OK,
      ISSUER_OK,
      'Published=False/StorageAccessDenied',
      NOT_VERIFIED,
      KT_NONE,
      'Ready=False/StorageAccessDenied',
    ],
    events: ['Warning StorageAccessDenied'],
    result: REQUEUE,
  },
  {
    name: 'storage: another OidcPublisher wrote the discovery document: ObjectNotOwned, nothing written',
    arrange: (w) => w.store.seed(DISCOVERY_KEY, '{}\n', { metadata: ownedBy('uid-other', 'other') }),
    writes: [],
    conditions: [
      SOURCE_OK,
      ISSUER_OK,
      'Published=False/ObjectNotOwned',
      NOT_VERIFIED,
      KT_NONE,
      'Ready=False/ObjectNotOwned',
    ],
    events: ['Warning ObjectNotOwned'],
    result: REQUEUE,
    check: (w) => {
      assert.match(
        w.cluster.events[0]?.event.note ?? '',
        /written by OidcPublisher "other" \(uid uid-other\)/,
      );
      assert.equal(w.store.objects.get(DISCOVERY_KEY)?.body.toString(), '{}\n', 'left as it was');
    },
  },
  {
    name: 'storage: objects this publisher recorded writing, without owner metadata: rewritten to record the owner',
    spec: { verification: { enabled: false } },
    arrange: async (w) => {
      await afterFirstSync(w);
      for (const o of w.store.objects.values()) {
        o.metadata = { [HASH_METADATA_KEY]: o.metadata[HASH_METADATA_KEY] ?? '' };
      }
      w.restart();
    },
    writes: [jwksWrite([RSA_PUBLIC, EC_PUBLIC], 'owner not recorded'), discoveryWrite('owner not recorded')],
    conditions: [
      SOURCE_OK,
      ISSUER_OK,
      'Published=True/DocumentsPublished',
      'Verified=Unknown/VerificationDisabled',
      KT_NOT_YET,
      READY,
    ],
    events: ['Normal DocumentsPublished'],
    result: REQUEUE,
  },
  {
    name: 'an earlier OidcPublisher publishes to the same objects: TargetConflict, storage not touched',
    arrange: (w) => {
      w.cluster.apply(
        samplePublisher({
          metadata: { name: 'older', uid: 'uid-older', creationTimestamp: '2024-01-01T00:00:00Z' },
        }),
      );
    },
    writes: [],
    conditions: [
      SOURCE_OK,
      ISSUER_OK,
      'Published=False/TargetConflict',
      NOT_VERIFIED,
      KT_NONE,
      'Ready=False/TargetConflict',
    ],
    events: ['Warning TargetConflict'],
    result: REQUEUE,
    check: (w) => {
      assert.deepEqual(w.store.calls, []);
      assert.equal(w.view.reads, 0);
    },
  },

  verificationFailure('the bucket refuses anonymous reads (403)', 'NotReachable', (w) => {
    w.view.answer = { status: 403 };
  }),
  verificationFailure('a cache serves a discovery document of another issuer', 'IssuerMismatch', (w) => {
    w.view.cached.set(DISCOVERY_KEY, {
      body: Buffer.from(discoveryJson({ issuer: 'https://other.example.com' })),
    });
  }),
  verificationFailure(
    'a cache serves other JWKS bytes',
    'ContentMismatch',
    (w) => {
      w.view.cached.set(JWKS_KEY, { body: renderJwks(validateJwks(jwksJson([RSA_PUBLIC]))) });
    },
    (w) =>
      assert.deepEqual(w.store.calls, [
        { op: 'head', key: JWKS_KEY },
        { op: 'head', key: DISCOVERY_KEY },
      ]),
  ),
  verificationFailure('the discovery document is served as text/plain', 'WrongContentType', (w) => {
    w.view.cached.set(DISCOVERY_KEY, { contentType: 'text/plain' });
  }),
  verificationFailure(
    'the public issuer answers in 2.5 s (slowThreshold 2 s)',
    'TooSlow',
    (w) => {
      w.view.latencyMs = 2500;
    },
    (w) => assert.deepEqual(w.store.calls, [], 'served as published: no HEAD'),
  ),
  {
    name: 'after Verified=False/ContentMismatch: both objects rewritten whatever HEAD says (served content differs)',
    arrange: async (w) => {
      await afterFirstSync(w);
      w.view.cached.set(JWKS_KEY, { body: Buffer.from('{"keys":[]}\n') });
      await w.reconcile();
      w.view.cached.clear();
    },
    writes: [
      jwksWrite([RSA_PUBLIC, EC_PUBLIC], 'served content differs'),
      discoveryWrite('served content differs'),
    ],
    conditions: [SOURCE_OK, ISSUER_OK, 'Published=True/DocumentsPublished', VERIFIED, KT_NOT_YET, READY],
    events: ['Normal DocumentsPublished', 'Normal Ready'],
    result: REQUEUE,
  },

  {
    name: 'canary: in the sync that first publishes, a token signed with a published key verifies: its kid recorded',
    spec: CANARY_SPEC,
    arrange: (w) => issueToken(w, SOURCE_SIGNING_KEY, 'rsa-1'),
    writes: [jwksWrite([RSA_PUBLIC, EC_PUBLIC], 'missing'), discoveryWrite('missing')],
    conditions: [SOURCE_OK, ISSUER_OK, 'Published=True/DocumentsPublished', VERIFIED, KT_SIGNING, READY],
    // rsa-1 was published in this very sync: relying parties may still hold a JWKS without it.
    events: [...FIRST_SYNC_EVENTS, 'Warning SigningKeyNotTrusted'],
    result: REQUEUE,
    check: (w) => {
      assert.equal(w.obj.status?.verification?.signingKeyID, 'rsa-1');
      assert.deepEqual(w.cluster.tokenRequests, [
        {
          namespace: 'oidc-publisher-system',
          serviceAccount: 'oidc-publisher-canary',
          audience: CANARY_AUDIENCE,
        },
      ]);
    },
  },
  canaryCase(
    'the API server signs with a key that is not published',
    'CanaryRejected',
    KT_NOT_YET,
    (w) => issueToken(w, UNPUBLISHED_KEY, 'rsa-2'),
    (w) =>
      assert.match(
        w.obj.status?.conditions?.find((c) => c.type === 'Verified')?.message ?? '',
        /no key with kid "rsa-2"/,
      ),
  ),
  canaryCase('the TokenRequest is forbidden', 'CanaryTokenForbidden', KT_SIGNING, (w) => {
    w.cluster.token = () => ({ refused: 'forbidden', message: 'HTTP 403' });
  }),
  canaryCase('the ServiceAccount does not exist', 'CanaryTokenUnavailable', KT_SIGNING, (w) => {
    w.cluster.token = () => ({ refused: 'unavailable', message: 'HTTP 404' });
  }),

  {
    name: 'spec: a syncInterval under 10s: Ready=False/InvalidSpec, nothing read, no finalizer, not requeued',
    spec: { syncInterval: '1s' },
    writes: [],
    conditions: [
      'SourceAvailable=Unknown/NotAttempted',
      'IssuerMatched=Unknown/NotAttempted',
      'Published=Unknown/NotAttempted',
      'Verified=Unknown/NotAttempted',
      KT_NOT_ATTEMPTED,
      'Ready=False/InvalidSpec',
    ],
    events: [],
    result: { done: true },
    finalizers: [],
    check: (w) => {
      assert.equal(w.sourceReads, 0);
      assert.deepEqual(w.store.calls, []);
    },
  },
  {
    name: 'deleted with deletionPolicy Delete: deletes the discovery document, then the JWKS, then the finalizer',
    spec: { deletionPolicy: 'Delete' },
    arrange: async (w) => {
      await afterFirstSync(w);
      w.edit((o) => {
        o.metadata.deletionTimestamp = w.now.toISOString();
      });
    },
    writes: [],
    deletes: [DISCOVERY_KEY, JWKS_KEY],
    conditions: [],
    events: [],
    result: { done: true },
    finalizers: 'gone',
  },
  {
    name: 'deleted with deletionPolicy Delete, a JWKS another publisher wrote since: left in place, ObjectNotOwned',
    spec: { deletionPolicy: 'Delete' },
    arrange: async (w) => {
      await afterFirstSync(w);
      w.store.seed(JWKS_KEY, '{"keys":[]}\n', { metadata: ownedBy('uid-other', 'other') });
      w.edit((o) => {
        o.metadata.deletionTimestamp = w.now.toISOString();
      });
    },
    writes: [],
    deletes: [DISCOVERY_KEY],
    conditions: [],
    events: ['Warning ObjectNotOwned'],
    result: { done: true },
    finalizers: 'gone',
    check: (w) => assert.ok(w.store.objects.has(JWKS_KEY)),
  },
  {
    name: 'deleted with deletionPolicy Retain: the objects stay, the finalizer goes',
    arrange: async (w) => {
      await afterFirstSync(w);
      w.edit((o) => {
        o.metadata.deletionTimestamp = w.now.toISOString();
      });
    },
    writes: [],
    deletes: [],
    conditions: [],
    events: [],
    result: { done: true },
    finalizers: 'gone',
    check: (w) => {
      assert.deepEqual([...w.store.objects.keys()].sort(), [DISCOVERY_KEY, JWKS_KEY]);
      assert.deepEqual(w.store.calls, []);
    },
  },
];

/** What the bucket got in the last sync, with why each write was made. */
function seenWrites(w: World): SeenWrite[] {
  assert.deepEqual(
    w.planned.map((p) => p.object.key),
    w.store.writes.map((x) => x.key),
    'the writes reported are those that landed',
  );
  return w.store.writes.map((x, i) => {
    assert.equal(x.metadata[HASH_METADATA_KEY], x.bodySha256, `${x.key}: the recorded hash is the body's`);
    return {
      key: x.key,
      contentType: x.contentType,
      cacheControl: x.cacheControl,
      metadata: x.metadata,
      json: JSON.parse(x.body.toString('utf8')),
      why: w.planned[i]?.why ?? '(not reported)',
    };
  });
}

function conditionsOf(w: World): string[] {
  const conds = w.obj.status?.conditions ?? [];
  return CONDITION_ORDER.map((type) => {
    const c = conds.find((x) => x.type === type);
    return c ? `${c.type}=${c.status}/${c.reason}` : `${type} missing`;
  });
}

describe('Reconciler: one sync', () => {
  for (const c of cases) {
    it(c.name, async () => {
      const w = new World(samplePublisher(c.spec ? { spec: c.spec } : {}));
      await c.arrange?.(w);
      w.clearLog();

      const result = await w.reconcile();

      assert.deepEqual(result, c.result, 'what the work queue is told');
      assert.deepEqual(
        seenWrites(w),
        c.writes.map((x) => ({
          ...x,
          metadata: {
            [HASH_METADATA_KEY]: w.store.writes.find((y) => y.key === x.key)?.bodySha256 ?? '(not written)',
            [OWNER_UID_METADATA_KEY]: PUBLISHER_UID,
            [OWNER_NAME_METADATA_KEY]: PUBLISHER_NAME,
          },
        })),
        'the writes, in order',
      );
      assert.deepEqual(w.store.deletes, c.deletes ?? [], 'the deletes, in order');
      if (c.conditions.length === 0) {
        assert.deepEqual(w.cluster.statusPatches, [], 'no status written');
      } else {
        assert.equal(w.cluster.statusPatches.length, 1, 'status written once');
        assert.deepEqual(conditionsOf(w), c.conditions);
        for (const cond of w.obj.status?.conditions ?? [])
          assert.equal(cond.observedGeneration, 1, `${cond.type} carries observedGeneration`);
      }
      assert.deepEqual(
        w.cluster.events.map((e) => `${e.event.type} ${e.event.reason}`),
        c.events,
        'the Events recorded',
      );
      const left = w.cluster.objects.get(PUBLISHER_NAME);
      assert.deepEqual(
        left ? (left.metadata.finalizers ?? []) : 'gone',
        c.finalizers ?? [FINALIZER],
        'finalizers',
      );
      c.check?.(w);
    });
  }

  it('has a case for every condition reason', () => {
    const seen = new Set(cases.flatMap((c) => c.conditions.map((s) => s.split('/')[1])));
    const missing = Object.values(Reason).filter((r) => !seen.has(r));
    assert.deepEqual(missing, [], 'every condition reason needs a case in this table; these have none');
  });
});

describe('Reconciler: converging', () => {
  for (const enabled of [true, false]) {
    it(`writes nothing when reconciled again, nor after a restart (verification ${enabled ? 'on' : 'off'})`, async () => {
      const w = new World(samplePublisher({ spec: { verification: { enabled } } }));
      assert.deepEqual(await w.reconcile(), REQUEUE);
      assert.deepEqual(
        w.store.writes.map((x) => x.key),
        [JWKS_KEY, DISCOVERY_KEY],
        'the first sync writes both',
      );
      const written = new Map(w.store.writes.map((x) => [x.key, x.bodySha256]));

      for (const when of ['the second sync', 'the third sync', 'the first sync after a restart']) {
        if (when.includes('restart')) w.restart();
        w.clearLog();
        w.advance(SYNC_MS);
        assert.deepEqual(await w.reconcile(), REQUEUE, when);
        assert.deepEqual(w.store.writes, [], `no write in ${when}`);
        assert.equal(
          w.store.calls.filter((c) => c.op !== 'head').length,
          0,
          `${when} only HEADs, if anything`,
        );
        assert.equal(
          w.logs.some((l) => l.msg === 'up to date'),
          true,
          `${when} logs "up to date"`,
        );
        if (when !== 'the second sync') {
          assert.deepEqual(w.cluster.statusPatches, [], `no status write in ${when}`);
          assert.deepEqual(w.cluster.events, [], `no Event in ${when}`);
        }
      }
      assert.deepEqual(
        new Map([...w.store.objects].map(([k, o]) => [k, sha256Hex(o.body)])),
        written,
        'the bucket holds what the first sync wrote',
      );
      assert.equal(w.obj.status?.conditions?.find((c) => c.type === 'Published')?.reason, 'UpToDate');
    });
  }

  it('does nothing for an OidcPublisher that is gone', async () => {
    const w = new World();
    w.clearLog();
    assert.deepEqual(await w.reconcile('gone'), { done: true });
    assert.deepEqual(w.store.calls, []);
    assert.deepEqual(w.cluster.statusPatches, []);
    assert.equal(w.sourceReads, 0);
  });
});

describe('Reconciler: spec.sources with a source serving many keys', () => {
  it("publishes the other source's keys and names the source left out, rather than failing the publisher", async () => {
    const many = Array.from({ length: 100 }, (_, i) => ({ ...EC_PUBLIC, kid: `ec-${i}` }));
    const w = new World(
      samplePublisher({ spec: { sources: [{}, { kubeconfigSecretRef: { name: 'green' } }] } }),
    );
    w.source = { discovery: discoveryJson(), jwks: jwksJson([RSA_PUBLIC, OKP_PUBLIC]) };
    w.secretSources.set('green', { discovery: discoveryJson(), jwks: jwksJson(many) });

    assert.deepEqual(await w.reconcile(), REQUEUE);

    assert.deepEqual(conditionsOf(w), [
      'SourceAvailable=False/SourcesStale',
      ISSUER_OK,
      'Published=True/DocumentsPublished',
      VERIFIED,
      KT_NOT_YET,
      'Ready=False/SourcesStale',
    ]);
    const message = w.obj.status?.conditions?.find((c) => c.type === 'SourceAvailable')?.message ?? '';
    assert.match(
      message,
      /^source secret\/green: its 100 keys would bring the merged JWKS to 102 keys, past 100/,
    );
    const jwks = JSON.parse(String(w.store.objects.get(JWKS_KEY)?.body)) as { keys: JwkJson[] };
    assert.deepEqual(
      jwks.keys.map((k) => k.kid),
      ['ed-1', 'rsa-1'],
      "the cluster's keys, its new one with them",
    );
  });
});

describe('Reconciler: key trust metrics', () => {
  it('exposes KeysTrusted as the sync wrote it: SigningKeyNotTrusted until the trustedAt, then AllKeysTrusted', async () => {
    const registry = new Registry();
    const metrics = new Metrics(registry);
    const w = new World(samplePublisher({ spec: CANARY_SPEC }));
    issueToken(w, SOURCE_SIGNING_KEY, 'rsa-1');
    await w.newReconciler({ hooks: metrics }).reconcile(PUBLISHER_NAME);
    const series = async (name: string) =>
      (await registry.metrics()).split('\n').filter((l) => l.startsWith(`${name}{`));
    assert.deepEqual(await series('oidc_publisher_keys_trusted'), [
      `oidc_publisher_keys_trusted{publisher="${PUBLISHER_NAME}",reason="SigningKeyNotTrusted"} 0`,
    ]);
    const trustedAt = Math.max(...(w.obj.status?.keys ?? []).map((k) => Date.parse(k.trustedAt ?? '')));
    assert.ok(trustedAt > w.now.getTime(), 'the keys published now are trusted later');
    assert.deepEqual(await series('oidc_publisher_keys_trusted_at_timestamp_seconds'), [
      `oidc_publisher_keys_trusted_at_timestamp_seconds{publisher="${PUBLISHER_NAME}"} ${trustedAt / 1000}`,
    ]);

    w.advance(trustedAt - w.now.getTime() + 1000);
    issueToken(w, SOURCE_SIGNING_KEY, 'rsa-1');
    await w.newReconciler({ hooks: metrics }).reconcile(PUBLISHER_NAME);
    assert.deepEqual(await series('oidc_publisher_keys_trusted'), [
      `oidc_publisher_keys_trusted{publisher="${PUBLISHER_NAME}",reason="AllKeysTrusted"} 1`,
    ]);
  });
});

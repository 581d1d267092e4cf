import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { describe, it } from 'node:test';
import { MAX_SOURCE_KEYS, type PublicJwk, validateJwks } from '../../src/core/documents.ts';
import { mergeSources, type SourceRead, staleSummary } from '../../src/core/merge.ts';
import { prepare } from '../../src/core/plan.ts';
import {
  discoveryJson,
  EC_PUBLIC,
  ISSUER,
  type JwkJson,
  jwksJson,
  OKP_PUBLIC,
  RSA_PUBLIC,
} from './fixtures.ts';

const read = (name: string, keys: JwkJson[], discovery = discoveryJson()): SourceRead => ({
  name,
  documents: { discovery, jwks: jwksJson(keys) },
});

function kidsOf(documents: { jwks: Uint8Array | string }): string[] {
  return (JSON.parse(String(documents.jwks)) as { keys: { kid: string }[] }).keys.map((k) => k.kid);
}

describe('mergeSources: one key set from several clusters with one issuer', () => {
  it('merges the keys of every source, a key served by two sources once, in spec order', () => {
    const got = mergeSources(ISSUER, [
      read('cluster', [RSA_PUBLIC, EC_PUBLIC]),
      read('secret/green', [EC_PUBLIC, OKP_PUBLIC]),
    ]);
    assert.equal(got.kind, 'merged');
    if (got.kind !== 'merged') return;
    assert.deepEqual(kidsOf(got.documents), ['rsa-1', 'ec-1', 'ed-1']);
    assert.deepEqual(got.used, ['cluster', 'secret/green']);
    assert.deepEqual(got.stale, []);
  });

  const cases: { name: string; second: SourceRead; code: string; message: RegExp }[] = [
    {
      name: 'an unreachable source',
      second: {
        name: 'secret/green',
        error: { code: 'SOURCE_UNREACHABLE', message: 'connect ECONNREFUSED' },
      },
      code: 'SOURCE_UNREACHABLE',
      message: /ECONNREFUSED/,
    },
    {
      name: 'a source with another issuer',
      second: read('secret/green', [OKP_PUBLIC], discoveryJson({ issuer: 'https://other.example.com' })),
      code: 'ISSUER_MISMATCH',
      message:
        /its issuer "https:\/\/other\.example\.com" differs from spec\.issuerURL "https:\/\/issuer\.example\.com"/,
    },
    {
      name: 'a source serving a known kid with other key material',
      second: read('secret/green', [OKP_PUBLIC, { ...EC_PUBLIC, kid: 'rsa-1' }]),
      code: 'KID_CONFLICT',
      message: /serves kid "rsa-1" with other key material than source cluster; none of its keys is taken/,
    },
    {
      name: 'a source serving private key material',
      second: read('secret/green', [{ ...OKP_PUBLIC, d: 'secret' }]),
      code: 'DOCUMENT_INVALID',
      message: /private/,
    },
  ];
  for (const c of cases) {
    it(`leaves out ${c.name} (${c.code}) and publishes the others' keys`, () => {
      const got = mergeSources(ISSUER, [read('cluster', [RSA_PUBLIC]), c.second]);
      assert.equal(got.kind, 'merged');
      if (got.kind !== 'merged') return;
      assert.deepEqual(kidsOf(got.documents), ['rsa-1'], 'none of the stale source keys');
      assert.deepEqual(got.used, ['cluster']);
      assert.equal(got.stale.length, 1);
      assert.equal(got.stale[0]?.name, 'secret/green');
      assert.equal(got.stale[0]?.code, c.code);
      assert.match(got.stale[0]?.message ?? '', c.message);
    });
  }

  it('a later source cannot replace an earlier one’s key, whichever is listed first wins', () => {
    const other = generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey.export({ format: 'jwk' });
    const forged = { ...RSA_PUBLIC, n: other.n };
    const got = mergeSources(ISSUER, [read('secret/blue', [forged]), read('cluster', [RSA_PUBLIC])]);
    assert.equal(got.kind, 'merged');
    if (got.kind !== 'merged') return;
    assert.deepEqual(got.used, ['secret/blue']);
    assert.equal(got.stale[0]?.code, 'KID_CONFLICT');
  });

  it('takes the discovery document of the first usable source', () => {
    const first = discoveryJson({ claims_supported: ['sub'] });
    const got = mergeSources(ISSUER, [
      { name: 'cluster', error: { code: 'SOURCE_HTTP_ERROR', message: 'HTTP 503' } },
      read('secret/a', [RSA_PUBLIC], first),
      read('secret/b', [EC_PUBLIC]),
    ]);
    assert.equal(got.kind, 'merged');
    if (got.kind === 'merged') assert.equal(got.documents.discovery, first);
  });

  it('lists the signing algorithms of every source taken in the discovery document, and only theirs', () => {
    const es256 = discoveryJson({ id_token_signing_alg_values_supported: ['ES256'] });
    const got = mergeSources(ISSUER, [
      read('cluster', [RSA_PUBLIC]),
      read('secret/green', [EC_PUBLIC], es256),
      read(
        'secret/blue',
        [OKP_PUBLIC],
        discoveryJson({
          issuer: 'https://other.example.com',
          id_token_signing_alg_values_supported: ['EdDSA'],
        }),
      ),
    ]);
    assert.equal(got.kind, 'merged');
    if (got.kind !== 'merged') return;
    const doc = JSON.parse(String(got.documents.discovery)) as Record<string, unknown>;
    assert.deepEqual(doc.id_token_signing_alg_values_supported, ['RS256', 'ES256']);
    assert.deepEqual(
      { ...doc, id_token_signing_alg_values_supported: ['RS256'] },
      JSON.parse(discoveryJson()),
      'the rest is the first source document',
    );
    const same = mergeSources(ISSUER, [read('cluster', [RSA_PUBLIC]), read('secret/green', [EC_PUBLIC])]);
    if (same.kind === 'merged') assert.equal(same.documents.discovery, discoveryJson(), 'unchanged bytes');
  });

  it('is none when no source is usable, with every reason', () => {
    const got = mergeSources(ISSUER, [
      { name: 'cluster', error: { code: 'SOURCE_UNAUTHORIZED', message: 'HTTP 401' } },
      read('secret/green', [RSA_PUBLIC], discoveryJson({ issuer: 'https://elsewhere.example.com' })),
    ]);
    assert.equal(got.kind, 'none');
    assert.deepEqual(
      got.stale.map((s) => s.code),
      ['SOURCE_UNAUTHORIZED', 'ISSUER_MISMATCH'],
    );
    assert.match(staleSummary(got.stale), /^source cluster: HTTP 401; source secret\/green: its issuer/);
  });
});

/** `count` distinct EC keys (one key pair, kids ec-<prefix>-<i>): what a source with many keys serves. */
function manyKeys(prefix: string, count: number): JwkJson[] {
  return Array.from({ length: count }, (_, i) => ({ ...EC_PUBLIC, kid: `ec-${prefix}-${i}` }));
}

describe('mergeSources: each source validated on its own, the merged key set within the limit', () => {
  const cases: {
    name: string;
    reads: SourceRead[];
    used: string[];
    stale: string[];
    keys: number;
  }[] = [
    {
      name: `a first source with ${MAX_SOURCE_KEYS} keys: a later source's new key would pass the limit, that source is left out`,
      reads: [read('cluster', manyKeys('a', MAX_SOURCE_KEYS)), read('secret/green', [RSA_PUBLIC])],
      used: ['cluster'],
      stale: ['secret/green TOO_MANY_KEYS'],
      keys: MAX_SOURCE_KEYS,
    },
    {
      name: 'two sources with 60 keys each: the second left out, the first published',
      reads: [read('cluster', manyKeys('a', 60)), read('secret/green', manyKeys('b', 60))],
      used: ['cluster'],
      stale: ['secret/green TOO_MANY_KEYS'],
      keys: 60,
    },
    {
      name: 'a key both serve counts once: 99 + the shared one + one more fits',
      reads: [
        read('cluster', [...manyKeys('a', 99), RSA_PUBLIC]),
        read('secret/green', [RSA_PUBLIC]),
        read('secret/blue', [OKP_PUBLIC]),
      ],
      used: ['cluster', 'secret/green'],
      stale: ['secret/blue TOO_MANY_KEYS'],
      keys: MAX_SOURCE_KEYS,
    },
    {
      name: `a source with more than ${MAX_SOURCE_KEYS} keys is invalid on its own; the others are published`,
      reads: [read('cluster', manyKeys('a', MAX_SOURCE_KEYS + 1)), read('secret/green', [RSA_PUBLIC])],
      used: ['secret/green'],
      stale: ['cluster DOCUMENT_INVALID'],
      keys: 1,
    },
    {
      name: 'a later source fits after an earlier one was left out',
      reads: [
        read('cluster', manyKeys('a', 90)),
        read('secret/green', manyKeys('b', 20)),
        read('secret/blue', [RSA_PUBLIC]),
      ],
      used: ['cluster', 'secret/blue'],
      stale: ['secret/green TOO_MANY_KEYS'],
      keys: 91,
    },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const got = mergeSources(ISSUER, c.reads);
      assert.equal(got.kind, 'merged');
      if (got.kind !== 'merged') return;
      assert.deepEqual(got.used, c.used);
      assert.deepEqual(
        got.stale.map((s) => `${s.name} ${s.code}`),
        c.stale,
      );
      assert.equal(kidsOf(got.documents).length, c.keys);
      // What the merge gives is publishable: the limit is never left to the publish step.
      const prep = prepare(
        {
          issuerURL: ISSUER,
          jwksURI: `${ISSUER}/openid/v1/jwks`,
          cacheControl: 'public, max-age=300',
          keyRetentionMs: 0,
          storage: { prefix: '' },
        },
        got.documents,
      );
      assert.equal(prep.kind, 'ready', prep.kind === 'invalid' ? prep.error.message : prep.kind);
    });
  }

  it('names the source left out for the limit and says why', () => {
    const got = mergeSources(ISSUER, [
      read('cluster', manyKeys('a', 60)),
      read('secret/green', manyKeys('b', 60)),
    ]);
    assert.match(
      staleSummary(got.stale),
      /^source secret\/green: its 60 keys would bring the merged JWKS to 120 keys, past 100; the earlier sources' keys are published/,
    );
  });
});

describe('mergeSources: a key the operator published wins over every source', () => {
  const other = generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey.export({ format: 'jwk' });
  const swapped = { ...RSA_PUBLIC, n: other.n };
  const published = new Map(
    (validateJwks(jwksJson([RSA_PUBLIC, EC_PUBLIC])) as PublicJwk[]).map((k) => [k.kid, k]),
  );

  it('leaves out a source serving a published kid with other material while the source that served it is not read', () => {
    const got = mergeSources(
      ISSUER,
      [
        { name: 'cluster', error: { code: 'SOURCE_UNREACHABLE', message: 'connect ECONNREFUSED' } },
        read('secret/green', [swapped, OKP_PUBLIC]),
        read('secret/blue', [EC_PUBLIC]),
      ],
      published,
    );
    assert.equal(got.kind, 'merged');
    if (got.kind !== 'merged') return;
    assert.deepEqual(got.used, ['secret/blue']);
    assert.deepEqual(
      got.stale.map((s) => `${s.name} ${s.code}`),
      ['cluster SOURCE_UNREACHABLE', 'secret/green KID_CONFLICT'],
    );
    assert.match(
      got.stale[1]?.message ?? '',
      /serves kid "rsa-1" with other key material \(thumbprint [\w-]{43}\) than the published JWKS holds \(thumbprint [\w-]{43}\); the published key is kept/,
    );
    assert.deepEqual(kidsOf(got.documents), ['ec-1']);
  });

  it('leaves out a source serving a published key with another alg: relying parties check it', () => {
    const got = mergeSources(
      ISSUER,
      [
        { name: 'cluster', error: { code: 'SOURCE_UNREACHABLE', message: 'connect ECONNREFUSED' } },
        read('secret/green', [{ ...RSA_PUBLIC, alg: 'PS256' }]),
        read('secret/blue', [EC_PUBLIC]),
      ],
      published,
    );
    assert.deepEqual(
      got.stale.map((s) => `${s.name} ${s.code}`),
      ['cluster SOURCE_UNREACHABLE', 'secret/green KID_CONFLICT'],
    );
    assert.match(
      got.stale[1]?.message ?? '',
      /with other parameters \(alg, use\) than the published JWKS holds/,
    );
  });

  it('takes a source serving the published material, and keys never published', () => {
    const got = mergeSources(
      ISSUER,
      [read('cluster', [RSA_PUBLIC]), read('secret/green', [OKP_PUBLIC])],
      published,
    );
    assert.equal(got.kind, 'merged');
    if (got.kind === 'merged') assert.deepEqual(kidsOf(got.documents), ['rsa-1', 'ed-1']);
  });

  it('is none when the only usable source serves a published kid with other material', () => {
    const got = mergeSources(ISSUER, [read('cluster', [swapped])], published);
    assert.equal(got.kind, 'none');
    assert.equal(got.stale[0]?.code, 'KID_CONFLICT');
  });
});

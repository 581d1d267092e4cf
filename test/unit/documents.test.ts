import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { calculateJwkThumbprint } from 'jose';
import {
  jwkThumbprint,
  MAX_DOCUMENT_BYTES,
  type PublicJwk,
  renderDiscovery,
  renderJwks,
  sha256Hex,
  validateDiscovery,
  validateJwks,
} from '../../src/core/documents.ts';
import { OidcPublisherError } from '../../src/errors.ts';
import {
  discoveryJson,
  EC_PUBLIC,
  ISSUER,
  type JwkJson,
  jwksJson,
  OKP_PUBLIC,
  PUBLIC_JWKS_URI,
  RSA_PRIVATE,
  RSA_PUBLIC,
  SOURCE_JWKS_URI,
} from './fixtures.ts';

const PRIVATE_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'k', 'oth'] as const;

/** Asserts that `fn` throws DOCUMENT_INVALID with a message matching `message`. */
function assertInvalid(fn: () => unknown, message: RegExp): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof OidcPublisherError, `expected an OidcPublisherError, got ${String(err)}`);
    assert.equal(err.code, 'DOCUMENT_INVALID', `expected code DOCUMENT_INVALID, got ${err.code}`);
    assert.equal(err.retry, 'persistent', `expected retry class persistent, got ${err.retry}`);
    assert.match(err.message, message, `expected the message to match ${message}, got ${err.message}`);
    return true;
  });
}

function shortModulus(): string {
  const n = Buffer.from(String(RSA_PUBLIC.n), 'base64url');
  return n.subarray(0, 255).toString('base64url');
}

describe('validateJwks', () => {
  const accepted: { name: string; input: string | Uint8Array; expected: PublicJwk[] }[] = [
    {
      name: 'accepts an RSA signature key and keeps only its public members',
      input: jwksJson([RSA_PUBLIC]),
      expected: [
        {
          kty: 'RSA',
          kid: 'rsa-1',
          alg: 'RS256',
          use: 'sig',
          n: String(RSA_PUBLIC.n),
          e: String(RSA_PUBLIC.e),
        },
      ],
    },
    {
      name: 'accepts an EC P-256 key with ES256',
      input: jwksJson([EC_PUBLIC]),
      expected: [
        {
          kty: 'EC',
          kid: 'ec-1',
          alg: 'ES256',
          use: 'sig',
          crv: 'P-256',
          x: String(EC_PUBLIC.x),
          y: String(EC_PUBLIC.y),
        },
      ],
    },
    {
      name: 'accepts an Ed25519 OKP key without "use"',
      input: jwksJson([OKP_PUBLIC]),
      expected: [{ kty: 'OKP', kid: 'ed-1', alg: 'EdDSA', crv: 'Ed25519', x: String(OKP_PUBLIC.x) }],
    },
    {
      name: 'accepts the same document given as bytes',
      input: new TextEncoder().encode(jwksJson([OKP_PUBLIC])),
      expected: [{ kty: 'OKP', kid: 'ed-1', alg: 'EdDSA', crv: 'Ed25519', x: String(OKP_PUBLIC.x) }],
    },
    {
      name: 'drops unknown public members such as x5t',
      input: jwksJson([{ ...OKP_PUBLIC, x5t: 'abc', ext: true }]),
      expected: [{ kty: 'OKP', kid: 'ed-1', alg: 'EdDSA', crv: 'Ed25519', x: String(OKP_PUBLIC.x) }],
    },
  ];
  for (const { name, input, expected } of accepted) {
    it(name, () => {
      const got = validateJwks(input);
      assert.deepEqual(got, expected, `expected ${JSON.stringify(expected)}, got ${JSON.stringify(got)}`);
    });
  }

  it('returns several keys in source order', () => {
    const got = validateJwks(jwksJson([RSA_PUBLIC, EC_PUBLIC, OKP_PUBLIC])).map((k) => k.kid);
    assert.deepEqual(got, ['rsa-1', 'ec-1', 'ed-1'], `expected kids in source order, got ${got.join(', ')}`);
  });

  const refused: { name: string; input: string | Uint8Array; expected: RegExp }[] = [
    ...PRIVATE_MEMBERS.map((member) => ({
      name: `refuses a key carrying the private member "${member}"`,
      input: jwksJson([{ ...RSA_PUBLIC, [member]: 'AQAB' }]),
      expected: new RegExp(`private or symmetric key material \\(${member}\\)`),
    })),
    {
      name: 'refuses a full RSA private key and names every private member',
      input: jwksJson([RSA_PRIVATE]),
      expected: /\(d, p, q, dp, dq, qi\): refusing to publish it/,
    },
    {
      name: 'refuses a symmetric key (kty oct) even without "k"',
      input: jwksJson([{ kty: 'oct', kid: 'hmac', alg: 'HS256' }]),
      expected: /symmetric key \(kty "oct"\)/,
    },
    {
      name: 'refuses a symmetric key with its secret "k"',
      input: jwksJson([{ kty: 'oct', kid: 'hmac', alg: 'HS256', k: 'c2VjcmV0' }]),
      expected: /private or symmetric key material \(k\)/,
    },
    {
      name: 'refuses a key without "kid"',
      input: jwksJson([{ ...RSA_PUBLIC, kid: undefined }]),
      expected: /keys\[0\] has no "kid"/,
    },
    {
      name: 'refuses a key with an empty "kid"',
      input: jwksJson([{ ...RSA_PUBLIC, kid: '' }]),
      expected: /keys\[0\] has no "kid"/,
    },
    {
      name: 'refuses a key whose "kid" is not a string',
      input: jwksJson([{ ...RSA_PUBLIC, kid: 7 }]),
      expected: /keys\[0\] has no "kid"/,
    },
    {
      name: 'refuses a "kid" longer than 256 characters',
      input: jwksJson([{ ...RSA_PUBLIC, kid: 'k'.repeat(257) }]),
      expected: /"kid" longer than 256 characters/,
    },
    {
      name: 'refuses two keys with the same kid',
      input: jwksJson([RSA_PUBLIC, { ...EC_PUBLIC, kid: 'rsa-1' }]),
      expected: /keys\[1\] repeats kid "rsa-1"/,
    },
    {
      name: 'refuses an empty key set',
      input: jwksJson([]),
      expected: /"keys" is empty/,
    },
    {
      name: 'refuses a document without "keys"',
      input: '{}',
      expected: /"keys" is missing or not an array/,
    },
    {
      name: 'refuses "keys" that is not an array',
      input: '{"keys":{"kid":"a"}}',
      expected: /"keys" is missing or not an array/,
    },
    {
      name: 'refuses more than 100 keys',
      input: jwksJson(Array.from({ length: 101 }, (_, i) => ({ ...OKP_PUBLIC, kid: `k${i}` }))),
      expected: /101 keys; at most 100/,
    },
    {
      name: 'refuses a key entry that is not an object',
      input: jwksJson([RSA_PUBLIC, 'rsa-2']),
      expected: /keys\[1\] is not an object/,
    },
    {
      name: 'refuses a JSON array at the top level',
      input: '[]',
      expected: /expected a JSON object, got an array/,
    },
    {
      name: 'refuses a JSON string at the top level',
      input: '"keys"',
      expected: /expected a JSON object, got string/,
    },
    {
      name: 'refuses JSON null',
      input: 'null',
      expected: /expected a JSON object/,
    },
    {
      name: 'refuses text that is not JSON',
      input: '{"keys": [',
      expected: /JWKS: not valid JSON/,
    },
    {
      name: 'refuses a document larger than 1 MiB before parsing it',
      input: `${jwksJson([OKP_PUBLIC])}${' '.repeat(MAX_DOCUMENT_BYTES)}`,
      expected: /larger than 1048576 bytes/,
    },
    {
      name: 'counts the size limit in bytes, not characters',
      input: `${jwksJson([OKP_PUBLIC])}${'é'.repeat(MAX_DOCUMENT_BYTES / 2)}`,
      expected: /larger than 1048576 bytes/,
    },
    {
      name: 'refuses an RSA modulus shorter than 2048 bits',
      input: jwksJson([{ ...RSA_PUBLIC, n: shortModulus() }]),
      expected: /RSA modulus shorter than 2048 bits/,
    },
    {
      name: 'refuses an EC algorithm on an RSA key',
      input: jwksJson([{ ...RSA_PUBLIC, alg: 'ES256' }]),
      expected: /"alg" "ES256", not valid for RSA/,
    },
    {
      name: 'refuses an RSA algorithm on an EC key',
      input: jwksJson([{ ...EC_PUBLIC, alg: 'RS256' }]),
      expected: /"alg" "RS256", not valid for EC/,
    },
    {
      name: 'refuses a symmetric algorithm on an RSA key',
      input: jwksJson([{ ...RSA_PUBLIC, alg: 'HS256' }]),
      expected: /"alg" "HS256", not valid for RSA/,
    },
    {
      name: 'refuses a key without "alg"',
      input: jwksJson([{ ...RSA_PUBLIC, alg: undefined }]),
      expected: /has no "alg"/,
    },
    {
      name: 'refuses an encryption key (use "enc")',
      input: jwksJson([{ ...RSA_PUBLIC, use: 'enc' }]),
      expected: /"use" "enc", not "sig"/,
    },
    {
      name: 'refuses an unsupported kty',
      input: jwksJson([{ ...RSA_PUBLIC, kty: 'DSA' }]),
      expected: /unsupported "kty" "DSA"/,
    },
    {
      name: 'refuses an EC key on an OKP curve',
      input: jwksJson([{ ...EC_PUBLIC, crv: 'Ed25519' }]),
      expected: /unsupported "crv" "Ed25519" for EC/,
    },
    {
      name: 'refuses an OKP key on an EC curve',
      input: jwksJson([{ ...OKP_PUBLIC, crv: 'P-256' }]),
      expected: /unsupported "crv" "P-256" for OKP/,
    },
    {
      name: 'refuses a curve name that is an Object.prototype member',
      input: jwksJson([{ ...EC_PUBLIC, crv: 'constructor' }]),
      expected: /unsupported "crv" "constructor" for EC/,
    },
    {
      name: 'refuses a modulus that is not base64url',
      input: jwksJson([{ ...RSA_PUBLIC, n: 'ab+/cd==' }]),
      expected: /no valid base64url "n"/,
    },
    {
      name: 'refuses an EC key without "y"',
      input: jwksJson([{ ...EC_PUBLIC, y: undefined }]),
      expected: /no valid base64url "y"/,
    },
    {
      name: 'reports the first five problems and counts the rest',
      input: jwksJson(Array.from({ length: 7 }, () => ({ ...OKP_PUBLIC, kid: undefined }))),
      expected: /keys\[4\] has no "kid"; and 2 more$/,
    },
  ];
  for (const { name, input, expected } of refused) {
    it(name, () => assertInvalid(() => validateJwks(input), expected));
  }

  it('accepts a valid document of exactly 1 MiB', () => {
    const doc = jwksJson([OKP_PUBLIC]);
    const padded = doc + ' '.repeat(MAX_DOCUMENT_BYTES - Buffer.byteLength(doc));
    assert.equal(Buffer.byteLength(padded), MAX_DOCUMENT_BYTES);
    const got = validateJwks(padded);
    assert.equal(got.length, 1, `expected one key, got ${got.length}`);
  });

  it('chains the JSON parser error as the cause', () => {
    assert.throws(
      () => validateJwks('{'),
      (err: unknown) => err instanceof OidcPublisherError && err.cause instanceof SyntaxError,
    );
  });
});

describe('validateDiscovery', () => {
  it('accepts the API server discovery document and returns its issuer and jwks_uri', () => {
    const got = validateDiscovery(discoveryJson());
    assert.equal(got.issuer, ISSUER, `expected issuer ${ISSUER}, got ${got.issuer}`);
    assert.equal(got.jwksURI, SOURCE_JWKS_URI, `expected jwks_uri ${SOURCE_JWKS_URI}, got ${got.jwksURI}`);
    assert.deepEqual(got.document, JSON.parse(discoveryJson()));
  });

  it('accepts a document with only issuer and jwks_uri', () => {
    const got = validateDiscovery(JSON.stringify({ issuer: ISSUER, jwks_uri: SOURCE_JWKS_URI }));
    assert.equal(got.issuer, ISSUER);
  });

  const refused: { name: string; input: string; expected: RegExp }[] = [
    {
      name: 'refuses a document without issuer',
      input: discoveryJson({ issuer: undefined }),
      expected: /"issuer" is missing or not a string/,
    },
    {
      name: 'refuses an issuer that is not a string',
      input: discoveryJson({ issuer: 42 }),
      expected: /"issuer" is missing or not a string/,
    },
    {
      name: 'refuses an http issuer',
      input: discoveryJson({ issuer: 'http://issuer.example.com' }),
      expected: /"issuer" is not an https URL: "http:\/\/issuer.example.com"/,
    },
    {
      name: 'refuses an issuer that is not a URL',
      input: discoveryJson({ issuer: 'kubernetes.default.svc' }),
      expected: /"issuer" is not an https URL/,
    },
    {
      name: 'refuses a document without jwks_uri',
      input: discoveryJson({ jwks_uri: undefined }),
      expected: /"jwks_uri" is missing or not a string/,
    },
    {
      name: 'refuses an empty jwks_uri',
      input: discoveryJson({ jwks_uri: '' }),
      expected: /"jwks_uri" is missing or not a string/,
    },
    {
      name: 'refuses response_types_supported that is not an array of strings',
      input: discoveryJson({ response_types_supported: 'id_token' }),
      expected: /"response_types_supported" must be an array of strings/,
    },
    {
      name: 'refuses id_token_signing_alg_values_supported holding a number',
      input: discoveryJson({ id_token_signing_alg_values_supported: ['RS256', 256] }),
      expected: /"id_token_signing_alg_values_supported" must be an array of strings/,
    },
    {
      name: 'reports a missing issuer and a missing jwks_uri together',
      input: '{}',
      expected: /"issuer" is missing or not a string; "jwks_uri" is missing or not a string/,
    },
    { name: 'refuses text that is not JSON', input: 'issuer: x', expected: /not valid JSON/ },
    { name: 'refuses a JSON array', input: '[]', expected: /expected a JSON object, got an array/ },
    {
      name: 'refuses a document larger than 1 MiB',
      input: discoveryJson({ pad: 'x'.repeat(MAX_DOCUMENT_BYTES) }),
      expected: /larger than 1048576 bytes/,
    },
    {
      // 20 KB of brackets used to make rendering overflow the stack (a RangeError, not a refusal).
      name: 'refuses a document nested deeper than 32 levels, however deep',
      input: `${discoveryJson().slice(0, -1)},"x":${'['.repeat(10_000)}${']'.repeat(10_000)}}`,
      expected: /nested more than 32 levels deep/,
    },
  ];
  for (const { name, input, expected } of refused) {
    it(name, () => assertInvalid(() => validateDiscovery(input), expected));
  }
});

describe('renderJwks', () => {
  it('renders the same bytes whatever the order of the keys and of their members', () => {
    const reordered = (k: JwkJson): JwkJson => Object.fromEntries(Object.entries(k).reverse());
    const a = renderJwks(validateJwks(jwksJson([RSA_PUBLIC, EC_PUBLIC, OKP_PUBLIC])));
    const b = renderJwks(validateJwks(jwksJson([OKP_PUBLIC, EC_PUBLIC, RSA_PUBLIC].map(reordered))));
    assert.ok(a.equals(b), `expected identical bytes, got\n${a}\nand\n${b}`);
  });

  it('sorts the keys by kid', () => {
    const keys = validateJwks(
      jwksJson([
        { ...OKP_PUBLIC, kid: 'b' },
        { ...OKP_PUBLIC, kid: 'C' },
        { ...OKP_PUBLIC, kid: 'a' },
      ]),
    );
    const kids = (JSON.parse(renderJwks(keys).toString()) as { keys: { kid: string }[] }).keys.map(
      (k) => k.kid,
    );
    assert.deepEqual(
      kids,
      ['C', 'a', 'b'],
      `expected kids in code-unit order C, a, b; got ${kids.join(', ')}`,
    );
  });

  it('writes each key’s members in the fixed order kty, kid, use, alg, crv, n, e, x, y', () => {
    const body = JSON.parse(renderJwks(validateJwks(jwksJson([RSA_PUBLIC, EC_PUBLIC]))).toString()) as {
      keys: Record<string, string>[];
    };
    const orders = body.keys.map((k) => Object.keys(k).join(','));
    assert.deepEqual(orders, ['kty,kid,use,alg,crv,x,y', 'kty,kid,use,alg,n,e'], `got ${orders.join(' | ')}`);
  });

  it('never emits a private member, even when handed a key object that carries one', () => {
    const [key] = validateJwks(jwksJson([RSA_PUBLIC]));
    const leaky = { ...key, d: 'PRIVATE', p: 'PRIVATE', k: 'PRIVATE', oth: [] } as PublicJwk;
    const text = renderJwks([leaky]).toString();
    assert.doesNotMatch(text, /PRIVATE|"oth"/, `expected no private member, got ${text}`);
  });

  it('ends with a newline and parses as JSON', () => {
    const body = renderJwks(validateJwks(jwksJson([OKP_PUBLIC]))).toString();
    assert.ok(body.endsWith('}\n'), `expected a trailing newline, got ${JSON.stringify(body.slice(-3))}`);
    assert.doesNotThrow(() => JSON.parse(body));
  });
});

describe('renderDiscovery', () => {
  const parsed = (b: Buffer): Record<string, unknown> => JSON.parse(b.toString()) as Record<string, unknown>;

  it('renders the same bytes whatever the order of the source fields', () => {
    const source = JSON.parse(discoveryJson({ claims_supported: ['sub', 'iss'] })) as Record<string, unknown>;
    const reversed = JSON.stringify(Object.fromEntries(Object.entries(source).reverse()));
    const a = renderDiscovery(validateDiscovery(JSON.stringify(source)), PUBLIC_JWKS_URI);
    const b = renderDiscovery(validateDiscovery(reversed), PUBLIC_JWKS_URI);
    assert.ok(a.equals(b), `expected identical bytes, got\n${a}\nand\n${b}`);
  });

  it('rewrites jwks_uri to the public URI', () => {
    const doc = parsed(renderDiscovery(validateDiscovery(discoveryJson()), PUBLIC_JWKS_URI));
    assert.equal(doc.jwks_uri, PUBLIC_JWKS_URI, `expected ${PUBLIC_JWKS_URI}, got ${String(doc.jwks_uri)}`);
    assert.equal(doc.issuer, ISSUER);
  });

  it('puts issuer first, jwks_uri second and sorts the other fields', () => {
    const doc = parsed(
      renderDiscovery(validateDiscovery(discoveryJson({ a_first: 1, z_last: 2 })), PUBLIC_JWKS_URI),
    );
    const got = Object.keys(doc);
    const expected = [
      'issuer',
      'jwks_uri',
      'a_first',
      'id_token_signing_alg_values_supported',
      'response_types_supported',
      'subject_types_supported',
      'z_last',
    ];
    assert.deepEqual(got, expected, `expected ${expected.join(',')}, got ${got.join(',')}`);
  });

  it('sorts nested objects and keeps the order of arrays', () => {
    const doc = parsed(
      renderDiscovery(validateDiscovery(discoveryJson({ nested: { b: 1, a: [3, 1, 2] } })), PUBLIC_JWKS_URI),
    );
    const nested = doc.nested as Record<string, unknown>;
    assert.deepEqual(Object.keys(nested), ['a', 'b']);
    assert.deepEqual(nested.a, [3, 1, 2]);
  });

  it('ends with a newline', () => {
    const body = renderDiscovery(validateDiscovery(discoveryJson()), PUBLIC_JWKS_URI).toString();
    assert.ok(body.endsWith('}\n'), `expected a trailing newline, got ${JSON.stringify(body.slice(-3))}`);
  });
});

describe('sha256Hex', () => {
  it('returns the lowercase hex SHA-256 of the bytes', () => {
    const got = sha256Hex(Buffer.from('abc'));
    const expected = 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad';
    assert.equal(got, expected, `expected ${expected}, got ${got}`);
  });
});

describe('validateJwks and renderJwks on arbitrary input (property)', () => {
  const member = (values: fc.Arbitrary<unknown>): fc.Arbitrary<unknown> =>
    fc.oneof(values, fc.jsonValue({ maxDepth: 2 }));
  const b64 = fc
    .uint8Array({ minLength: 1, maxLength: 300 })
    .map((bytes) => Buffer.from(bytes).toString('base64url'));
  /** JSON-ish JWKs: often close to valid, sometimes with private members, sometimes garbage. */
  const jwk: fc.Arbitrary<unknown> = fc.oneof(
    fc.record(
      {
        kty: member(fc.constantFrom('RSA', 'EC', 'OKP', 'oct', 'DSA')),
        kid: member(fc.string({ maxLength: 8 })),
        alg: member(fc.constantFrom('RS256', 'PS512', 'ES256', 'ES512', 'EdDSA', 'Ed25519', 'HS256', 'none')),
        use: member(fc.constantFrom('sig', 'enc')),
        crv: member(fc.constantFrom('P-256', 'P-384', 'P-521', 'Ed25519', 'X25519', 'toString')),
        n: member(fc.oneof(b64, fc.constant(String(RSA_PUBLIC.n)))),
        e: member(fc.constantFrom('AQAB', 'Aw')),
        x: member(b64),
        y: member(b64),
        d: member(b64),
        p: member(b64),
        q: member(b64),
        dp: member(b64),
        dq: member(b64),
        qi: member(b64),
        k: member(b64),
        oth: member(fc.constant([])),
      },
      { requiredKeys: [] },
    ),
    fc.constantFrom(RSA_PUBLIC, EC_PUBLIC, OKP_PUBLIC, RSA_PRIVATE),
    fc.jsonValue({ maxDepth: 3 }),
  );
  const documents: fc.Arbitrary<string> = fc.oneof(
    fc.array(jwk, { maxLength: 4 }).map((keys) => jwksJson(keys)),
    fc.jsonValue({ maxDepth: 3 }).map((v) => JSON.stringify(v)),
    fc.string({ maxLength: 20 }),
  );

  it('either returns keys whose rendering holds no private member, or throws DOCUMENT_INVALID', () => {
    let acceptedCount = 0;
    fc.assert(
      fc.property(documents, (text) => {
        let keys: PublicJwk[];
        try {
          keys = validateJwks(text);
        } catch (err) {
          if (!(err instanceof OidcPublisherError) || err.code !== 'DOCUMENT_INVALID') {
            assert.fail(`expected DOCUMENT_INVALID, got ${String(err)} for ${text}`);
          }
          return;
        }
        acceptedCount++;
        const rendered = renderJwks(keys).toString();
        const body = JSON.parse(rendered) as { keys: Record<string, unknown>[] };
        assert.equal(body.keys.length, keys.length, `expected ${keys.length} keys in ${rendered}`);
        for (const key of body.keys) {
          for (const m of PRIVATE_MEMBERS) {
            assert.ok(!(m in key), `expected no "${m}" member in the rendered JWKS, got ${rendered}`);
          }
        }
        const again = renderJwks(validateJwks(rendered)).toString();
        assert.equal(again, rendered, 'expected rendering a rendered JWKS to give the same bytes');
      }),
      { numRuns: 500 },
    );
    assert.ok(acceptedCount > 0, 'expected the generator to produce some valid key sets');
  });
});

describe('jwkThumbprint: what identifies a key', () => {
  it("is the RFC 7638 SHA-256 thumbprint (the RFC's example of 3.1)", () => {
    const rfc = {
      kty: 'RSA',
      n: '0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw',
      e: 'AQAB',
      alg: 'RS256',
      kid: '2011-04-29',
    };
    assert.equal(jwkThumbprint(rfc), 'NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs');
  });

  it('agrees with jose for each key type, and ignores kid, alg and use', async () => {
    for (const key of [RSA_PUBLIC, EC_PUBLIC, OKP_PUBLIC]) {
      const want = await calculateJwkThumbprint(key as Parameters<typeof calculateJwkThumbprint>[0]);
      assert.equal(jwkThumbprint(key), want, `${String(key.kty)} thumbprint`);
      assert.equal(jwkThumbprint({ ...key, kid: 'other', alg: 'x', use: 'enc' }), want);
    }
  });

  it('is undefined for what is not a key of a known type (a status record is input)', () => {
    assert.equal(jwkThumbprint({ kty: 'oct', k: 'AAAA' }), undefined);
    assert.equal(jwkThumbprint({ kty: 'RSA', n: 'AQAB' }), undefined);
    assert.equal(jwkThumbprint({ ...EC_PUBLIC, y: 7 }), undefined);
    assert.equal(
      jwkThumbprint(JSON.parse('{"__proto__": {"kty": "OKP"}, "crv": "Ed25519", "x": "AA"}')),
      undefined,
    );
  });
});

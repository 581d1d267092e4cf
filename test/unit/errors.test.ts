import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  describeError,
  type ErrorCode,
  ErrorCodes,
  isOidcPublisherError,
  OidcPublisherError,
  type RetryClass,
  redactUrl,
  redactUrls,
  retryClassOf,
} from '../../src/errors.ts';

describe('OidcPublisherError', () => {
  it('carries its code, name, message and chained cause', () => {
    const cause = new Error('ECONNREFUSED');
    const err = new OidcPublisherError('SOURCE_UNREACHABLE', 'could not reach', { cause });
    assert.equal(err.code, 'SOURCE_UNREACHABLE');
    assert.equal(err.name, 'OidcPublisherError');
    assert.equal(err.message, 'could not reach');
    assert.equal(err.cause, cause, 'expected the cause to be chained');
    assert.ok(err instanceof Error, 'expected an Error');
  });

  const retries: { name: string; input: ErrorCode; expected: RetryClass }[] = [
    { name: 'treats an invalid spec as terminal', input: 'SPEC_INVALID', expected: 'terminal' },
    { name: 'treats an invalid configuration as terminal', input: 'CONFIG_INVALID', expected: 'terminal' },
    {
      name: 'retries an unreachable source with backoff',
      input: 'SOURCE_UNREACHABLE',
      expected: 'transient',
    },
    { name: 'retries a storage 5xx with backoff', input: 'STORAGE_ERROR', expected: 'transient' },
    {
      name: 'waits for the sync interval after a refused kubeconfig',
      input: 'KUBECONFIG_REFUSED',
      expected: 'persistent',
    },
    {
      name: 'waits for the sync interval after invalid documents',
      input: 'DOCUMENT_INVALID',
      expected: 'persistent',
    },
    {
      name: 'waits for the sync interval after a missing bucket',
      input: 'STORAGE_BUCKET_NOT_FOUND',
      expected: 'persistent',
    },
  ];
  for (const { name, input, expected } of retries) {
    it(name, () => {
      const got = new OidcPublisherError(input, 'x').retry;
      assert.equal(got, expected, `expected ${input} to be ${expected}, got ${got}`);
    });
  }

  it('gives every code a retry class and a summary', () => {
    for (const [code, { retry, summary }] of Object.entries(ErrorCodes)) {
      assert.ok(
        ['transient', 'persistent', 'terminal'].includes(retry),
        `${code}: unexpected retry ${retry}`,
      );
      assert.ok(summary.length > 0, `${code}: expected a summary`);
    }
  });
});

describe('retryClassOf and describeError', () => {
  it('treats unknown thrown values as transient', () => {
    assert.equal(retryClassOf(new TypeError('boom')), 'transient');
    assert.equal(retryClassOf('boom'), 'transient');
    assert.equal(retryClassOf(new OidcPublisherError('SPEC_INVALID', 'x')), 'terminal');
  });

  it('recognises only OidcPublisherError instances', () => {
    assert.equal(isOidcPublisherError(new OidcPublisherError('STORAGE_ERROR', 'x')), true);
    assert.equal(isOidcPublisherError(Object.assign(new Error('x'), { code: 'STORAGE_ERROR' })), false);
  });

  it('describes an Error by its message and anything else as a string', () => {
    assert.equal(describeError(new Error('disk full')), 'disk full');
    assert.equal(describeError(42), '42');
  });
});

describe('URLs in messages', () => {
  const urls: { name: string; input: string; expected: string }[] = [
    {
      name: 'keeps a URL without credentials',
      input: 'https://h:6443/openid/v1/jwks',
      expected: 'https://h:6443/openid/v1/jwks',
    },
    {
      name: 'redacts a user name and password',
      input: 'https://admin:pw@h:6443/x',
      expected: 'https://[redacted]@h:6443/x',
    },
    { name: 'redacts a user name alone', input: 'https://tok@h', expected: 'https://[redacted]@h' },
    {
      name: 'redacts up to the last @ of the authority',
      input: 'https://a@b:c@h/p@q',
      expected: 'https://[redacted]@h/p@q',
    },
    { name: 'redacts a query', input: 'https://h/c/k?sv=1&sig=abc', expected: 'https://h/c/k?[redacted]' },
    { name: 'redacts a fragment', input: 'https://h/#access_token=abc', expected: 'https://h/#[redacted]' },
    { name: 'redacts both', input: 'https://u:p@h/x?t=1#f', expected: 'https://[redacted]@h/x?[redacted]' },
  ];
  for (const { name, input, expected } of urls) {
    it(name, () => assert.equal(redactUrl(input), expected));
  }

  it('redacts every URL in a text, quoted or not, and leaves the rest', () => {
    assert.equal(
      redactUrls(
        'GET https://u:pw@a.example.com/x: HTTP 500; see "http://b.example.com/?token=t" and s3://bucket/key',
      ),
      'GET https://[redacted]@a.example.com/x: HTTP 500; see "http://b.example.com/?[redacted]" and s3://bucket/key',
    );
  });

  it('redacts user info whose password holds a quote or a space, and user:password@host without a scheme', () => {
    const cases: [string, string][] = [
      [
        "GET https://user:pa'ss@api.example.com/x: refused",
        'GET https://[redacted]@api.example.com/x: refused',
      ],
      ['GET https://user:pa"ss@api.example.com/x', 'GET https://[redacted]@api.example.com/x'],
      ['GET https://user:pa ss@api.example.com/x', 'GET https://[redacted]@api.example.com/x'],
      ['dial user:secret@api.example.com:6443: refused', 'dial [redacted]@api.example.com:6443: refused'],
      ['server "admin:pw@198.18.0.1:6443"', 'server "[redacted]@198.18.0.1:6443"'],
      ['write to ops@example.com at 12:30', 'write to ops@example.com at 12:30'],
    ];
    for (const [input, expected] of cases) assert.equal(redactUrls(input), expected, input);
  });

  it('never puts credentials of a URL into an error message, a condition or a log line', () => {
    const err = new OidcPublisherError(
      'SOURCE_UNREACHABLE',
      'GET https://admin:s3cret@h:6443/openid/v1/jwks: refused',
    );
    assert.equal(err.message, 'GET https://[redacted]@h:6443/openid/v1/jwks: refused');
    assert.equal(
      describeError(new Error('fetch https://h/?access_token=s3cret failed')),
      'fetch https://h/?[redacted] failed',
    );
  });
});

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  describeError,
  type ErrorCode,
  ErrorCodes,
  isOidcPublisherError,
  OidcPublisherError,
  type RetryClass,
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

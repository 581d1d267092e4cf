import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ApiException } from '@kubernetes/client-node';
import { serializeError } from '../../src/log.ts';

describe('serializeError', () => {
  it('logs a client-node ApiException by code and reason, never its response headers or body', () => {
    const err = new ApiException(
      403,
      'Unknown API Status Code!',
      JSON.stringify({
        kind: 'Status',
        reason: 'Forbidden',
        message: 'user "system:serviceaccount:x:y" secret-ish',
      }),
      { authorization: 'Bearer should-not-appear' },
    );
    const out = serializeError(err);
    assert.equal(out.message, 'API server answered HTTP 403 Forbidden');
    assert.equal(out.code, 403);
    assert.doesNotMatch(JSON.stringify(out), /should-not-appear|secret-ish|Bearer/);
  });

  it('logs the message of an error not ours without the user info, query or fragment of a URL in it', () => {
    const out = serializeError(
      new TypeError('fetch failed: https://admin:s3cret@h:6443/x?token=s3cret#s3cret'),
    );
    assert.equal(out.message, 'fetch failed: https://[redacted]@h:6443/x?[redacted]');
  });

  it('keeps the message of an ordinary error, with its code and the codes of its causes', () => {
    const cause = Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' });
    const out = serializeError(
      Object.assign(new Error('GET https://x: connection refused', { cause }), { code: 'E1' }),
    );
    assert.equal(out.message, 'GET https://x: connection refused');
    assert.equal(out.code, 'E1');
    assert.deepEqual(out.causes, ['Error:ECONNREFUSED']);
  });

  it("logs no cause name or code that is not a short word: a storage endpoint's error code may be a token it was sent", () => {
    const token = 'IQoJb3JpZ2luX2VjEJr//////////wEaCXVzLWVhc3QtMSJHMEUCIQDexample+token==';
    const cause = Object.assign(new Error('m'), { name: token, code: 'A'.repeat(40 * 1024) });
    const out = serializeError(new Error('GET s3://b/k: access denied (HTTP 403)', { cause }));
    assert.deepEqual(out.causes, ['?:?']);
    assert.ok(!JSON.stringify(out).includes('example+token'), JSON.stringify(out).slice(0, 200));
  });
});

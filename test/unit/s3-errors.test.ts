/**
 * S3 errors mapped to ours: the code decides the retry class and the condition
 * reason, the message names the request and says what went wrong, also when
 * S3 gave no error code (a HEAD answer has no body, and the SDK calls it "Unknown"),
 * or a code that is not a short word (a hostile endpoint's, which would go into status).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { S3ServiceException } from '@aws-sdk/client-s3';
import { s3Error } from '../../src/stores/s3.ts';

function sdkError(name: string, status: number): S3ServiceException {
  return new S3ServiceException({
    name,
    $fault: 'client',
    $metadata: { httpStatusCode: status },
    message: name,
  });
}

const TARGET = 's3://bucket/prefix/openid/v1/jwks';
/** A made-up STS session token (the shape of one: base64 with / and +). */
const SESSION_TOKEN =
  'IQoJb3JpZ2luX2VjEJr//////////wEaCXVzLWVhc3QtMSJHMEUCIQDexample+token/value0123456789abcdefghijKLMNOP==';

describe('s3Error', () => {
  const cases: { name: string; err: unknown; op: string; code: string; message: string }[] = [
    {
      name: 'a HEAD refused with 403 and no error code',
      err: sdkError('Unknown', 403),
      op: 'HEAD',
      code: 'STORAGE_ACCESS_DENIED',
      message: `HEAD ${TARGET}: access denied (HTTP 403)`,
    },
    {
      name: 'a PUT refused by policy',
      err: sdkError('AccessDenied', 403),
      op: 'PUT',
      code: 'STORAGE_ACCESS_DENIED',
      message: `PUT ${TARGET}: access denied (AccessDenied)`,
    },
    {
      name: 'a wrong secret key on a request with a body',
      err: sdkError('SignatureDoesNotMatch', 403),
      op: 'PUT',
      code: 'STORAGE_ACCESS_DENIED',
      message: `PUT ${TARGET}: access denied (SignatureDoesNotMatch)`,
    },
    {
      name: 'a HEAD answered 500 without a code',
      err: sdkError('Unknown', 500),
      op: 'HEAD',
      code: 'STORAGE_ERROR',
      message: `HEAD ${TARGET}: error (HTTP 500)`,
    },
    {
      name: 'a server error with a code',
      err: sdkError('InternalError', 500),
      op: 'PUT',
      code: 'STORAGE_ERROR',
      message: `PUT ${TARGET}: InternalError (HTTP 500)`,
    },
    {
      name: 'a missing bucket',
      err: sdkError('NoSuchBucket', 404),
      op: 'PUT',
      code: 'STORAGE_BUCKET_NOT_FOUND',
      message: `PUT ${TARGET}: the bucket does not exist`,
    },
    {
      name: 'a 40 KB error code from a hostile endpoint',
      err: sdkError('A'.repeat(40 * 1024), 400),
      op: 'PUT',
      code: 'STORAGE_ERROR',
      message: `PUT ${TARGET}: error (HTTP 400)`,
    },
    {
      name: 'an error code echoing the session token the endpoint was sent',
      err: sdkError(SESSION_TOKEN, 403),
      op: 'PUT',
      code: 'STORAGE_ACCESS_DENIED',
      message: `PUT ${TARGET}: access denied (HTTP 403)`,
    },
    {
      name: 'an error code of 65 characters',
      err: sdkError(`A${'b'.repeat(64)}`, 500),
      op: 'PUT',
      code: 'STORAGE_ERROR',
      message: `PUT ${TARGET}: error (HTTP 500)`,
    },
    {
      name: 'an error code with a line break and markup',
      err: sdkError('SlowDown\n<script>', 503),
      op: 'PUT',
      code: 'STORAGE_ERROR',
      message: `PUT ${TARGET}: error (HTTP 503)`,
    },
    {
      name: 'an error code of 64 characters, letters and dots',
      err: sdkError(`Vendor.${'X'.repeat(57)}`, 500),
      op: 'PUT',
      code: 'STORAGE_ERROR',
      message: `PUT ${TARGET}: Vendor.${'X'.repeat(57)} (HTTP 500)`,
    },
    {
      name: 'a refused connection',
      err: Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:9'), { code: 'ECONNREFUSED' }),
      op: 'HEAD',
      code: 'STORAGE_UNREACHABLE',
      message: `HEAD ${TARGET}: ECONNREFUSED`,
    },
  ];
  for (const c of cases) {
    it(`maps ${c.name} to ${c.code}`, () => {
      const got = s3Error(c.op, TARGET, c.err);
      assert.equal(got.code, c.code, `expected code ${c.code}, got ${got.code}`);
      assert.equal(got.message, c.message, `expected message ${c.message}, got ${got.message}`);
      assert.equal(got.cause, c.err, 'the SDK error is chained as the cause');
    });
  }
});

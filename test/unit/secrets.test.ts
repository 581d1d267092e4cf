/**
 * Secrets opt in to being used: the annotation oidcpublisher.io/allowed-publishers
 * must name the OidcPublisher (or be "*").
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ALLOWED_PUBLISHERS_ANNOTATION, secretAllows, secretNotAllowed } from '../../src/secrets.ts';

describe('secretAllows', () => {
  const table: [string, Record<string, unknown> | undefined, string, boolean][] = [
    ['no annotations', undefined, 'p', false],
    ['other annotations only', { 'example.com/x': 'p' }, 'p', false],
    ['an empty list', { [ALLOWED_PUBLISHERS_ANNOTATION]: '' }, 'p', false],
    ['the publisher', { [ALLOWED_PUBLISHERS_ANNOTATION]: 'p' }, 'p', true],
    ['a list with spaces', { [ALLOWED_PUBLISHERS_ANNOTATION]: ' a , p ,b' }, 'p', true],
    ['a list without it', { [ALLOWED_PUBLISHERS_ANNOTATION]: 'a,b' }, 'p', false],
    ['a name that only starts like it', { [ALLOWED_PUBLISHERS_ANNOTATION]: 'pp,p-1' }, 'p', false],
    ['every publisher', { [ALLOWED_PUBLISHERS_ANNOTATION]: '*' }, 'p', true],
    ['"*" among names', { [ALLOWED_PUBLISHERS_ANNOTATION]: 'a,*' }, 'p', true],
    ['a pattern is not a wildcard', { [ALLOWED_PUBLISHERS_ANNOTATION]: 'p*' }, 'p1', false],
    ['a value that is not a string', { [ALLOWED_PUBLISHERS_ANNOTATION]: ['p'] }, 'p', false],
  ];
  for (const [name, annotations, publisher, want] of table) {
    it(`${name}: ${want ? 'allowed' : 'refused'}`, () => {
      assert.equal(secretAllows(annotations, publisher), want);
    });
  }

  it('does not take the annotation from the prototype chain', () => {
    const inherited = Object.create({ [ALLOWED_PUBLISHERS_ANNOTATION]: '*' }) as Record<string, unknown>;
    assert.equal(secretAllows(inherited, 'p'), false);
  });

  it('refuses with SECRET_NOT_ALLOWED, saying which annotation to set', () => {
    const err = secretNotAllowed('ns', 's3-writer', 'cluster-issuer');
    assert.equal(err.code, 'SECRET_NOT_ALLOWED');
    assert.equal(err.retry, 'persistent');
    assert.match(err.message, /Secret ns\/s3-writer does not allow OidcPublisher "cluster-issuer"/);
    assert.match(err.message, /oidcpublisher\.io\/allowed-publishers/);
  });
});

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type ErrorCode, OidcPublisherError } from '../../src/errors.ts';
import {
  AZURE_HASH_METADATA_KEY,
  type AzureCredential,
  azureBlobError,
  parseConnectionString,
} from '../../src/stores/azure-blob.ts';
import { HASH_METADATA_KEY } from '../../src/stores/store.ts';

/** An error shaped like @azure/core-rest-pipeline's RestError. */
function restError(statusCode: number | undefined, code: string | undefined): Error {
  return Object.assign(new Error(`${code}`), { name: 'RestError', statusCode, code });
}

function named(name: string, extra: Record<string, unknown> = {}): Error {
  return Object.assign(new Error(name), { name, ...extra });
}

describe('AZURE_HASH_METADATA_KEY', () => {
  it('is the shared hash key as a C# identifier, which Azure requires of metadata names', () => {
    assert.equal(AZURE_HASH_METADATA_KEY, 'oidcpublishersha256');
    assert.equal(AZURE_HASH_METADATA_KEY, HASH_METADATA_KEY.replaceAll('-', ''));
    assert.match(AZURE_HASH_METADATA_KEY, /^[a-z_][a-z0-9_]*$/);
  });
});

describe('parseConnectionString', () => {
  const KEY = 'a2V5LWJ5dGVz';
  const PUBLIC = 'https://acct.blob.core.windows.net';
  const cases: { name: string; input: string; accountURL: string; expected: AzureCredential }[] = [
    {
      name: 'takes AccountName and AccountKey whose implied endpoint is accountURL',
      input: `DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=${KEY}==;EndpointSuffix=core.windows.net`,
      accountURL: PUBLIC,
      expected: { kind: 'sharedKey', accountName: 'acct', accountKey: `${KEY}==` },
    },
    {
      name: 'keeps the = padding of a key and ignores a trailing semicolon and case of names',
      input: `accountname=acct;ACCOUNTKEY=${KEY}=;BlobEndpoint=https://127.0.0.1:1/acct/;`,
      accountURL: 'https://127.0.0.1:1/acct',
      expected: { kind: 'sharedKey', accountName: 'acct', accountKey: `${KEY}=` },
    },
    {
      name: 'takes a SharedAccessSignature for accountURL without its leading question mark',
      input: `BlobEndpoint=${PUBLIC}/;SharedAccessSignature=?sv=2024-08-04&sig=abc%3D`,
      accountURL: PUBLIC,
      expected: { kind: 'sas', sas: 'sv=2024-08-04&sig=abc%3D' },
    },
    {
      name: 'maps UseDevelopmentStorage=true to the emulator account',
      input: 'UseDevelopmentStorage=true',
      accountURL: 'https://127.0.0.1:10000/devstoreaccount1',
      expected: {
        kind: 'sharedKey',
        accountName: 'devstoreaccount1',
        accountKey:
          'Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==',
      },
    },
  ];
  for (const { name, input, accountURL, expected } of cases) {
    it(name, () => {
      const got = parseConnectionString(input, accountURL);
      assert.deepEqual(got, expected, `expected ${JSON.stringify(expected)}, got ${JSON.stringify(got)}`);
    });
  }

  it('refuses a string without a credential as STORAGE_CREDENTIALS_INVALID, naming keys but no values', () => {
    const secretish = 'AccountName=acct;BlobEndpoint=https://very-secret-host.example.com';
    assert.throws(
      () => parseConnectionString(secretish, 'https://very-secret-host.example.com'),
      (err: unknown) =>
        err instanceof OidcPublisherError &&
        err.code === 'STORAGE_CREDENTIALS_INVALID' &&
        /keys found: accountname, blobendpoint/.test(err.message) &&
        !err.message.includes('very-secret-host'),
    );
  });

  const refusals: { name: string; input: string; accountURL: string }[] = [
    {
      name: 'a SAS whose BlobEndpoint is another account',
      input: 'BlobEndpoint=https://other.blob.core.windows.net;SharedAccessSignature=sv=1&sig=SECRET',
      accountURL: PUBLIC,
    },
    {
      name: 'a SAS without a BlobEndpoint (it would go wherever accountURL says)',
      input: 'SharedAccessSignature=sv=1&sig=SECRET',
      accountURL: PUBLIC,
    },
    {
      name: 'a SAS for the right host over another scheme',
      input: 'BlobEndpoint=http://acct.blob.core.windows.net;SharedAccessSignature=sv=1&sig=SECRET',
      accountURL: PUBLIC,
    },
    {
      name: 'an account key of another account',
      input: `AccountName=other;AccountKey=${KEY}`,
      accountURL: PUBLIC,
    },
    {
      name: 'an account key whose EndpointSuffix names another cloud',
      input: `AccountName=acct;AccountKey=${KEY};EndpointSuffix=core.chinacloudapi.cn`,
      accountURL: PUBLIC,
    },
    {
      name: 'an account key whose BlobEndpoint is another host',
      input: `AccountName=acct;AccountKey=${KEY};BlobEndpoint=https://127.0.0.1:1/acct`,
      accountURL: 'https://127.0.0.2:1/acct',
    },
    {
      name: 'the development account for an accountURL of another account',
      input: 'UseDevelopmentStorage=true',
      accountURL: PUBLIC,
    },
  ];
  for (const { name, input, accountURL } of refusals) {
    it(`refuses ${name} as STORAGE_CREDENTIALS_INVALID, without the secret in the message`, () => {
      assert.throws(
        () => parseConnectionString(input, accountURL),
        (err: unknown) =>
          err instanceof OidcPublisherError &&
          err.code === 'STORAGE_CREDENTIALS_INVALID' &&
          /another account or endpoint than accountURL/.test(err.message) &&
          !err.message.includes('SECRET') &&
          !err.message.includes(KEY),
      );
    });
  }
});

describe('azureBlobError', () => {
  const cases: { name: string; input: unknown; expected: ErrorCode; message: RegExp }[] = [
    {
      name: 'maps ContainerNotFound to STORAGE_BUCKET_NOT_FOUND',
      input: restError(404, 'ContainerNotFound'),
      expected: 'STORAGE_BUCKET_NOT_FOUND',
      message: /container does not exist/,
    },
    {
      name: 'reads the storage error code of a HEAD from details.errorCode (no body, no code)',
      input: Object.assign(new Error(''), {
        name: 'RestError',
        statusCode: 404,
        details: { errorCode: 'ContainerNotFound' },
      }),
      expected: 'STORAGE_BUCKET_NOT_FOUND',
      message: /container does not exist/,
    },
    {
      name: 'maps a 403 AuthenticationFailed (a wrong key) to STORAGE_ACCESS_DENIED',
      input: restError(403, 'AuthenticationFailed'),
      expected: 'STORAGE_ACCESS_DENIED',
      message: /access denied \(AuthenticationFailed\)/,
    },
    {
      name: 'maps a 403 AuthorizationPermissionMismatch (a missing role) to STORAGE_ACCESS_DENIED',
      input: restError(403, 'AuthorizationPermissionMismatch'),
      expected: 'STORAGE_ACCESS_DENIED',
      message: /AuthorizationPermissionMismatch/,
    },
    {
      name: 'maps a 401 without a code to STORAGE_ACCESS_DENIED',
      input: restError(401, undefined),
      expected: 'STORAGE_ACCESS_DENIED',
      message: /HTTP 401/,
    },
    {
      name: 'maps a 503 ServerBusy to STORAGE_ERROR',
      input: restError(503, 'ServerBusy'),
      expected: 'STORAGE_ERROR',
      message: /ServerBusy \(HTTP 503\)/,
    },
    {
      name: 'says HTTP 400, not a 40 KB x-ms-error-code from a hostile endpoint',
      input: restError(400, 'A'.repeat(40 * 1024)),
      expected: 'STORAGE_ERROR',
      message: /^PUT azblob:\/\/acct\/c\/k: \(HTTP 400\)$/,
    },
    {
      name: 'says HTTP 403, not an x-ms-error-code echoing the Authorization header it was sent',
      input: restError(403, 'SharedKey devstoreaccount1:c2lnbmF0dXJlL3NpZ25hdHVyZQ=='),
      expected: 'STORAGE_ACCESS_DENIED',
      message: /^PUT azblob:\/\/acct\/c\/k: access denied \(HTTP 403\)$/,
    },
    {
      name: 'says HTTP 403, not an error code read from details with a line break',
      input: Object.assign(new Error(''), {
        name: 'RestError',
        statusCode: 403,
        details: { errorCode: 'AuthenticationFailed\nsig=SECRET' },
      }),
      expected: 'STORAGE_ACCESS_DENIED',
      message: /^PUT azblob:\/\/acct\/c\/k: access denied \(HTTP 403\)$/,
    },
    {
      name: 'maps a refused connection to STORAGE_UNREACHABLE',
      input: restError(undefined, 'ECONNREFUSED'),
      expected: 'STORAGE_UNREACHABLE',
      message: /ECONNREFUSED/,
    },
    {
      name: 'maps an untrusted certificate to STORAGE_UNREACHABLE',
      input: restError(undefined, 'SELF_SIGNED_CERT_IN_CHAIN'),
      expected: 'STORAGE_UNREACHABLE',
      message: /SELF_SIGNED_CERT_IN_CHAIN/,
    },
    {
      name: 'maps an aborted (timed out) operation to STORAGE_UNREACHABLE',
      input: named('AbortError'),
      expected: 'STORAGE_UNREACHABLE',
      message: /timed out/,
    },
    {
      name: 'maps DefaultAzureCredential finding no credential to STORAGE_ACCESS_DENIED',
      input: named('CredentialUnavailableError'),
      expected: 'STORAGE_ACCESS_DENIED',
      message: /no usable Azure credentials \(CredentialUnavailableError\)/,
    },
    {
      name: 'maps Entra ID refusing the federated token to STORAGE_ACCESS_DENIED',
      input: named('AuthenticationError', { statusCode: undefined }),
      expected: 'STORAGE_ACCESS_DENIED',
      message: /AuthenticationError/,
    },
  ];
  for (const { name, input, expected, message } of cases) {
    it(name, () => {
      const got = azureBlobError('PUT', 'azblob://acct/c/k', input);
      assert.equal(got.code, expected, `expected ${expected}, got ${got.code} (${got.message})`);
      assert.match(got.message, message);
      assert.match(got.message, /^PUT azblob:\/\/acct\/c\/k: /);
      assert.equal(got.cause, input, 'the SDK error is chained as the cause');
    });
  }
});

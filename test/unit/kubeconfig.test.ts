import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parse, stringify } from 'yaml';
import { type ErrorCode, OidcPublisherError } from '../../src/errors.ts';
import { parseUntrustedKubeconfig } from '../../src/sources/kubeconfig.ts';

const CA = Buffer.from('-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n').toString('base64');

/** A kubeconfig as `kubectl config view --raw --minify` writes it for a token user. */
const VALID = `apiVersion: v1
kind: Config
clusters:
- name: remote
  cluster:
    server: https://api.remote.example.com:6443
    certificate-authority-data: ${CA}
    tls-server-name: kubernetes.default.svc
contexts:
- name: remote
  context:
    cluster: remote
    user: reader
    namespace: default
users:
- name: reader
  user:
    token: eyJhbGciOiJSUzI1NiJ9.e30.c2ln
current-context: remote
preferences: {}
`;

/** The parts of a kubeconfig the tests change; names and bodies optional so that broken entries can be built. */
interface Kubeconfig {
  clusters: { name?: string; cluster: Record<string, unknown> }[];
  contexts: { name: string; context: Record<string, unknown> }[];
  users: { name?: string; user?: Record<string, unknown> }[];
  'current-context'?: string;
  [other: string]: unknown;
}

/** VALID with `change` applied, as YAML text. */
function variant(change: (cfg: Kubeconfig) => void): string {
  const cfg = parse(VALID) as Kubeconfig;
  change(cfg);
  return stringify(cfg);
}

function withUser(fields: Record<string, unknown>): string {
  return variant((cfg) => {
    cfg.users[0]!.user = { ...fields };
  });
}

function withCluster(fields: Record<string, unknown>): string {
  return variant((cfg) => {
    Object.assign(cfg.clusters[0]!.cluster, fields);
  });
}

function assertFails(text: string, code: ErrorCode, message: RegExp): void {
  assert.throws(
    () => parseUntrustedKubeconfig(text),
    (err: unknown) => {
      assert.ok(err instanceof OidcPublisherError, `expected an OidcPublisherError, got ${String(err)}`);
      assert.equal(err.code, code, `expected ${code}, got ${err.code}: ${err.message}`);
      assert.match(err.message, message, `expected the message to match ${message}, got ${err.message}`);
      return true;
    },
  );
}

describe('parseUntrustedKubeconfig', () => {
  it('accepts an inline kubeconfig with a token user and loads it', () => {
    assert.deepEqual(parseUntrustedKubeconfig(VALID), {
      server: 'https://api.remote.example.com:6443',
      ca: { data: Buffer.from(CA, 'base64') },
      token: { data: Buffer.from('eyJhbGciOiJSUzI1NiJ9.e30.c2ln') },
      servername: 'kubernetes.default.svc',
    });
  });

  const accepted: { name: string; input: string }[] = [
    {
      name: 'accepts inline client certificate and key data',
      input: withUser({ 'client-certificate-data': 'Y2VydA==', 'client-key-data': 'a2V5' }),
    },
    {
      name: 'accepts insecure-skip-tls-verify set to false',
      input: withCluster({ 'insecure-skip-tls-verify': false }),
    },
    {
      name: 'accepts extensions and disable-compression',
      input: withCluster({ 'disable-compression': true, extensions: [] }),
    },
    {
      name: 'accepts the same kubeconfig written as JSON',
      input: JSON.stringify(parse(VALID)),
    },
  ];
  for (const { name, input } of accepted) {
    it(name, () => {
      assert.doesNotThrow(() => parseUntrustedKubeconfig(input));
    });
  }

  const refused: { name: string; input: string; expected: RegExp }[] = [
    {
      name: 'refuses a user that runs a command (exec)',
      input: withUser({
        exec: { apiVersion: 'client.authentication.k8s.io/v1', command: 'aws', args: ['eks', 'get-token'] },
      }),
      expected: /user "reader" runs a command \(exec\)/,
    },
    {
      name: 'refuses an auth-provider plugin',
      input: withUser({ 'auth-provider': { name: 'gcp', config: { 'cmd-path': '/bin/sh' } } }),
      expected: /user "reader" uses an auth-provider plugin/,
    },
    {
      // A path that does not exist: had client-node read it, the error would be KUBECONFIG_INVALID.
      name: 'refuses a token-file before anything reads it',
      input: withUser({ 'token-file': '/nonexistent/var/run/secrets/kubernetes.io/serviceaccount/token' }),
      expected: /reads a token from a local file \(token-file\)/,
    },
    {
      name: 'refuses the camelCase tokenFile',
      input: withUser({ tokenFile: '/var/run/secrets/kubernetes.io/serviceaccount/token' }),
      expected: /reads a token from a local file \(tokenFile\)/,
    },
    {
      name: 'refuses a client-key path',
      input: withUser({
        'client-certificate-data': 'Y2VydA==',
        'client-key': '/etc/kubernetes/pki/admin.key',
      }),
      expected: /reads a client key from a local file/,
    },
    {
      name: 'refuses a client-certificate path',
      input: withUser({ 'client-certificate': '/etc/kubernetes/pki/admin.crt', 'client-key-data': 'a2V5' }),
      expected: /reads a client certificate from a local file/,
    },
    {
      name: 'refuses basic authentication',
      input: withUser({ username: 'admin', password: 'secret' }),
      expected: /uses basic authentication/,
    },
    {
      name: 'refuses impersonation',
      input: withUser({ token: 't', as: 'system:admin' }),
      expected: /impersonates another user/,
    },
    {
      name: 'refuses an unknown user field',
      input: withUser({ token: 't', 'made-up': 1 }),
      expected: /user "reader" has unsupported field "made-up"/,
    },
    {
      name: 'refuses a user field named after an Object.prototype member',
      input: withUser({ token: 't', constructor: 'x' }),
      expected: /^kubeconfig refused: user "reader" has unsupported field "constructor"$/,
    },
    {
      name: 'refuses a user field named __proto__, naming it',
      input: `${VALID.replace('    token: ', '    __proto__: {}\n    token: ')}`,
      expected: /^kubeconfig refused: user "reader" has unsupported field "__proto__"$/,
    },
    {
      name: 'refuses a cluster field named after an Object.prototype member',
      input: withCluster({ toString: 'x' }),
      expected: /^kubeconfig refused: cluster "remote" has unsupported field "toString"$/,
    },
    {
      name: 'refuses a cluster field named __proto__, naming it',
      input: `${VALID.replace('    tls-server-name: ', '    __proto__: {}\n    tls-server-name: ')}`,
      expected: /^kubeconfig refused: cluster "remote" has unsupported field "__proto__"$/,
    },
    {
      name: 'refuses a user name and password in the server URL, without echoing them',
      input: withCluster({ server: 'https://admin:s3cret-pw@api.remote.example.com:6443' }),
      expected: /^kubeconfig refused: cluster "remote" server must not contain a user name or password$/,
    },
    {
      name: 'refuses a user name alone in the server URL',
      input: withCluster({ server: 'https://s3cret-pw@api.remote.example.com' }),
      expected: /^kubeconfig refused: cluster "remote" server must not contain a user name or password$/,
    },
    {
      name: 'refuses credentials in the server URL of a cluster the current context does not use',
      input: variant((cfg) => {
        cfg.clusters.push({ name: 'other', cluster: { server: 'https://u:s3cret-pw@other.example.com' } });
      }),
      expected: /^kubeconfig refused: cluster "other" server must not contain a user name or password$/,
    },
    {
      name: 'refuses a query in the server URL',
      input: withCluster({ server: 'https://api.remote.example.com/?token=s3cret-pw' }),
      expected: /^kubeconfig refused: cluster "remote" server must not contain a query or fragment$/,
    },
    {
      name: 'refuses a fragment in the server URL',
      input: withCluster({ server: 'https://api.remote.example.com/#s3cret-pw' }),
      expected: /^kubeconfig refused: cluster "remote" server must not contain a query or fragment$/,
    },
    {
      name: 'refuses a server that is not a URL',
      input: withCluster({ server: 'https://s3cret-pw@[::1' }),
      expected: /^kubeconfig refused: cluster "remote" server is not a URL$/,
    },
    {
      name: 'refuses impersonation of groups',
      input: withUser({ token: 't', 'as-groups': ['system:masters'] }),
      expected: /^kubeconfig refused: user "reader" impersonates groups$/,
    },
    {
      name: 'refuses insecure-skip-tls-verify',
      input: withCluster({ 'insecure-skip-tls-verify': true }),
      expected: /cluster "remote" turns TLS verification off/,
    },
    {
      name: 'refuses insecure-skip-tls-verify given as a string',
      input: withCluster({ 'insecure-skip-tls-verify': 'false' }),
      expected: /cluster "remote" turns TLS verification off/,
    },
    {
      name: 'refuses a certificate-authority path',
      input: withCluster({ 'certificate-authority': '/var/run/secrets/kubernetes.io/serviceaccount/ca.crt' }),
      expected: /reads its CA from a local file/,
    },
    {
      name: 'refuses a proxy-url',
      input: withCluster({ 'proxy-url': 'http://proxy.example.com:3128' }),
      expected: /sends requests through a proxy/,
    },
    {
      name: 'refuses an http server',
      input: withCluster({ server: 'http://api.remote.example.com:6443' }),
      expected: /cluster "remote" server must be an https URL/,
    },
    {
      name: 'refuses a cluster without server',
      input: variant((cfg) => {
        cfg.clusters[0]!.cluster = { 'certificate-authority-data': CA };
      }),
      expected: /server must be an https URL/,
    },
    {
      name: 'refuses an unknown cluster field',
      input: withCluster({ 'made-up': 1 }),
      expected: /cluster "remote" has unsupported field "made-up"/,
    },
    {
      name: 'refuses a dangerous user even when the current context does not use it',
      input: variant((cfg) => {
        cfg.users.push({ name: 'other', user: { exec: { command: 'sh' } } });
      }),
      expected: /user "other" runs a command/,
    },
  ];
  for (const { name, input, expected } of refused) {
    it(name, () => {
      assertFails(input, 'KUBECONFIG_REFUSED', expected);
      assert.throws(
        () => parseUntrustedKubeconfig(input),
        (err: Error) => !/s3cret-pw|\[object Object\]|function/.test(err.message),
        'the message carries no credential and names fields as written',
      );
    });
  }

  const invalid: { name: string; input: string; expected: RegExp }[] = [
    { name: 'reports text that is not YAML as invalid', input: 'clusters: [', expected: /not valid YAML/ },
    { name: 'reports a YAML list as invalid', input: '- a\n- b\n', expected: /not a YAML mapping/ },
    { name: 'reports an empty document as invalid', input: '', expected: /not a YAML mapping/ },
    {
      name: 'reports an alias bomb as invalid instead of expanding it',
      input: [
        'a: &a ["x","x","x","x","x","x","x","x","x"]',
        ...'bcdefghij'.split('').map((c, i) => {
          const prev = 'abcdefghij'[i]!;
          return `${c}: &${c} [${Array(9).fill(`*${prev}`).join(',')}]`;
        }),
      ].join('\n'),
      expected: /not valid YAML/,
    },
    {
      name: 'reports users that are not a list as invalid',
      input: variant((cfg) => {
        cfg.users = { reader: { token: 't' } } as unknown as Kubeconfig['users'];
      }),
      expected: /users is not a list/,
    },
    {
      name: 'reports a user entry without name as invalid',
      input: variant((cfg) => {
        cfg.users.push({ user: { token: 't' } });
      }),
      expected: /an entry of users has no name/,
    },
    {
      name: 'reports a cluster entry without its cluster as invalid',
      input: variant((cfg) => {
        cfg.clusters.push({ name: 'empty' } as Kubeconfig['clusters'][number]);
      }),
      expected: /clusters entry "empty" has no cluster/,
    },
    {
      name: 'reports a missing current-context as invalid',
      input: variant((cfg) => {
        delete cfg['current-context'];
      }),
      expected: /no current-context/,
    },
    {
      name: 'reports a current-context that is not among the contexts as invalid',
      input: variant((cfg) => {
        cfg['current-context'] = 'elsewhere';
      }),
      expected: /current-context "elsewhere" is not among the contexts/,
    },
    {
      name: 'reports a context naming an unknown cluster as invalid',
      input: variant((cfg) => {
        cfg.contexts[0]!.context.cluster = 'nope';
      }),
      expected: /context "remote" names no known cluster/,
    },
    {
      name: 'reports a context naming an unknown user as invalid',
      input: variant((cfg) => {
        cfg.contexts[0]!.context.user = 'nope';
      }),
      expected: /context "remote" names no known user/,
    },
    {
      // client-node uses the first entry of a name; a check of only the last would let exec through.
      name: 'reports two users of the same name as invalid, so a later safe entry cannot hide an exec one',
      input: variant((cfg) => {
        cfg.users.unshift({ name: 'reader', user: { exec: { command: 'sh', apiVersion: 'v1' } } });
      }),
      expected: /users has more than one entry named "reader"/,
    },
    {
      name: 'reports two clusters of the same name as invalid, so a later safe entry cannot hide an http one',
      input: variant((cfg) => {
        cfg.clusters.unshift({
          name: 'remote',
          cluster: { server: 'http://attacker.example.com', 'insecure-skip-tls-verify': true },
        });
      }),
      expected: /clusters has more than one entry named "remote"/,
    },
    {
      name: 'reports two contexts of the same name as invalid',
      input: variant((cfg) => {
        cfg.contexts.push({ name: 'remote', context: { cluster: 'remote', user: 'reader' } });
      }),
      expected: /contexts has more than one entry named "remote"/,
    },
  ];
  invalid.push(
    {
      name: 'reports client-key-data that is not base64 as invalid',
      input: withUser({ 'client-certificate-data': 'Y2VydA==', 'client-key-data': 'a2V5!' }),
      expected: /^kubeconfig invalid: user "reader" client-key-data is not valid base64$/,
    },
    {
      name: 'reports client-certificate-data that is not base64 as invalid',
      input: withUser({
        'client-certificate-data': '-----BEGIN CERTIFICATE-----',
        'client-key-data': 'a2V5',
      }),
      expected: /^kubeconfig invalid: user "reader" client-certificate-data is not valid base64$/,
    },
    {
      name: 'reports certificate-authority-data that is not base64 as invalid',
      input: withCluster({ 'certificate-authority-data': 'not base64' }),
      expected: /^kubeconfig invalid: cluster "remote" certificate-authority-data is not valid base64$/,
    },
  );
  for (const { name, input, expected } of invalid) {
    it(name, () => assertFails(input, 'KUBECONFIG_INVALID', expected));
  }

  it('classes a refused kubeconfig as persistent, not retried with backoff', () => {
    assert.throws(
      () => parseUntrustedKubeconfig(withUser({ exec: { command: 'sh' } })),
      (err: unknown) => err instanceof OidcPublisherError && err.retry === 'persistent',
    );
  });
});

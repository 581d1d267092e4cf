import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { stringify } from 'yaml';
import { OidcPublisherError } from '../../src/errors.ts';
import { inClusterSpec, loadKubeAccess, resolveKubeconfig, StaticAccess } from '../../src/kube/access.ts';

const dir = mkdtempSync(join(tmpdir(), 'kube-access-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function kubeconfig(
  cluster: Record<string, unknown>,
  user: Record<string, unknown>,
): Record<string, unknown> {
  return {
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: 'c', cluster: { server: 'https://api.example.com:6443', ...cluster } }],
    users: [{ name: 'u', user }],
    contexts: [{ name: 'ctx', context: { cluster: 'c', user: 'u' } }],
    'current-context': 'ctx',
  };
}

describe('resolveKubeconfig', () => {
  it('reads inline data, token and TLS server name', () => {
    const r = resolveKubeconfig(
      kubeconfig(
        {
          'certificate-authority-data': Buffer.from('CA').toString('base64'),
          'tls-server-name': 'kubernetes',
        },
        {
          token: 'tok',
          'client-certificate-data': Buffer.from('CERT').toString('base64'),
          'client-key-data': Buffer.from('KEY').toString('base64'),
        },
      ),
      '/base',
    );
    assert.deepEqual(r, {
      kind: 'static',
      spec: {
        server: 'https://api.example.com:6443',
        ca: { data: Buffer.from('CA') },
        cert: { data: Buffer.from('CERT') },
        key: { data: Buffer.from('KEY') },
        token: { data: Buffer.from('tok') },
        servername: 'kubernetes',
      },
    });
  });

  it('makes file paths absolute against the kubeconfig directory, as kubectl does', () => {
    const r = resolveKubeconfig(
      kubeconfig(
        { 'certificate-authority': 'pki/ca.crt', 'insecure-skip-tls-verify': false },
        { tokenFile: '/var/run/token', 'client-certificate': 'c.crt', 'client-key': '../k.key' },
      ),
      '/home/me/.kube',
    );
    assert.deepEqual(r, {
      kind: 'static',
      spec: {
        server: 'https://api.example.com:6443',
        ca: { file: '/home/me/.kube/pki/ca.crt' },
        cert: { file: '/home/me/.kube/c.crt' },
        key: { file: '/home/me/k.key' },
        token: { file: '/var/run/token' },
      },
    });
  });

  it('refuses an inline token with a token file: client-go would send the file, client-node the token', () => {
    assert.throws(() => resolveKubeconfig(kubeconfig({}, { token: 'inline', tokenFile: '/t' }), '/'), {
      message: 'kubeconfig invalid: user "u" sets both token and tokenFile',
    });
  });

  it('refuses a CA file with inline CA data: client-go would take the data, client-node the file', () => {
    assert.throws(
      () =>
        resolveKubeconfig(
          kubeconfig({ 'certificate-authority': '/ca.crt', 'certificate-authority-data': 'Q0E=' }, {}),
          '/',
        ),
      {
        message:
          'kubeconfig invalid: cluster "c" sets both certificate-authority-data and certificate-authority',
      },
    );
  });

  it('keeps insecure-skip-tls-verify when it is true', () => {
    const r = resolveKubeconfig(kubeconfig({ 'insecure-skip-tls-verify': true }, {}), '/');
    assert.equal(r.kind === 'static' && r.spec.insecureSkipTlsVerify, true);
  });

  const plugins: [string, Record<string, unknown>, Record<string, unknown>, RegExp][] = [
    ['an exec plugin', {}, { exec: { command: 'aws' } }, /exec credential plugin/],
    ['an auth-provider', {}, { 'auth-provider': { name: 'oidc' } }, /auth-provider/],
    ['basic authentication', {}, { username: 'a', password: 'b' }, /basic authentication/],
    ['impersonation', {}, { as: 'admin' }, /impersonation/],
    ['a proxy', { 'proxy-url': 'http://proxy:3128' }, { token: 't' }, /proxy/],
  ];
  for (const [what, cluster, user, why] of plugins) {
    it(`leaves ${what} to client-node`, () => {
      const r = resolveKubeconfig(kubeconfig(cluster, user), '/');
      assert.equal(r.kind, 'clientNode');
      assert.match(r.kind === 'clientNode' ? r.why : '', why);
    });
  }

  const broken: [string, unknown, RegExp][] = [
    ['a list', [], /not a YAML mapping/],
    ['no current-context', { ...kubeconfig({}, {}), 'current-context': undefined }, /no current-context/],
    [
      'an unknown current-context',
      { ...kubeconfig({}, {}), 'current-context': 'x' },
      /no contexts entry named "x"/,
    ],
    ['a cluster without server', kubeconfig({ server: undefined }, {}), /has no server/],
    ['a non-boolean insecure flag', kubeconfig({ 'insecure-skip-tls-verify': 'yes' }, {}), /not a boolean/],
    ['a token that is not a string', kubeconfig({}, { token: 42 }), /token is not a string/],
  ];
  for (const [what, doc, message] of broken) {
    it(`refuses ${what} with KUBECONFIG_INVALID`, () => {
      assert.throws(
        () => resolveKubeconfig(doc, '/'),
        (err: unknown) =>
          err instanceof OidcPublisherError && err.code === 'KUBECONFIG_INVALID' && message.test(err.message),
      );
    });
  }
});

describe('resolveKubeconfig: what kubectl or client-node would not do as written', () => {
  const CA = Buffer.from('CA').toString('base64');
  const refusals: {
    name: string;
    cluster?: Record<string, unknown>;
    user?: Record<string, unknown>;
    message: RegExp;
  }[] = [
    {
      name: 'a server URL with a user name and password (Node would send them as basic authentication)',
      cluster: { server: 'https://admin:s3cret-pw@api.example.com:6443' },
      user: { token: 't' },
      message: /^kubeconfig invalid: cluster "c" server must not contain a user name or password$/,
    },
    {
      name: 'a server URL with a user name only',
      cluster: { server: 'https://s3cret-pw@api.example.com' },
      message: /^kubeconfig invalid: cluster "c" server must not contain a user name or password$/,
    },
    {
      name: 'credentials in the server URL of a kubeconfig that needs client-node',
      cluster: { server: 'https://admin:s3cret-pw@api.example.com' },
      user: { exec: { command: 'true' } },
      message: /^kubeconfig invalid: cluster "c" server must not contain a user name or password$/,
    },
    {
      name: 'a server URL with a query',
      cluster: { server: 'https://api.example.com/?access_token=s3cret-pw' },
      message: /^kubeconfig invalid: cluster "c" server must not contain a query or fragment$/,
    },
    {
      name: 'a server URL with a fragment',
      cluster: { server: 'https://api.example.com/#s3cret-pw' },
      message: /^kubeconfig invalid: cluster "c" server must not contain a query or fragment$/,
    },
    {
      name: 'a server that is not a URL',
      cluster: { server: 'https://s3cret-pw@[not a host' },
      message: /^kubeconfig invalid: cluster "c" server is not a URL$/,
    },
    {
      name: 'as-groups, which client-node ignores',
      user: { token: 't', as: 'alice', 'as-groups': ['team'] },
      message:
        /^kubeconfig invalid: user "u" sets as-groups \(impersonating groups\), which is not supported$/,
    },
    {
      name: 'as-groups without as',
      user: { token: 't', 'as-groups': ['system:masters'] },
      message: /user "u" sets as-groups \(impersonating groups\), which is not supported/,
    },
    {
      name: 'as-uid, which client-node ignores',
      user: { token: 't', as: 'alice', 'as-uid': '42' },
      message: /user "u" sets as-uid \(impersonating a UID\), which is not supported/,
    },
    {
      name: 'as-user-extra, which client-node ignores',
      user: { token: 't', as: 'alice', 'as-user-extra': { scopes: ['x'] } },
      message: /user "u" sets as-user-extra \(impersonating extra user fields\), which is not supported/,
    },
    {
      name: 'tokenFile together with what needs client-node (it reads only token-file)',
      user: { as: 'alice', tokenFile: '/var/run/token' },
      message: /user "u" sets tokenFile, which is not supported together with impersonation/,
    },
    {
      name: 'a CA together with insecure-skip-tls-verify (kubectl refuses it too)',
      cluster: { 'certificate-authority-data': CA, 'insecure-skip-tls-verify': true },
      message:
        /^kubeconfig invalid: cluster "c" sets a certificate authority and insecure-skip-tls-verify: true; use one$/,
    },
    {
      name: 'a CA file together with insecure-skip-tls-verify',
      cluster: { 'certificate-authority': '/ca.crt', 'insecure-skip-tls-verify': true },
      message: /cluster "c" sets a certificate authority and insecure-skip-tls-verify: true; use one/,
    },
    {
      name: 'a CA together with insecure-skip-tls-verify in a kubeconfig that needs client-node',
      cluster: { 'certificate-authority-data': CA, 'insecure-skip-tls-verify': true },
      user: { exec: { command: 'true' } },
      message: /cluster "c" sets a certificate authority and insecure-skip-tls-verify: true; use one/,
    },
    {
      name: 'a misspelled credential field (requests would go out anonymous)',
      user: { tokn: 'abc' },
      message: /^kubeconfig invalid: user "u" has unknown field "tokn"$/,
    },
    {
      name: "client-node's token-file, which kubectl does not read",
      user: { 'token-file': '/var/run/token' },
      message: /^kubeconfig invalid: user "u" has unknown field "token-file" \(kubectl reads tokenFile\)$/,
    },
    {
      name: 'a user field named __proto__',
      user: JSON.parse('{"__proto__": {"token": "t"}}') as Record<string, unknown>,
      message: /^kubeconfig invalid: user "u" has unknown field "__proto__"$/,
    },
    {
      name: 'a user field named constructor',
      user: { constructor: 'x' },
      message: /^kubeconfig invalid: user "u" has unknown field "constructor"$/,
    },
    {
      name: 'client-certificate-data that is not base64',
      user: {
        'client-certificate-data': 'not base64!',
        'client-key-data': Buffer.from('K').toString('base64'),
      },
      message: /^kubeconfig invalid: user "u" client-certificate-data is not valid base64$/,
    },
    {
      name: 'client-key-data that is not base64, in a kubeconfig that needs client-node',
      user: { as: 'alice', 'client-certificate-data': CA, 'client-key-data': 'a2V5%%' },
      message: /^kubeconfig invalid: user "u" client-key-data is not valid base64$/,
    },
    {
      name: 'certificate-authority-data that is not base64',
      cluster: { 'certificate-authority-data': '-----BEGIN CERTIFICATE-----' },
      message: /^kubeconfig invalid: cluster "c" certificate-authority-data is not valid base64$/,
    },
    {
      name: 'empty base64 data',
      cluster: { 'certificate-authority-data': '====' },
      message: /cluster "c" certificate-authority-data is not valid base64/,
    },
    {
      name: 'client-certificate-data and client-certificate both set (kubectl refuses it)',
      user: { 'client-certificate-data': CA, 'client-certificate': '/c.crt', 'client-key-data': CA },
      message: /user "u" sets both client-certificate-data and client-certificate/,
    },
    {
      name: 'a token together with basic authentication (kubectl refuses it)',
      user: { token: 't', username: 'a', password: 'b' },
      message: /user "u" sets both a token and basic authentication/,
    },
  ];
  for (const { name, cluster = {}, user = {}, message } of refusals) {
    it(`refuses ${name}`, () => {
      assert.throws(
        () => resolveKubeconfig(kubeconfig(cluster, user), '/'),
        (err: unknown) => {
          assert.ok(err instanceof OidcPublisherError, `expected an OidcPublisherError, got ${String(err)}`);
          assert.equal(err.code, 'KUBECONFIG_INVALID', err.message);
          assert.match(err.message, message);
          assert.doesNotMatch(
            err.message,
            /s3cret-pw|\[object Object\]/,
            'no credential, no [object Object]',
          );
          return true;
        },
      );
    });
  }

  const accepted: { name: string; cluster?: Record<string, unknown>; user?: Record<string, unknown> }[] = [
    {
      name: 'a server URL with a path (a proxy in front of the API server)',
      cluster: { server: 'https://h/k8s/c-1' },
    },
    { name: 'a server URL with a port and IPv6 host', cluster: { server: 'https://[fd00::1]:6443' } },
    { name: 'insecure-skip-tls-verify: true without a CA', cluster: { 'insecure-skip-tls-verify': true } },
    {
      name: 'a CA with insecure-skip-tls-verify: false',
      cluster: { 'certificate-authority-data': CA, 'insecure-skip-tls-verify': false },
    },
    {
      name: 'base64 with a line break in it',
      cluster: { 'certificate-authority-data': `${CA.slice(0, 2)}\n${CA.slice(2)}` },
    },
    { name: 'impersonation of a user with as', user: { token: 't', as: 'alice' } },
    { name: 'extensions', user: { token: 't', extensions: [{ name: 'x', extension: {} }] } },
  ];
  for (const { name, cluster = {}, user = {} } of accepted) {
    it(`accepts ${name}`, () => {
      assert.doesNotThrow(() => resolveKubeconfig(kubeconfig(cluster, user), '/'));
    });
  }

  it("refuses credentials in the server URL of the operator's own kubeconfig without echoing them", async () => {
    const p = join(dir, 'userinfo.yaml');
    writeFileSync(p, stringify(kubeconfig({ server: 'http://admin:s3cret-pw@plain:8080' }, {})));
    await assert.rejects(loadKubeAccess(p, {}), (err: unknown) => {
      assert.ok(err instanceof OidcPublisherError);
      assert.match(err.message, /server must not contain a user name or password/);
      assert.doesNotMatch(err.message, /s3cret-pw/);
      return true;
    });
  });
});

describe('StaticAccess', () => {
  it('sends the token as a bearer header and reads a token file again once it is stale', async () => {
    const tokenFile = join(dir, 'token');
    writeFileSync(tokenFile, 'first\n');
    const access = new StaticAccess(
      { server: 'https://api.example.com/', token: { file: tokenFile }, ca: { data: Buffer.from('CA') } },
      { refreshMs: 50 },
    );
    assert.equal(access.server, 'https://api.example.com');
    const first = await access.requestOptions();
    assert.deepEqual(first.headers, { Authorization: 'Bearer first' });
    assert.deepEqual(first.ca, Buffer.from('CA'));
    writeFileSync(tokenFile, 'second\n');
    assert.deepEqual((await access.requestOptions()).headers, { Authorization: 'Bearer first' }, 'cached');
    await new Promise((r) => setTimeout(r, 60));
    assert.deepEqual((await access.requestOptions()).headers, { Authorization: 'Bearer second' });
  });

  it('gives each caller its own options object', async () => {
    const access = new StaticAccess({ server: 'https://a', token: { data: Buffer.from('t') } });
    const a = await access.requestOptions();
    (a.headers as Record<string, string>).Authorization = 'changed';
    assert.deepEqual((await access.requestOptions()).headers, { Authorization: 'Bearer t' });
  });

  it('turns TLS verification off only when the kubeconfig says so', async () => {
    assert.equal(
      (await new StaticAccess({ server: 'https://a' }).requestOptions()).rejectUnauthorized,
      undefined,
    );
    const insecure = new StaticAccess({ server: 'https://a', insecureSkipTlsVerify: true });
    assert.equal((await insecure.requestOptions()).rejectUnauthorized, false);
  });

  it('names the file it could not read', async () => {
    const access = new StaticAccess({ server: 'https://a', token: { file: join(dir, 'missing') } });
    await assert.rejects(access.requestOptions(), /token file ".*missing" could not be read \(ENOENT\)/);
  });
});

describe('inClusterSpec', () => {
  const sa = join(dir, 'sa');
  mkdirSync(sa, { recursive: true });
  writeFileSync(join(sa, 'token'), 'sa-token');
  writeFileSync(join(sa, 'ca.crt'), 'CA');

  it('uses the service host and port and the mounted token and CA', () => {
    assert.deepEqual(
      inClusterSpec({ KUBERNETES_SERVICE_HOST: '10.0.0.1', KUBERNETES_SERVICE_PORT: '443' }, sa),
      {
        server: 'https://10.0.0.1:443',
        ca: { file: join(sa, 'ca.crt') },
        token: { file: join(sa, 'token') },
      },
    );
  });

  it('brackets an IPv6 service host', () => {
    const spec = inClusterSpec({ KUBERNETES_SERVICE_HOST: 'fd00::1', KUBERNETES_SERVICE_PORT: '443' }, sa);
    assert.equal(spec?.server, 'https://[fd00::1]:443');
  });

  it('is undefined outside a Pod', () => {
    assert.equal(inClusterSpec({}, sa), undefined);
    assert.equal(
      inClusterSpec({ KUBERNETES_SERVICE_HOST: 'h', KUBERNETES_SERVICE_PORT: '1' }, join(dir, 'none')),
      undefined,
    );
  });
});

describe('loadKubeAccess', () => {
  const write = (name: string, doc: unknown) => {
    const p = join(dir, name);
    writeFileSync(p, stringify(doc));
    return p;
  };

  it('reads a token kubeconfig without client-node', async () => {
    const access = await loadKubeAccess(write('token.yaml', kubeconfig({}, { token: 't' })), {});
    assert.equal(access.viaClientNode, undefined);
    assert.equal(access.ownAgent, false);
    assert.deepEqual((await access.requestOptions()).headers, { Authorization: 'Bearer t' });
  });

  it('loads an exec kubeconfig through client-node and says why', async () => {
    const access = await loadKubeAccess(
      write(
        'exec.yaml',
        kubeconfig({}, { exec: { apiVersion: 'client.authentication.k8s.io/v1', command: 'true' } }),
      ),
      {},
    );
    assert.match(access.viaClientNode ?? '', /exec credential plugin/);
    assert.equal(access.server, 'https://api.example.com:6443');
  });

  it('takes $KUBECONFIG, then ~/.kube/config, then the in-cluster ServiceAccount', async () => {
    const fromEnv = await loadKubeAccess(undefined, {
      KUBECONFIG: write('env.yaml', kubeconfig({ server: 'https://from-env' }, {})),
      HOME: dir,
    });
    assert.equal(fromEnv.server, 'https://from-env');
    const home = join(dir, 'home');
    mkdirSync(join(home, '.kube'), { recursive: true });
    writeFileSync(join(home, '.kube', 'config'), stringify(kubeconfig({ server: 'https://from-home' }, {})));
    assert.equal((await loadKubeAccess(undefined, { HOME: home })).server, 'https://from-home');
    const sa = join(dir, 'sa2');
    mkdirSync(sa, { recursive: true });
    writeFileSync(join(sa, 'token'), 'x');
    const inCluster = await loadKubeAccess(
      undefined,
      { HOME: join(dir, 'empty-home'), KUBERNETES_SERVICE_HOST: '10.0.0.1', KUBERNETES_SERVICE_PORT: '6443' },
      { serviceAccountDir: sa },
    );
    assert.equal(inCluster.server, 'https://10.0.0.1:6443');
    await assert.rejects(
      loadKubeAccess(undefined, { HOME: join(dir, 'empty-home') }, { serviceAccountDir: join(dir, 'none') }),
      /no kubeconfig: pass --kubeconfig, set \$KUBECONFIG, or run in a Pod/,
    );
  });

  it('refuses a server that is not https, and several files', async () => {
    await assert.rejects(
      loadKubeAccess(write('http.yaml', kubeconfig({ server: 'http://plain:8080' }, {})), {}),
      /names a server that is not https: "http:\/\/plain:8080"/,
    );
    await assert.rejects(loadKubeAccess(undefined, { KUBECONFIG: `${dir}/a:${dir}/b` }), /lists 2 files/);
  });
});

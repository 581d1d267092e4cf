/**
 * The operator's kubeconfig loader (src/kube/access.ts) against the reference,
 * @kubernetes/client-node 2.0.1's KubeConfig (loadFromFile, loadFromCluster,
 * then getCurrentCluster and applyToHTTPSOptions). Each kubeconfig of the
 * corpus is written to a temporary directory and loaded by both. For each,
 * one of:
 *   same        both give the same server, CA, client certificate and key,
 *               token, TLS server name and TLS verification;
 *   refused     the own loader refuses it, with the reason asserted;
 *   clientNode  the own loader hands it to client-node (plugins, proxies,
 *               basic authentication, impersonation), with the reason asserted;
 *   differs     the own loader follows kubectl and client-go where
 *               client-node 2.0.1 does not; what each gives is asserted.
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import type { RequestOptions } from 'node:https';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, describe, it } from 'node:test';
import { KubeConfig } from '@kubernetes/client-node';
import { stringify } from 'yaml';
import { type KubeAccess, loadKubeAccess } from '../../src/kube/access.ts';

const root = mkdtempSync(join(tmpdir(), 'kubeconfig-differential-'));
after(() => rmSync(root, { recursive: true, force: true }));

/** What a loader makes of a kubeconfig: everything a request is sent with. */
interface Outcome {
  server: string;
  ca?: string;
  cert?: string;
  key?: string;
  token?: string;
  servername?: string;
  insecure?: boolean;
}

function outcome(server: string, o: RequestOptions): Outcome {
  const text = (v: unknown) =>
    v === undefined || v === null ? undefined : Buffer.from(v as Buffer).toString('utf8');
  const auth = (o.headers as Record<string, string> | undefined)?.Authorization;
  const out: Outcome = { server: server.replace(/\/+$/, '') };
  const ca = text(o.ca);
  const cert = text(o.cert);
  const key = text(o.key);
  if (ca) out.ca = ca;
  if (cert) out.cert = cert;
  if (key) out.key = key;
  if (auth) out.token = auth.replace(/^Bearer /, '');
  if (o.servername) out.servername = o.servername;
  if (o.rejectUnauthorized === false) out.insecure = true;
  return out;
}

const CA = 'CA-PEM';
const CERT = 'CERT-PEM';
const KEY = 'KEY-PEM';
const b64 = (s: string) => Buffer.from(s).toString('base64');

interface KubeconfigParts {
  clusters?: unknown;
  users?: unknown;
  contexts?: unknown;
  current?: unknown;
}

/** A kubeconfig of one cluster "c", user "u" and context "ctx", with these fields. */
function one(cluster: Record<string, unknown>, user: Record<string, unknown> | undefined): KubeconfigParts {
  return {
    clusters: [{ name: 'c', cluster: { server: 'https://api.example.com:6443', ...cluster } }],
    ...(user ? { users: [{ name: 'u', user }] } : {}),
    contexts: [{ name: 'ctx', context: { cluster: 'c', ...(user ? { user: 'u' } : {}) } }],
    current: 'ctx',
  };
}

function doc(p: KubeconfigParts): string {
  return stringify({
    apiVersion: 'v1',
    kind: 'Config',
    clusters: p.clusters,
    users: p.users,
    contexts: p.contexts,
    ...(p.current === undefined ? {} : { 'current-context': p.current }),
  });
}

type Expect =
  | { same: Outcome }
  | { refused: string | RegExp }
  | { clientNode: RegExp; outcome?: Outcome }
  | { differs: string; own: Outcome; clientNode: Outcome | { error: RegExp } };

interface Case {
  name: string;
  /** The kubeconfig's text, or parts of it (made from the case's directory); absent in-cluster. */
  kubeconfig?: string | KubeconfigParts | ((dir: string) => KubeconfigParts);
  /** Where the kubeconfig is written, relative to the case's directory. */
  at?: string;
  /** Other files, relative to the case's directory. */
  files?: Record<string, string>;
  /** In-cluster: the Service environment; the ServiceAccount files go in `files` under var/run/... */
  inCluster?: { host: string; port: string };
  expect: Expect;
}

const SA = 'var/run/secrets/kubernetes.io/serviceaccount';

const cases: Case[] = [
  // In-cluster.
  {
    name: 'in-cluster: the ServiceAccount token and CA',
    inCluster: { host: '10.96.0.1', port: '443' },
    files: { [`${SA}/token`]: 'sa-token', [`${SA}/ca.crt`]: CA, [`${SA}/namespace`]: 'ns' },
    expect: { same: { server: 'https://10.96.0.1:443', ca: CA, token: 'sa-token' } },
  },
  {
    name: 'in-cluster: an IPv6 Service host is bracketed',
    inCluster: { host: 'fd00::1', port: '6443' },
    files: { [`${SA}/token`]: 'sa-token', [`${SA}/ca.crt`]: CA },
    expect: { same: { server: 'https://[fd00::1]:6443', ca: CA, token: 'sa-token' } },
  },
  {
    name: 'in-cluster: a token file ending in a newline',
    inCluster: { host: 'kubernetes.default.svc', port: '443' },
    files: { [`${SA}/token`]: 'sa-token\n', [`${SA}/ca.crt`]: CA },
    expect: {
      differs:
        'client-go trims the token file (transport/token_source.go); client-node sends the newline, which no header may hold',
      own: { server: 'https://kubernetes.default.svc:443', ca: CA, token: 'sa-token' },
      clientNode: { server: 'https://kubernetes.default.svc:443', ca: CA, token: 'sa-token\n' },
    },
  },
  {
    name: 'in-cluster on port 80: client-go still speaks https',
    inCluster: { host: '10.96.0.1', port: '80' },
    files: { [`${SA}/token`]: 'sa-token', [`${SA}/ca.crt`]: CA },
    expect: {
      differs:
        'client-go (rest.InClusterConfig) always uses https; client-node switches to http on 80, 8080 and 8001, then refuses http without insecure-skip-tls-verify',
      own: { server: 'https://10.96.0.1:80', ca: CA, token: 'sa-token' },
      clientNode: { error: /^HTTP protocol is not allowed when skipTLSVerify is not set or false$/ },
    },
  },
  // Bearer tokens.
  {
    name: 'inline token and CA data',
    kubeconfig: one({ 'certificate-authority-data': b64(CA) }, { token: 'abc' }),
    expect: { same: { server: 'https://api.example.com:6443', ca: CA, token: 'abc' } },
  },
  {
    name: 'a trailing slash on the server',
    kubeconfig: one(
      { server: 'https://api.example.com/', 'certificate-authority-data': b64(CA) },
      { token: 'abc' },
    ),
    expect: { same: { server: 'https://api.example.com', ca: CA, token: 'abc' } },
  },
  {
    name: 'a server under a path (a proxy in front of the API server)',
    kubeconfig: one({ server: 'https://gw.example.com/k8s/clusters/c-1' }, { token: 'abc' }),
    expect: { same: { server: 'https://gw.example.com/k8s/clusters/c-1', token: 'abc' } },
  },
  {
    name: 'an IPv6 server',
    kubeconfig: one(
      { server: 'https://[2001:db8::1]:6443', 'certificate-authority-data': b64(CA) },
      { token: 't' },
    ),
    expect: { same: { server: 'https://[2001:db8::1]:6443', ca: CA, token: 't' } },
  },
  {
    name: 'kubectl token file (tokenFile), relative to the kubeconfig',
    kubeconfig: one({ 'certificate-authority-data': b64(CA) }, { tokenFile: 'secrets/token' }),
    files: { 'secrets/token': 'from-file' },
    expect: {
      differs: 'kubectl and client-go read tokenFile; client-node 2.0.1 does not, and sends no token',
      own: { server: 'https://api.example.com:6443', ca: CA, token: 'from-file' },
      clientNode: { server: 'https://api.example.com:6443', ca: CA },
    },
  },
  {
    name: "client-node's token-file spelling",
    kubeconfig: one({}, { 'token-file': '/var/run/token' }),
    expect: {
      refused: 'kubeconfig invalid: user "u" has unknown field "token-file" (kubectl reads tokenFile)',
    },
  },
  {
    name: 'a token and a token file',
    kubeconfig: one({}, { token: 'inline', tokenFile: 'token' }),
    files: { token: 'from-file' },
    expect: { refused: 'kubeconfig invalid: user "u" sets both token and tokenFile' },
  },
  {
    name: 'a token file that is missing',
    kubeconfig: one({}, { tokenFile: 'nope' }),
    expect: { refused: /^kubeconfig invalid: token file ".*\/nope" could not be read \(ENOENT\)$/ },
  },
  // Client certificates.
  {
    name: 'client certificate and key as data',
    kubeconfig: one(
      { 'certificate-authority-data': b64(CA) },
      { 'client-certificate-data': b64(CERT), 'client-key-data': b64(KEY) },
    ),
    expect: { same: { server: 'https://api.example.com:6443', ca: CA, cert: CERT, key: KEY } },
  },
  {
    name: 'client certificate, key and CA as files, relative to the kubeconfig',
    at: 'conf/kubeconfig',
    kubeconfig: one(
      { 'certificate-authority': 'pki/ca.crt' },
      { 'client-certificate': 'pki/c.crt', 'client-key': '../k.key' },
    ),
    files: { 'conf/pki/ca.crt': CA, 'conf/pki/c.crt': CERT, 'k.key': KEY },
    expect: { same: { server: 'https://api.example.com:6443', ca: CA, cert: CERT, key: KEY } },
  },
  {
    name: 'client certificate files with absolute paths',
    kubeconfig: (dir: string) =>
      one(
        { 'certificate-authority': join(dir, 'abs/ca.crt') },
        { 'client-certificate': join(dir, 'abs/c.crt'), 'client-key': join(dir, 'abs/k.key') },
      ),
    files: { 'abs/ca.crt': CA, 'abs/c.crt': CERT, 'abs/k.key': KEY },
    expect: { same: { server: 'https://api.example.com:6443', ca: CA, cert: CERT, key: KEY } },
  },
  {
    name: 'certificate data and a key file mixed',
    kubeconfig: one({}, { 'client-certificate-data': b64(CERT), 'client-key': 'k.key' }),
    files: { 'k.key': KEY },
    expect: { same: { server: 'https://api.example.com:6443', cert: CERT, key: KEY } },
  },
  {
    name: 'client certificate data and file both',
    kubeconfig: one(
      {},
      { 'client-certificate-data': b64(CERT), 'client-certificate': 'c.crt', 'client-key-data': b64(KEY) },
    ),
    files: { 'c.crt': 'OTHER' },
    expect: {
      refused: 'kubeconfig invalid: user "u" sets both client-certificate-data and client-certificate',
    },
  },
  {
    name: 'client key data and file both',
    kubeconfig: one(
      {},
      { 'client-certificate-data': b64(CERT), 'client-key-data': b64(KEY), 'client-key': 'k.key' },
    ),
    files: { 'k.key': 'OTHER' },
    expect: { refused: 'kubeconfig invalid: user "u" sets both client-key-data and client-key' },
  },
  {
    name: 'a client key file that is missing',
    kubeconfig: one({}, { 'client-certificate-data': b64(CERT), 'client-key': 'missing.key' }),
    expect: {
      refused: /^kubeconfig invalid: client-key file ".*\/missing\.key" could not be read \(ENOENT\)$/,
    },
  },
  {
    name: 'certificate and token together',
    kubeconfig: one({}, { 'client-certificate-data': b64(CERT), 'client-key-data': b64(KEY), token: 'also' }),
    expect: { same: { server: 'https://api.example.com:6443', cert: CERT, key: KEY, token: 'also' } },
  },
  // CA and TLS.
  {
    name: 'tls-server-name',
    kubeconfig: one(
      { 'certificate-authority-data': b64(CA), 'tls-server-name': 'kubernetes.default' },
      { token: 't' },
    ),
    expect: {
      same: { server: 'https://api.example.com:6443', ca: CA, token: 't', servername: 'kubernetes.default' },
    },
  },
  {
    name: 'CA data wrapped over lines',
    kubeconfig: one(
      {
        'certificate-authority-data': b64('A much longer CA bundle, wrapped as base64 -w 20 does').replace(
          /(.{20})/g,
          '$1\n',
        ),
      },
      { token: 't' },
    ),
    expect: {
      same: {
        server: 'https://api.example.com:6443',
        ca: 'A much longer CA bundle, wrapped as base64 -w 20 does',
        token: 't',
      },
    },
  },
  {
    name: 'CA data and a CA file both',
    kubeconfig: one(
      { 'certificate-authority-data': b64(CA), 'certificate-authority': 'ca.crt' },
      { token: 't' },
    ),
    files: { 'ca.crt': 'OTHER-CA' },
    expect: {
      refused:
        'kubeconfig invalid: cluster "c" sets both certificate-authority-data and certificate-authority',
    },
  },
  {
    name: 'insecure-skip-tls-verify without a CA',
    kubeconfig: one({ 'insecure-skip-tls-verify': true }, { token: 't' }),
    expect: { same: { server: 'https://api.example.com:6443', token: 't', insecure: true } },
  },
  {
    name: 'insecure-skip-tls-verify: false',
    kubeconfig: one(
      { 'insecure-skip-tls-verify': false, 'certificate-authority-data': b64(CA) },
      { token: 't' },
    ),
    expect: { same: { server: 'https://api.example.com:6443', ca: CA, token: 't' } },
  },
  {
    name: 'insecure-skip-tls-verify with a CA',
    kubeconfig: one(
      { 'insecure-skip-tls-verify': true, 'certificate-authority-data': b64(CA) },
      { token: 't' },
    ),
    expect: {
      refused:
        'kubeconfig invalid: cluster "c" sets a certificate authority and insecure-skip-tls-verify: true; use one',
    },
  },
  {
    name: 'insecure-skip-tls-verify spelled "yes" (a string in YAML 1.2)',
    kubeconfig:
      'apiVersion: v1\nclusters:\n- name: c\n  cluster:\n    server: https://a.example.com\n    insecure-skip-tls-verify: "yes"\nusers:\n- name: u\n  user:\n    token: t\ncontexts:\n- name: ctx\n  context: {cluster: c, user: u}\ncurrent-context: ctx\n',
    expect: { refused: 'kubeconfig invalid: cluster "c" insecure-skip-tls-verify is not a boolean' },
  },
  {
    name: 'a CA file that is missing',
    kubeconfig: one({ 'certificate-authority': 'nope.crt' }, { token: 't' }),
    expect: {
      refused:
        /^kubeconfig invalid: certificate-authority file ".*\/nope\.crt" could not be read \(ENOENT\)$/,
    },
  },
  // Bad base64.
  {
    name: 'CA data that is not base64',
    kubeconfig: one({ 'certificate-authority-data': 'not base64!' }, { token: 't' }),
    expect: { refused: 'kubeconfig invalid: cluster "c" certificate-authority-data is not valid base64' },
  },
  {
    name: 'client certificate data without its padding',
    kubeconfig: one(
      {},
      { 'client-certificate-data': b64('CERT!').replace(/=+$/, ''), 'client-key-data': b64(KEY) },
    ),
    expect: { refused: 'kubeconfig invalid: user "u" client-certificate-data is not valid base64' },
  },
  {
    name: 'client key data in base64url',
    kubeconfig: one(
      {},
      {
        'client-certificate-data': b64(CERT),
        'client-key-data': Buffer.from([0xfb, 0xff, 0xfe]).toString('base64url'),
      },
    ),
    expect: { refused: 'kubeconfig invalid: user "u" client-key-data is not valid base64' },
  },
  // Contexts.
  {
    name: 'several contexts: current-context chooses',
    kubeconfig: {
      clusters: [
        {
          name: 'a',
          cluster: { server: 'https://a.example.com', 'certificate-authority-data': b64('CA-A') },
        },
        {
          name: 'b',
          cluster: { server: 'https://b.example.com', 'certificate-authority-data': b64('CA-B') },
        },
      ],
      users: [
        { name: 'ua', user: { token: 'token-a' } },
        { name: 'ub', user: { token: 'token-b' } },
      ],
      contexts: [
        { name: 'first', context: { cluster: 'a', user: 'ua' } },
        { name: 'second', context: { cluster: 'b', user: 'ub' } },
      ],
      current: 'second',
    },
    expect: { same: { server: 'https://b.example.com', ca: 'CA-B', token: 'token-b' } },
  },
  {
    name: 'a context that crosses cluster and user names',
    kubeconfig: {
      clusters: [
        { name: 'a', cluster: { server: 'https://a.example.com' } },
        { name: 'b', cluster: { server: 'https://b.example.com' } },
      ],
      users: [
        { name: 'a', user: { token: 'token-a' } },
        { name: 'b', user: { token: 'token-b' } },
      ],
      contexts: [{ name: 'x', context: { cluster: 'a', user: 'b' } }],
      current: 'x',
    },
    expect: { same: { server: 'https://a.example.com', token: 'token-b' } },
  },
  {
    name: 'two clusters of one name: the first counts',
    kubeconfig: {
      clusters: [
        { name: 'c', cluster: { server: 'https://first.example.com' } },
        { name: 'c', cluster: { server: 'https://second.example.com' } },
      ],
      users: [{ name: 'u', user: { token: 't' } }],
      contexts: [{ name: 'ctx', context: { cluster: 'c', user: 'u' } }],
      current: 'ctx',
    },
    expect: { same: { server: 'https://first.example.com', token: 't' } },
  },
  {
    name: 'a context without a user (anonymous)',
    kubeconfig: one({ 'certificate-authority-data': b64(CA) }, undefined),
    expect: {
      differs:
        'client-go verifies with the cluster CA whatever the user; client-node 2.0.1 applies no TLS options at all without a user',
      own: { server: 'https://api.example.com:6443', ca: CA },
      clientNode: { server: 'https://api.example.com:6443' },
    },
  },
  {
    name: 'an empty user',
    kubeconfig: one({ 'certificate-authority-data': b64(CA) }, {}),
    expect: { same: { server: 'https://api.example.com:6443', ca: CA } },
  },
  // Missing pieces.
  {
    name: 'no current-context',
    kubeconfig: { ...one({}, { token: 't' }), current: undefined },
    expect: { refused: 'kubeconfig invalid: no current-context' },
  },
  {
    name: 'a current-context that is not among the contexts',
    kubeconfig: { ...one({}, { token: 't' }), current: 'elsewhere' },
    expect: { refused: 'kubeconfig invalid: no contexts entry named "elsewhere"' },
  },
  {
    name: 'a context naming a user that does not exist',
    kubeconfig: {
      ...one({}, { token: 't' }),
      contexts: [{ name: 'ctx', context: { cluster: 'c', user: 'ghost' } }],
    },
    expect: { refused: 'kubeconfig invalid: no users entry named "ghost"' },
  },
  {
    name: 'a context naming a cluster that does not exist',
    kubeconfig: {
      ...one({}, { token: 't' }),
      contexts: [{ name: 'ctx', context: { cluster: 'ghost', user: 'u' } }],
    },
    expect: { refused: 'kubeconfig invalid: no clusters entry named "ghost"' },
  },
  {
    name: 'a cluster without a server',
    kubeconfig: {
      clusters: [{ name: 'c', cluster: { 'certificate-authority-data': b64(CA) } }],
      users: [{ name: 'u', user: { token: 't' } }],
      contexts: [{ name: 'ctx', context: { cluster: 'c', user: 'u' } }],
      current: 'ctx',
    },
    expect: { refused: 'kubeconfig invalid: cluster "c" has no server' },
  },
  {
    name: 'no clusters at all',
    kubeconfig: { ...one({}, { token: 't' }), clusters: undefined },
    expect: { refused: 'kubeconfig invalid: no clusters' },
  },
  {
    name: 'not a mapping',
    kubeconfig: '- just\n- a list\n',
    expect: { refused: 'kubeconfig invalid: not a YAML mapping' },
  },
  // Servers the own loader does not send to.
  {
    name: 'a plain http server',
    kubeconfig: one({ server: 'http://127.0.0.1:8080' }, { token: 't' }),
    expect: { refused: /^kubeconfig ".*" names a server that is not https: "http:\/\/127\.0\.0\.1:8080"$/ },
  },
  {
    name: 'a server URL with a user name and password',
    kubeconfig: one({ server: 'https://admin:secret@api.example.com' }, { token: 't' }),
    expect: { refused: 'kubeconfig invalid: cluster "c" server must not contain a user name or password' },
  },
  {
    name: 'a server URL with a query',
    kubeconfig: one({ server: 'https://api.example.com/?token=x' }, { token: 't' }),
    expect: { refused: 'kubeconfig invalid: cluster "c" server must not contain a query or fragment' },
  },
  // Exotic fields.
  {
    name: 'an exec plugin',
    kubeconfig: one({}, { exec: { apiVersion: 'client.authentication.k8s.io/v1', command: 'true' } }),
    expect: { clientNode: /^user "u" uses an exec credential plugin$/ },
  },
  {
    name: 'an auth-provider',
    kubeconfig: one({}, { 'auth-provider': { name: 'oidc', config: { 'id-token': 'x' } } }),
    expect: { clientNode: /^user "u" uses an auth-provider plugin$/ },
  },
  {
    name: 'basic authentication',
    kubeconfig: one({ 'certificate-authority-data': b64(CA) }, { username: 'admin', password: 'pw' }),
    expect: {
      clientNode: /^user "u" uses basic authentication$/,
      outcome: { server: 'https://api.example.com:6443', ca: CA },
    },
  },
  {
    name: 'impersonation with as',
    kubeconfig: one({ 'certificate-authority-data': b64(CA) }, { token: 't', as: 'alice' }),
    expect: {
      clientNode: /^user "u" uses impersonation$/,
      outcome: { server: 'https://api.example.com:6443', ca: CA, token: 't' },
    },
  },
  {
    name: 'impersonating groups, which client-node would not send',
    kubeconfig: one({}, { token: 't', as: 'alice', 'as-groups': ['admins'] }),
    expect: {
      refused: 'kubeconfig invalid: user "u" sets as-groups (impersonating groups), which is not supported',
    },
  },
  {
    name: 'impersonating a UID',
    kubeconfig: one({}, { token: 't', as: 'alice', 'as-uid': '42' }),
    expect: {
      refused: 'kubeconfig invalid: user "u" sets as-uid (impersonating a UID), which is not supported',
    },
  },
  {
    name: 'a proxy-url',
    kubeconfig: one(
      { 'proxy-url': 'http://proxy.example.com:3128', 'certificate-authority-data': b64(CA) },
      { token: 't' },
    ),
    expect: { clientNode: /^cluster "c" uses a proxy$/ },
  },
  {
    name: 'a proxy-url with tokenFile, which client-node would not read',
    kubeconfig: one({ 'proxy-url': 'http://proxy.example.com:3128' }, { tokenFile: 'token' }),
    files: { token: 't' },
    expect: {
      refused: 'kubeconfig invalid: user "u" sets tokenFile, which is not supported together with a proxy',
    },
  },
  {
    name: 'extensions and disable-compression (nothing to act on)',
    kubeconfig: one(
      { 'disable-compression': true, extensions: [{ name: 'x', extension: { a: 1 } }] },
      { token: 't', extensions: [{ name: 'y', extension: {} }] },
    ),
    expect: { same: { server: 'https://api.example.com:6443', token: 't' } },
  },
  {
    name: 'a misspelled user field',
    kubeconfig: one({}, { tokne: 't' }),
    expect: { refused: 'kubeconfig invalid: user "u" has unknown field "tokne"' },
  },
];

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** Loads the case with the own loader: the access and what a request is sent with, or why not. */
async function own(
  c: Case,
  dir: string,
  file: string,
): Promise<{ access: KubeAccess; out: Outcome } | { error: string }> {
  try {
    const access = c.inCluster
      ? await loadKubeAccess(
          undefined,
          {
            HOME: join(dir, 'no-home'),
            KUBERNETES_SERVICE_HOST: c.inCluster.host,
            KUBERNETES_SERVICE_PORT: c.inCluster.port,
          },
          { serviceAccountDir: join(dir, SA) },
        )
      : await loadKubeAccess(file, { HOME: join(dir, 'no-home') });
    if (access.viaClientNode) return { access, out: { server: access.server } };
    return { access, out: outcome(access.server, await access.requestOptions()) };
  } catch (err) {
    return { error: errorText(err) };
  }
}

/** Loads the case with client-node 2.0.1, as its documentation shows. */
async function reference(c: Case, dir: string, file: string): Promise<Outcome | { error: string }> {
  const kc = new KubeConfig();
  const saved = { host: process.env.KUBERNETES_SERVICE_HOST, port: process.env.KUBERNETES_SERVICE_PORT };
  try {
    if (c.inCluster) {
      process.env.KUBERNETES_SERVICE_HOST = c.inCluster.host;
      process.env.KUBERNETES_SERVICE_PORT = c.inCluster.port;
      kc.loadFromCluster(dir);
    } else {
      kc.loadFromFile(file);
    }
    const cluster = kc.getCurrentCluster();
    if (!cluster) return { error: 'no current cluster' };
    const opts: RequestOptions = {};
    await kc.applyToHTTPSOptions(opts);
    return outcome(cluster.server, opts);
  } catch (err) {
    return { error: errorText(err) };
  } finally {
    for (const [k, v] of [
      ['KUBERNETES_SERVICE_HOST', saved.host],
      ['KUBERNETES_SERVICE_PORT', saved.port],
    ] as const) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  }
}

describe('kubeconfig loading: the own loader against client-node 2.0.1', () => {
  it('has a corpus of at least 40 kubeconfigs', () => {
    assert.ok(cases.length >= 40, `expected at least 40 cases, have ${cases.length}`);
    assert.equal(new Set(cases.map((c) => c.name)).size, cases.length, 'case names are distinct');
  });

  cases.forEach((c, i) => {
    const kind = Object.keys(c.expect)[0];
    it(`${c.name}: ${kind}`, async () => {
      const dir = join(root, String(i));
      mkdirSync(dir, { recursive: true });
      for (const [rel, content] of Object.entries(c.files ?? {})) {
        mkdirSync(dirname(join(dir, rel)), { recursive: true });
        writeFileSync(join(dir, rel), content);
      }
      const file = join(dir, c.at ?? 'kubeconfig');
      if (c.kubeconfig !== undefined) {
        mkdirSync(dirname(file), { recursive: true });
        const k = c.kubeconfig;
        writeFileSync(file, typeof k === 'string' ? k : doc(typeof k === 'function' ? k(dir) : k));
      }
      const mine = await own(c, dir, file);
      const e = c.expect;
      if ('refused' in e) {
        assert.ok('error' in mine, `expected the own loader to refuse, it gave ${JSON.stringify(mine)}`);
        if (typeof e.refused === 'string') assert.equal(mine.error, e.refused);
        else assert.match(mine.error, e.refused);
        return;
      }
      assert.ok(!('error' in mine), `the own loader refused: ${'error' in mine ? mine.error : ''}`);
      if (!('differs' in e) && 'clientNode' in e) {
        assert.match(mine.access.viaClientNode ?? '', e.clientNode, 'the own loader hands it to client-node');
        // Exec and auth-provider plugins would run: their requests are client-node's own by construction.
        if (e.outcome)
          assert.deepEqual(outcome(mine.access.server, await mine.access.requestOptions()), e.outcome);
        return;
      }
      assert.equal(mine.access.viaClientNode, undefined, 'read without client-node');
      const ref = await reference(c, dir, file);
      if ('same' in e) {
        assert.deepEqual(mine.out, e.same, 'the own loader');
        assert.deepEqual(ref, e.same, 'client-node');
        return;
      }
      assert.ok('differs' in e);
      assert.deepEqual(mine.out, e.own, `the own loader (${e.differs})`);
      if ('error' in e.clientNode) {
        assert.ok('error' in ref, 'client-node fails');
        assert.match(ref.error, e.clientNode.error);
      } else {
        assert.deepEqual(ref, e.clientNode, `client-node (${e.differs})`);
      }
    });
  });
});

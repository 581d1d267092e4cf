/**
 * `oidc-publisher authn-config`: the rendered AuthenticationConfiguration,
 * parsed back from YAML, and the command line's refusals and exit codes.
 * (test/e2e/cross-cluster.test.ts shows kube-apiserver accepting it.)
 */
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { describe, it } from 'node:test';
import { parse } from 'yaml';
import { type AuthnCliIo, runAuthnConfig } from '../../src/commands/authn-config.ts';
import {
  type AuthenticationConfiguration,
  type AuthnConfigOptions,
  authnConfigProblems,
  buildAuthnConfig,
  defaultUsernamePrefix,
  renderAuthnConfig,
} from '../../src/core/authentication-config.ts';

const ISSUER = 'https://oidc.example.com/clusters/prod';
// A self-signed P-256 CA certificate (public material only; the key was discarded).
const CA_PEM = `-----BEGIN CERTIFICATE-----
MIIBnzCCAUWgAwIBAgIUDZhBLzN3YP7m6oQyPuK6OUeVQqIwCgYIKoZIzj0EAwIw
JDEiMCAGA1UEAwwZYXV0aG4tY29uZmlnIHVuaXQgdGVzdCBDQTAgFw0yNjExMjIy
MzU3NTVaGA8yMTI2MTAyOTIzNTc1NVowJDEiMCAGA1UEAwwZYXV0aG4tY29uZmln
IHVuaXQgdGVzdCBDQTBZMBMGByqGSM49AgEGCCqGSM49AwEHA0IABM6yiBOdoeMc
ctADlfVVTGNsoemJkidY27g8A+bHji+KrrQcOYc3PqOiDxWfUiTbT46CAE4D0OJB
fdGuOI3o/DSjUzBRMB0GA1UdDgQWBBSwCZgRZ16QKikhdLE15zI26O7lozAfBgNV
HSMEGDAWgBSwCZgRZ16QKikhdLE15zI26O7lozAPBgNVHRMBAf8EBTADAQH/MAoG
CCqGSM49BAMCA0gAMEUCIDvdPF1O3xnWzamQ56uX0sGmUYg3JqIAV0wHXazEyCew
AiEA/A6Q88Bb/RlRBsRitV3SIX56CFEvO1+dfC7S1fOyY18=
-----END CERTIFICATE-----
`;

/** Private keys as PEM in each form a combined certificate file may hold one. */
const PRIVATE_KEYS: Record<string, string> = (() => {
  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
  const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
  return {
    'PRIVATE KEY (PKCS #8)': ec.export({ format: 'pem', type: 'pkcs8' }) as string,
    'RSA PRIVATE KEY': rsa.export({ format: 'pem', type: 'pkcs1' }) as string,
    'EC PRIVATE KEY': ec.export({ format: 'pem', type: 'sec1' }) as string,
    'ENCRYPTED PRIVATE KEY': rsa.export({
      format: 'pem',
      type: 'pkcs8',
      cipher: 'aes-256-cbc',
      passphrase: 'test',
    }) as string,
  };
})();

/** The base64 lines of a PEM block, none of which may reach the output. */
function pemBody(pem: string): string[] {
  return pem.split('\n').filter((l) => l && !l.startsWith('-----') && !l.includes(':'));
}

function render(o: Partial<AuthnConfigOptions> = {}): AuthenticationConfiguration {
  return parse(
    renderAuthnConfig({ issuer: ISSUER, audiences: ['cluster-b'], ...o }),
  ) as AuthenticationConfiguration;
}

function only<T>(list: readonly T[]): T {
  assert.equal(list.length, 1, `expected exactly one item, got ${list.length}`);
  return list[0] as T;
}

describe('authn-config: rendering', () => {
  it('renders one jwt authenticator of apiserver.config.k8s.io/v1 for the issuer and audience', () => {
    const cfg = render();
    assert.equal(cfg.apiVersion, 'apiserver.config.k8s.io/v1');
    assert.equal(cfg.kind, 'AuthenticationConfiguration');
    const jwt = only(cfg.jwt);
    assert.equal(jwt.issuer.url, ISSUER);
    assert.deepEqual(jwt.issuer.audiences, ['cluster-b']);
    assert.ok(!('audienceMatchPolicy' in jwt.issuer), 'a single audience needs no match policy');
    assert.ok(!('certificateAuthority' in jwt.issuer), 'no CA unless one is given');
  });

  it('sets audienceMatchPolicy MatchAny with several audiences', () => {
    const jwt = only(render({ audiences: ['cluster-b', 'cluster-c'] }).jwt);
    assert.deepEqual(jwt.issuer.audiences, ['cluster-b', 'cluster-c']);
    assert.equal(jwt.issuer.audienceMatchPolicy, 'MatchAny');
  });

  it('maps sub to prefix + sub and the namespace to prefixed service-account groups (default prefix: issuer host and path)', () => {
    const jwt = only(render().jwt);
    assert.equal(defaultUsernamePrefix(ISSUER), 'oidc.example.com/clusters/prod:');
    assert.equal(defaultUsernamePrefix(`${ISSUER}/`), 'oidc.example.com/clusters/prod:');
    assert.deepEqual(jwt.claimMappings.username, {
      expression: "'oidc.example.com/clusters/prod:' + claims.sub",
    });
    assert.deepEqual(jwt.claimMappings.groups, {
      expression:
        "['oidc.example.com/clusters/prod:' + 'system:serviceaccounts', 'oidc.example.com/clusters/prod:' + 'system:serviceaccounts:' + claims['kubernetes.io'].namespace]",
    });
  });

  it('uses --username-prefix for usernames and groups', () => {
    const jwt = only(render({ usernamePrefix: 'prod:' }).jwt);
    assert.equal(jwt.claimMappings.username.expression, "'prod:' + claims.sub");
    assert.match(jwt.claimMappings.groups.expression, /^\['prod:' \+ 'system:serviceaccounts', 'prod:' \+/);
  });

  it('accepts only service-account subjects whose kubernetes.io claim names the same namespace', () => {
    const rules = only(render().jwt).claimValidationRules;
    assert.equal(rules.length, 2);
    assert.equal(rules[0]?.expression, "has(claims.sub) && claims.sub.startsWith('system:serviceaccount:')");
    assert.equal(
      rules[1]?.expression,
      "claims.sub.startsWith('system:serviceaccount:' + claims[?'kubernetes.io'].?namespace.orValue('') + ':')",
    );
    for (const r of rules) assert.ok(r.message.length > 0, 'every rule explains itself');
  });

  it('adds a namespace allow-list rule with --namespace-allow (duplicates merged)', () => {
    const rules = only(render({ namespaces: ['team-a', 'team-b', 'team-a'] }).jwt).claimValidationRules;
    assert.equal(rules.length, 3);
    assert.equal(rules[2]?.expression, "claims['kubernetes.io'].namespace in ['team-a', 'team-b']");
  });

  it('refuses mapped usernames and groups under system: after mapping', () => {
    const rules = only(render().jwt).userValidationRules;
    assert.deepEqual(
      rules.map((r) => r.expression),
      ["!user.username.startsWith('system:')", "user.groups.all(g, !g.startsWith('system:'))"],
    );
  });

  it('inlines the CA certificate as a PEM block', () => {
    const jwt = only(render({ certificateAuthority: CA_PEM }).jwt);
    assert.equal(jwt.issuer.certificateAuthority, CA_PEM);
    const text = renderAuthnConfig({ issuer: ISSUER, audiences: ['b'], certificateAuthority: CA_PEM });
    assert.match(
      text,
      /certificateAuthority: \|\n\s+-----BEGIN CERTIFICATE-----\n/,
      'a literal block scalar',
    );
  });

  it('inlines only the CERTIFICATE blocks of a bundle, not the text around them', () => {
    const bundle = `subject=CN = authn-config unit test CA\n${CA_PEM}\n# and again\n${CA_PEM}-----BEGIN EC PARAMETERS-----\nBggqhkjOPQMBBw==\n-----END EC PARAMETERS-----\n`;
    const jwt = only(render({ certificateAuthority: bundle }).jwt);
    assert.equal(jwt.issuer.certificateAuthority, `${CA_PEM}${CA_PEM}`);
  });

  it('renders v1beta1 and v1alpha1 on request, given bare or in full', () => {
    assert.equal(render({ apiVersion: 'v1beta1' }).apiVersion, 'apiserver.config.k8s.io/v1beta1');
    assert.equal(
      render({ apiVersion: 'apiserver.config.k8s.io/v1alpha1' }).apiVersion,
      'apiserver.config.k8s.io/v1alpha1',
    );
  });

  it('starts with a comment that says how to use the file, and keeps CEL expressions on one line', () => {
    const text = renderAuthnConfig({ issuer: ISSUER, audiences: ['b'], namespaces: ['a'] });
    assert.match(text, /^# Generated by `oidc-publisher authn-config`/);
    assert.match(text, /--authentication-config=<this file> and without any --oidc-\* flag/);
    for (const line of text.split('\n').filter((l) => l.includes('expression:'))) {
      assert.match(line, /expression: .+/, `expression on one line: ${line}`);
    }
  });
});

describe('authn-config: refusals', () => {
  const table: { name: string; o: Partial<AuthnConfigOptions>; problem: RegExp }[] = [
    { name: 'an http issuer', o: { issuer: 'http://oidc.example.com' }, problem: /not an https URL/ },
    { name: 'an issuer that is not a URL', o: { issuer: 'oidc.example.com' }, problem: /is not a URL/ },
    { name: 'an issuer with a query', o: { issuer: `${ISSUER}?x=1` }, problem: /must not contain a query/ },
    {
      name: 'an issuer with a fragment',
      o: { issuer: `${ISSUER}#x` },
      problem: /must not contain a fragment/,
    },
    {
      name: 'an issuer with credentials',
      o: { issuer: 'https://u:p@oidc.example.com' },
      problem: /user name/,
    },
    // new URL() drops tabs and newlines, so such an issuer parses; written raw into the header
    // comment, a newline would end the comment and start YAML of the caller's choosing.
    {
      name: 'an issuer with a newline (it would end the YAML comment)',
      o: { issuer: `${ISSUER}\njwt: []` },
      problem: /--issuer: must not contain whitespace or control characters/,
    },
    {
      name: 'an issuer with a carriage return',
      o: { issuer: `${ISSUER}\r# x` },
      problem: /--issuer: must not contain whitespace or control characters/,
    },
    {
      name: 'an issuer with a tab',
      o: { issuer: `https://oidc.example.com/\tclusters` },
      problem: /--issuer: must not contain whitespace or control characters/,
    },
    {
      name: 'an issuer with a space',
      o: { issuer: `${ISSUER} x` },
      problem: /--issuer: must not contain whitespace or control characters/,
    },
    {
      name: 'an issuer with a NUL',
      o: { issuer: `${ISSUER}\u0000` },
      problem: /--issuer: must not contain whitespace or control characters/,
    },
    {
      name: 'an issuer with a C1 next-line character',
      o: { issuer: `${ISSUER}\u0085x` },
      problem: /--issuer: must not contain whitespace or control characters/,
    },
    {
      name: 'an issuer with a Unicode line separator',
      o: { issuer: `${ISSUER}\u2028x` },
      problem: /--issuer: must not contain whitespace or control characters/,
    },
    { name: 'no audience', o: { audiences: [] }, problem: /--audience: at least one/ },
    { name: 'an empty audience', o: { audiences: [''] }, problem: /is empty or has spaces/ },
    { name: 'a duplicate audience', o: { audiences: ['b', 'b'] }, problem: /given twice/ },
    {
      name: 'a system: prefix',
      o: { usernamePrefix: 'system:foo:' },
      problem: /must not start with system:/,
    },
    {
      name: 'an empty prefix',
      o: { usernamePrefix: '' },
      problem: /--username-prefix: "" must be non-empty/,
    },
    { name: 'a prefix with a quote', o: { usernamePrefix: "a' + 'x" }, problem: /--username-prefix/ },
    { name: 'a bad namespace', o: { namespaces: ['Team_A'] }, problem: /not a namespace name/ },
    {
      name: 'a namespace with CEL in it',
      o: { namespaces: ["a'] || true || ['"] },
      problem: /not a namespace/,
    },
    {
      name: 'a CA file without a certificate',
      o: { certificateAuthority: 'hello' },
      problem: /no PEM certificate/,
    },
    {
      name: 'a CA file with a broken certificate',
      o: { certificateAuthority: '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n' },
      problem: /does not parse/,
    },
    { name: 'an unknown API version', o: { apiVersion: 'v2' }, problem: /--api-version: "v2" is not one of/ },
    ...Object.entries(PRIVATE_KEYS).flatMap(([kind, key]) => [
      {
        name: `a CA file that also holds a private key (${kind}, after the certificate)`,
        o: { certificateAuthority: `${CA_PEM}${key}` },
        problem:
          /--certificate-authority-file: holds a private key \(a "[A-Z ]*PRIVATE KEY" block\); give a file with the CA certificates only/,
      },
      {
        name: `a CA file that also holds a private key (${kind}, before the certificate)`,
        o: { certificateAuthority: `${key}${CA_PEM}` },
        problem: /holds a private key/,
      },
    ]),
    {
      name: 'a CA file that holds only a private key',
      o: { certificateAuthority: PRIVATE_KEYS['RSA PRIVATE KEY'] ?? '' },
      problem: /holds a private key \(a "RSA PRIVATE KEY" block\)/,
    },
  ];
  for (const { name, o, problem } of table) {
    it(`refuses ${name}`, () => {
      const full = { issuer: ISSUER, audiences: ['cluster-b'], ...o };
      assert.match(authnConfigProblems(full).join('\n'), problem);
      assert.throws(
        () => buildAuthnConfig(full),
        (err: Error & { code?: string }) => {
          assert.equal(err.code, 'CONFIG_INVALID');
          assert.match(err.message, problem);
          return true;
        },
      );
    });
  }

  it('never writes an issuer with a line break into the header comment, from --issuer or --from', async () => {
    const hostile = `${ISSUER}\nkind: Evil`;
    assert.throws(() => renderAuthnConfig({ issuer: hostile, audiences: ['b'] }), /whitespace or control/);
    const fromFlag: string[] = [];
    const fromCluster: string[] = [];
    const fake = (out: string[]): AuthnCliIo => ({
      stdout: (t) => out.push(t),
      stderr: () => {},
      readFile: () => '',
      publisherIssuer: async () => hostile,
    });
    assert.equal(await runAuthnConfig(['--issuer', hostile, '--audience', 'b'], {}, fake(fromFlag)), 2);
    assert.equal(
      await runAuthnConfig(['--from', 'oidcpublisher/x', '--audience', 'b'], {}, fake(fromCluster)),
      2,
    );
    assert.deepEqual([fromFlag, fromCluster], [[], []], 'nothing is printed');
  });

  it('reports every problem at once', () => {
    const problems = authnConfigProblems({ issuer: 'http://x', audiences: [], namespaces: ['A'] });
    assert.equal(problems.length, 3, problems.join('\n'));
  });
});

describe('authn-config: command line', () => {
  function io(files: Record<string, string> = {}, issuers: Record<string, string> = {}) {
    const out: string[] = [];
    const err: string[] = [];
    const calls: { name: string; kubeconfig: string | undefined }[] = [];
    const fake: AuthnCliIo = {
      stdout: (t) => out.push(t),
      stderr: (t) => err.push(t),
      readFile: (p) => {
        const f = files[p];
        if (f === undefined) throw Object.assign(new Error(`ENOENT: ${p}`), { code: 'ENOENT' });
        return f;
      },
      publisherIssuer: async (name, kubeconfig) => {
        calls.push({ name, kubeconfig });
        const issuer = issuers[name];
        if (!issuer) throw new Error(`read oidcpublisher/${name}: HTTP 404 NotFound`);
        return issuer;
      },
    };
    return { fake, out, err, calls };
  }

  it('prints the configuration and exits 0', async () => {
    const t = io({ '/ca.pem': CA_PEM });
    const code = await runAuthnConfig(
      ['--issuer', ISSUER, '--audience', 'b', '--audience', 'c', '--certificate-authority-file', '/ca.pem'],
      {},
      t.fake,
    );
    assert.equal(code, 0, t.err.join(''));
    const cfg = parse(t.out.join('')) as AuthenticationConfiguration;
    assert.deepEqual(only(cfg.jwt).issuer.audiences, ['b', 'c']);
    assert.equal(only(cfg.jwt).issuer.certificateAuthority, CA_PEM);
  });

  const bad: { name: string; argv: string[]; reason: RegExp }[] = [
    { name: 'no issuer', argv: ['--audience', 'b'], reason: /--issuer: required/ },
    { name: 'no audience', argv: ['--issuer', ISSUER], reason: /--audience: required/ },
    { name: 'an http issuer', argv: ['--issuer', 'http://x', '--audience', 'b'], reason: /not an https URL/ },
    { name: 'an unknown flag', argv: ['--issuer', ISSUER, '--audience', 'b', '--nope'], reason: /--nope/ },
    {
      name: 'a positional argument',
      argv: ['--issuer', ISSUER, '--audience', 'b', 'extra'],
      reason: /extra/,
    },
    {
      name: 'a missing CA file',
      argv: ['--issuer', ISSUER, '--audience', 'b', '--certificate-authority-file', '/none'],
      reason: /cannot read "\/none" \(ENOENT\)/,
    },
    {
      name: 'both --issuer and --from',
      argv: ['--issuer', ISSUER, '--from', 'oidcpublisher/a', '--audience', 'b'],
      reason: /give one, not both/,
    },
    { name: 'a --from of another kind', argv: ['--from', 'secret/a', '--audience', 'b'], reason: /--from/ },
    {
      name: '--kubeconfig without --from',
      argv: ['--issuer', ISSUER, '--audience', 'b', '--kubeconfig', 'k'],
      reason: /only used with --from/,
    },
  ];
  for (const { name, argv, reason } of bad) {
    it(`exits 2 with a one-line reason on ${name}`, async () => {
      const t = io();
      assert.equal(await runAuthnConfig(argv, {}, t.fake), 2);
      assert.deepEqual(t.out, [], 'nothing on stdout');
      const text = t.err.join('');
      assert.match(text, reason);
      assert.match(text, /^oidc-publisher authn-config: [^\n]+\n$/, `one line: ${JSON.stringify(text)}`);
    });
  }

  it('refuses a combined certificate and key file, and says nothing of the key', async () => {
    for (const [kind, key] of Object.entries(PRIVATE_KEYS)) {
      const t = io({ '/combined.pem': `${CA_PEM}${key}` });
      const code = await runAuthnConfig(
        ['--issuer', ISSUER, '--audience', 'b', '--certificate-authority-file', '/combined.pem'],
        {},
        t.fake,
      );
      assert.equal(code, 2, `${kind}: exit 2`);
      assert.deepEqual(t.out, [], `${kind}: nothing on stdout`);
      const text = t.err.join('');
      assert.match(text, /holds a private key/, kind);
      for (const line of pemBody(key)) assert.ok(!text.includes(line), `${kind}: no key material on stderr`);
    }
  });

  it('reports argument and rendering problems together, on one line', async () => {
    const t = io();
    assert.equal(await runAuthnConfig(['--issuer', 'http://x', '--namespace-allow', 'A_B'], {}, t.fake), 2);
    assert.match(
      t.err.join(''),
      /^oidc-publisher authn-config: --audience: required; --issuer: "http:\/\/x" is not an https URL.*; --namespace-allow: "A_B" is not a namespace name\n$/,
    );
  });

  it('reads the issuer of an OidcPublisher with --from, with --kubeconfig or $KUBECONFIG', async () => {
    const t = io({}, { prod: ISSUER });
    assert.equal(
      await runAuthnConfig(['--from', 'oidcpublisher/prod', '--audience', 'b'], { KUBECONFIG: '/k' }, t.fake),
      0,
    );
    assert.equal(only((parse(t.out.join('')) as AuthenticationConfiguration).jwt).issuer.url, ISSUER);
    assert.equal(
      await runAuthnConfig(
        ['--from', 'oidcpublishers.oidcpublisher.io/prod', '--audience', 'b', '--kubeconfig', '/x'],
        {},
        t.fake,
      ),
      0,
    );
    assert.deepEqual(t.calls, [
      { name: 'prod', kubeconfig: '/k' },
      { name: 'prod', kubeconfig: '/x' },
    ]);
  });

  it('exits 1 when the OidcPublisher cannot be read', async () => {
    const t = io();
    assert.equal(await runAuthnConfig(['--from', 'oidcpublisher/missing', '--audience', 'b'], {}, t.fake), 1);
    assert.match(
      t.err.join(''),
      /^oidc-publisher authn-config: read oidcpublisher\/missing: HTTP 404 NotFound\n$/,
    );
  });

  it('prints its usage with --help and exits 0', async () => {
    const t = io();
    assert.equal(await runAuthnConfig(['--help'], {}, t.fake), 0);
    assert.match(t.out.join(''), /--namespace-allow <ns>/);
  });
});

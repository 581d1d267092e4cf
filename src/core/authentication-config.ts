/**
 * A kube-apiserver AuthenticationConfiguration (structured authentication,
 * `--authentication-config`) that lets another cluster accept this cluster's
 * service-account tokens through the published issuer. Pure: options in, YAML
 * text out; the command (commands/authn-config.ts) reads files and the API server.
 *
 * What the rendered JWT authenticator enforces, in the order kube-apiserver
 * applies it:
 * - issuer.url and audiences: the token's `iss` and `aud` (MatchAny when several);
 * - claimValidationRules: `sub` names a service account, the `kubernetes.io`
 *   claim agrees with it, and (optionally) the namespace is on an allow-list;
 * - claimMappings: username = prefix + sub; groups = prefix + the groups
 *   Kubernetes gives service accounts (system:serviceaccounts and
 *   system:serviceaccounts:<namespace>);
 * - userValidationRules: no mapped username or group starts with `system:`, so
 *   a missing or wrong prefix can never grant the consumer's built-in identities.
 */
import { X509Certificate } from 'node:crypto';
import { stringify } from 'yaml';
import { OidcPublisherError } from '../errors.ts';

export const AUTHN_API_GROUP = 'apiserver.config.k8s.io';
/**
 * Versions of AuthenticationConfiguration: v1alpha1 (Kubernetes 1.29+), v1beta1
 * (1.30+) and v1 (1.34+, where StructuredAuthenticationConfiguration went GA).
 * kube-apiserver v1.35 accepts all three with the fields rendered here.
 */
export const AUTHN_API_VERSIONS = [
  `${AUTHN_API_GROUP}/v1`,
  `${AUTHN_API_GROUP}/v1beta1`,
  `${AUTHN_API_GROUP}/v1alpha1`,
] as const;
export type AuthnApiVersion = (typeof AUTHN_API_VERSIONS)[number];
export const DEFAULT_AUTHN_API_VERSION: AuthnApiVersion = `${AUTHN_API_GROUP}/v1`;

/** The `sub` of every Kubernetes service-account token starts with this. */
export const SERVICE_ACCOUNT_SUBJECT_PREFIX = 'system:serviceaccount:';

export interface AuthnConfigOptions {
  /** The issuer URL exactly as the tokens' `iss` claim has it (https). */
  issuer: string;
  /** Accepted `aud` values; at least one. */
  audiences: readonly string[];
  /** Prepended to usernames and groups. Default: defaultUsernamePrefix(issuer). */
  usernamePrefix?: string;
  /**
   * PEM CA certificates for the issuer's TLS, when it is not publicly trusted. Only its CERTIFICATE
   * blocks are inlined; a private key in it is refused.
   */
  certificateAuthority?: string;
  /** Accept only service accounts of these namespaces (default: any namespace). */
  namespaces?: readonly string[];
  /** apiserver.config.k8s.io/v1 (default), v1beta1 or v1alpha1; the bare version is accepted too. */
  apiVersion?: string;
}

export interface ValidationRule {
  expression: string;
  message: string;
}

export interface JwtAuthenticator {
  issuer: {
    url: string;
    certificateAuthority?: string;
    audiences: string[];
    audienceMatchPolicy?: 'MatchAny';
  };
  claimValidationRules: ValidationRule[];
  claimMappings: {
    username: { expression: string };
    groups: { expression: string };
  };
  userValidationRules: ValidationRule[];
}

export interface AuthenticationConfiguration {
  apiVersion: AuthnApiVersion;
  kind: 'AuthenticationConfiguration';
  jwt: JwtAuthenticator[];
}

const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
/** Characters a username prefix may use: no quotes, backslashes, spaces or control characters. */
const PREFIX_CHARS = /^[A-Za-z0-9._~:/@#%+=,-]+$/;
const VISIBLE_ASCII = /^[!-~]+$/;
/**
 * Whitespace (Unicode spaces and line separators too), control characters (C0, DEL, C1) and
 * invisible format characters. new URL() drops tabs and newlines, so an issuer holding them
 * parses; written into the header comment as given, a newline would end the comment.
 */
const WHITESPACE_OR_CONTROL = /[\s\p{Cc}\p{Cf}]/u;

/** A CEL string literal. Inputs are already restricted; the escaping keeps it safe regardless. */
function celString(value: string): string {
  return `'${value.replaceAll('\\', '\\\\').replaceAll("'", "\\'")}'`;
}

/**
 * The default prefix: the issuer without its scheme and trailing slash, then ':'
 * (https://bucket.s3.amazonaws.com/clusters/prod gives
 * "bucket.s3.amazonaws.com/clusters/prod:"). The path is kept because clusters
 * often share one bucket under different prefixes, and their service accounts
 * must not map to the same user.
 */
export function defaultUsernamePrefix(issuer: string): string {
  return `${issuer.replace(/^https:\/\//, '').replace(/\/+$/, '')}:`;
}

function normalizeApiVersion(v: string | undefined): AuthnApiVersion | undefined {
  const full = v === undefined ? DEFAULT_AUTHN_API_VERSION : v.includes('/') ? v : `${AUTHN_API_GROUP}/${v}`;
  return (AUTHN_API_VERSIONS as readonly string[]).includes(full) ? (full as AuthnApiVersion) : undefined;
}

function issuerProblems(issuer: string): string[] {
  if (WHITESPACE_OR_CONTROL.test(issuer)) {
    return ['--issuer: must not contain whitespace or control characters'];
  }
  let url: URL;
  try {
    url = new URL(issuer);
  } catch {
    return [`--issuer: ${JSON.stringify(issuer)} is not a URL`];
  }
  const problems: string[] = [];
  if (url.protocol !== 'https:') {
    problems.push(
      `--issuer: ${JSON.stringify(issuer)} is not an https URL (kube-apiserver fetches issuers over https only)`,
    );
  }
  if (url.username || url.password) problems.push('--issuer: must not contain a user name or password');
  if (url.search || issuer.includes('?')) problems.push('--issuer: must not contain a query');
  if (url.hash || issuer.includes('#')) problems.push('--issuer: must not contain a fragment');
  return problems;
}

/** The PEM CERTIFICATE blocks of a CA file: all that is inlined of it. */
function certificateBlocks(pem: string): string[] {
  return pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
}

/** Any PEM private key label: PRIVATE KEY (PKCS #8), ENCRYPTED PRIVATE KEY, RSA, EC, DSA, OPENSSH. */
const PRIVATE_KEY_LABEL = /-----BEGIN ([^-\r\n]*PRIVATE KEY[^-\r\n]*)-----/i;

function certificateProblems(pem: string): string[] {
  // A combined PEM (certificate and key, as some tools write them) must not end up in a file
  // copied to every consumer cluster's control plane.
  const key = PRIVATE_KEY_LABEL.exec(pem);
  if (key)
    return [
      `--certificate-authority-file: holds a private key (a ${JSON.stringify(key[1]?.trim().slice(0, 40))} block); give a file with the CA certificates only`,
    ];
  const blocks = certificateBlocks(pem);
  if (blocks.length === 0) return ['--certificate-authority-file: holds no PEM certificate'];
  for (const block of blocks) {
    try {
      new X509Certificate(block);
    } catch {
      return ['--certificate-authority-file: a PEM certificate in it does not parse'];
    }
  }
  return [];
}

/** Every problem with the options, or none. */
export function authnConfigProblems(o: AuthnConfigOptions): string[] {
  const problems = issuerProblems(o.issuer);
  if (o.audiences.length === 0) problems.push('--audience: at least one is required');
  const seen = new Set<string>();
  for (const aud of o.audiences) {
    if (!VISIBLE_ASCII.test(aud)) problems.push(`--audience: ${JSON.stringify(aud)} is empty or has spaces`);
    else if (seen.has(aud)) problems.push(`--audience: ${JSON.stringify(aud)} is given twice`);
    seen.add(aud);
  }
  if (o.usernamePrefix !== undefined) {
    const p = o.usernamePrefix;
    if (!PREFIX_CHARS.test(p)) {
      problems.push(
        `--username-prefix: ${JSON.stringify(p)} must be non-empty and use only letters, digits and ._~:/@#%+=,-`,
      );
    } else if (p.startsWith('system:')) {
      problems.push(
        '--username-prefix: must not start with system: (that is the consumer cluster’s own namespace)',
      );
    }
  }
  for (const ns of o.namespaces ?? []) {
    if (ns.length > 63 || !DNS1123_LABEL.test(ns)) {
      problems.push(`--namespace-allow: ${JSON.stringify(ns)} is not a namespace name`);
    }
  }
  if (o.certificateAuthority !== undefined) problems.push(...certificateProblems(o.certificateAuthority));
  if (normalizeApiVersion(o.apiVersion) === undefined) {
    problems.push(
      `--api-version: ${JSON.stringify(o.apiVersion)} is not one of ${AUTHN_API_VERSIONS.join(', ')}`,
    );
  }
  return problems;
}

/** The AuthenticationConfiguration object; CONFIG_INVALID naming every problem when the options are wrong. */
export function buildAuthnConfig(o: AuthnConfigOptions): AuthenticationConfiguration {
  const problems = authnConfigProblems(o);
  const apiVersion = normalizeApiVersion(o.apiVersion);
  if (problems.length > 0 || !apiVersion) {
    throw new OidcPublisherError('CONFIG_INVALID', problems.join('; '));
  }
  const prefix = o.usernamePrefix ?? defaultUsernamePrefix(o.issuer);
  const p = celString(prefix);
  const namespace = "claims['kubernetes.io'].namespace";
  const claimValidationRules: ValidationRule[] = [
    {
      expression: `has(claims.sub) && claims.sub.startsWith(${celString(SERVICE_ACCOUNT_SUBJECT_PREFIX)})`,
      message: 'only Kubernetes service-account tokens are accepted from this issuer',
    },
    {
      // Optional selection: kube-apiserver's lazily decoded claims map has no `in` overload
      // ("no such overload" at evaluation), and has() needs a field name.
      expression: `claims.sub.startsWith(${celString(SERVICE_ACCOUNT_SUBJECT_PREFIX)} + claims[?'kubernetes.io'].?namespace.orValue('') + ':')`,
      message: 'the kubernetes.io claim must name the namespace of the subject',
    },
  ];
  if (o.namespaces && o.namespaces.length > 0) {
    claimValidationRules.push({
      expression: `${namespace} in [${[...new Set(o.namespaces)].map(celString).join(', ')}]`,
      message: 'service accounts of this namespace are not accepted from this issuer',
    });
  }
  const audiences = [...o.audiences];
  return {
    apiVersion,
    kind: 'AuthenticationConfiguration',
    jwt: [
      {
        issuer: {
          url: o.issuer,
          ...(o.certificateAuthority !== undefined
            ? { certificateAuthority: `${certificateBlocks(o.certificateAuthority).join('\n')}\n` }
            : {}),
          audiences,
          ...(audiences.length > 1 ? { audienceMatchPolicy: 'MatchAny' as const } : {}),
        },
        claimValidationRules,
        claimMappings: {
          username: { expression: `${p} + claims.sub` },
          groups: {
            expression: `[${p} + 'system:serviceaccounts', ${p} + 'system:serviceaccounts:' + ${namespace}]`,
          },
        },
        userValidationRules: [
          {
            expression: "!user.username.startsWith('system:')",
            message: 'usernames from this issuer must not start with system:',
          },
          {
            expression: "user.groups.all(g, !g.startsWith('system:'))",
            message: 'groups from this issuer must not start with system:',
          },
        ],
      },
    ],
  };
}

/** The AuthenticationConfiguration as YAML, with a comment saying how to use it. */
export function renderAuthnConfig(o: AuthnConfigOptions): string {
  const config = buildAuthnConfig(o);
  const prefix = o.usernamePrefix ?? defaultUsernamePrefix(o.issuer);
  const header = [
    '# Generated by `oidc-publisher authn-config`: lets this cluster accept service-account',
    `# tokens of the issuer ${o.issuer}`,
    `# as users "${prefix}system:serviceaccount:<namespace>:<name>" in groups`,
    `# "${prefix}system:serviceaccounts" and "${prefix}system:serviceaccounts:<namespace>".`,
    '# Start kube-apiserver with --authentication-config=<this file> and without any --oidc-* flag.',
  ];
  return `${header.join('\n')}\n${stringify(config, { lineWidth: 0 })}`;
}

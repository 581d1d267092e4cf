/**
 * `oidc-publisher authn-config`: prints a kube-apiserver AuthenticationConfiguration
 * that lets another cluster accept this issuer's service-account tokens.
 * Exit codes: 0 printed, 1 the OidcPublisher named by --from could not be read,
 * 2 bad arguments (with a one-line reason).
 */
import { readFileSync } from 'node:fs';
import { API_GROUP, API_PLURAL, API_VERSION } from '../api/types.ts';
import {
  AUTHN_API_VERSIONS,
  type AuthnConfigOptions,
  authnConfigProblems,
  DEFAULT_AUTHN_API_VERSION,
  renderAuthnConfig,
} from '../core/authentication-config.ts';
import { describeError, OidcPublisherError } from '../errors.ts';
import { loadKubeAccess } from '../kube/access.ts';
import { KubeHttp, KubeHttpError } from '../kube/http.ts';
import { type CommandIo, parseFlags, runCommand } from './args.ts';

const OPTIONS = {
  issuer: { type: 'string' },
  audience: { type: 'string', multiple: true },
  'username-prefix': { type: 'string' },
  'certificate-authority-file': { type: 'string' },
  'namespace-allow': { type: 'string', multiple: true },
  'api-version': { type: 'string' },
  from: { type: 'string' },
  kubeconfig: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

const FROM_KINDS = [
  'oidcpublisher',
  'oidcpublishers',
  `oidcpublisher.${API_GROUP}`,
  `oidcpublishers.${API_GROUP}`,
];
const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

export function authnConfigUsage(): string {
  return `oidc-publisher authn-config: print a kube-apiserver AuthenticationConfiguration that accepts
the service-account tokens of a published issuer (start the consumer's kube-apiserver with
--authentication-config=<file>, and no --oidc-* flags).

Usage:
  oidc-publisher authn-config --issuer <https url> --audience <aud> [flags] > authn.yaml
  oidc-publisher authn-config --from oidcpublisher/<name> [--kubeconfig <file>] --audience <aud> [flags]

Flags:
  --issuer <url>                     the issuer, exactly as the tokens' iss claim (https)
  --from oidcpublisher/<name>        read the issuer from spec.issuerURL of that OidcPublisher
  --kubeconfig <file>                with --from: the cluster to read it from (default $KUBECONFIG)
  --audience <aud>                   an accepted aud claim; repeat for several (MatchAny)
  --username-prefix <p>              prepended to usernames and groups (default: the issuer without
                                     https:// and a trailing slash, then ':')
  --certificate-authority-file <pem> CA certificates for the issuer's TLS, when it is not publicly
                                     trusted: its CERTIFICATE blocks are inlined; a file holding a
                                     private key is refused
  --namespace-allow <ns>             accept only service accounts of this namespace; repeatable
  --api-version <v>                  one of ${AUTHN_API_VERSIONS.join(', ')}
                                     (default ${DEFAULT_AUTHN_API_VERSION}: Kubernetes 1.34 and later)
`;
}

export interface AuthnCliIo extends CommandIo {
  readFile: (path: string) => string;
  /** spec.issuerURL of the named OidcPublisher, read with the given kubeconfig (or the default one). */
  publisherIssuer: (name: string, kubeconfig: string | undefined, env: NodeJS.ProcessEnv) => Promise<string>;
}

/** Reads spec.issuerURL of a (cluster-scoped) OidcPublisher. */
export async function readPublisherIssuer(
  name: string,
  kubeconfig: string | undefined,
  env: NodeJS.ProcessEnv,
): Promise<string> {
  const http = new KubeHttp(await loadKubeAccess(kubeconfig, env));
  let obj: unknown;
  try {
    obj = await http.send(
      'GET',
      `/apis/${API_GROUP}/${API_VERSION}/${API_PLURAL}/${encodeURIComponent(name)}`,
    );
  } catch (err) {
    if (err instanceof KubeHttpError) {
      throw new OidcPublisherError('KUBE_API_ERROR', `read oidcpublisher/${name}: ${err.message}`);
    }
    const code = (err as { code?: string } | undefined)?.code;
    throw new OidcPublisherError(
      'KUBE_API_ERROR',
      `read oidcpublisher/${name}: ${code ?? describeError(err)}`,
      {
        cause: err,
      },
    );
  } finally {
    http.close();
  }
  const issuer = (obj as { spec?: { issuerURL?: unknown } } | undefined)?.spec?.issuerURL;
  if (typeof issuer !== 'string' || issuer === '') {
    throw new OidcPublisherError('KUBE_API_ERROR', `oidcpublisher/${name} has no spec.issuerURL`);
  }
  return issuer;
}

const defaultIo: AuthnCliIo = {
  stdout: (t) => process.stdout.write(t),
  stderr: (t) => process.stderr.write(t),
  readFile: (p) => readFileSync(p, 'utf8'),
  publisherIssuer: readPublisherIssuer,
};

type Parsed =
  | { help: true }
  | {
      help: false;
      options: Omit<AuthnConfigOptions, 'issuer'> & { issuer?: string };
      from?: string;
      kubeconfig?: string;
    };

/** Parses the arguments; CONFIG_INVALID naming every problem it can see without I/O. */
export function parseAuthnArgs(argv: readonly string[], readFile: (path: string) => string): Parsed {
  const values = parseFlags(argv, OPTIONS);
  if (values.help) return { help: true };
  const problems: string[] = [];
  let from: string | undefined;
  if (values.from !== undefined) {
    const slash = values.from.indexOf('/');
    const kind = values.from.slice(0, slash);
    const name = values.from.slice(slash + 1);
    if (slash < 0 || !FROM_KINDS.includes(kind) || name.length > 253 || !DNS1123_SUBDOMAIN.test(name)) {
      problems.push(`--from: ${JSON.stringify(values.from)} is not oidcpublisher/<name>`);
    } else {
      from = name;
    }
    if (values.issuer !== undefined) problems.push('--issuer and --from: give one, not both');
  } else {
    if (values.issuer === undefined) problems.push('--issuer: required (or --from oidcpublisher/<name>)');
    if (values.kubeconfig !== undefined) problems.push('--kubeconfig: only used with --from');
  }
  if (!values.audience?.length) problems.push('--audience: required');
  let certificateAuthority: string | undefined;
  const caFile = values['certificate-authority-file'];
  if (caFile !== undefined) {
    try {
      certificateAuthority = readFile(caFile);
    } catch (err) {
      const code = (err as { code?: string } | undefined)?.code;
      problems.push(
        `--certificate-authority-file: cannot read ${JSON.stringify(caFile)} (${code ?? 'error'})`,
      );
    }
  }
  const options = {
    audiences: values.audience ?? [],
    ...(values['username-prefix'] !== undefined ? { usernamePrefix: values['username-prefix'] } : {}),
    ...(certificateAuthority !== undefined ? { certificateAuthority } : {}),
    ...(values['namespace-allow'] ? { namespaces: values['namespace-allow'] } : {}),
    ...(values['api-version'] !== undefined ? { apiVersion: values['api-version'] } : {}),
  };
  // The rendering's own checks too, so every problem is reported at once; with --from the
  // issuer is checked once it has been read.
  problems.push(
    ...authnConfigProblems({ ...options, issuer: values.issuer ?? 'https://issuer.invalid' }).filter(
      (p) => !p.startsWith('--audience: at least one'),
    ),
  );
  if (problems.length > 0) throw new OidcPublisherError('CONFIG_INVALID', problems.join('; '));
  return {
    help: false,
    options: { ...options, ...(values.issuer !== undefined ? { issuer: values.issuer } : {}) },
    ...(from !== undefined ? { from } : {}),
    ...(values.kubeconfig !== undefined ? { kubeconfig: values.kubeconfig } : {}),
  };
}

export async function runAuthnConfig(
  argv: readonly string[],
  env: NodeJS.ProcessEnv,
  io: AuthnCliIo = defaultIo,
): Promise<number> {
  const command = {
    name: 'authn-config',
    usage: authnConfigUsage,
    parse: () => parseAuthnArgs(argv, io.readFile),
    errorCodes: false,
  };
  return runCommand(command, io, async (parsed, fail) => {
    let issuer = parsed.options.issuer;
    if (parsed.from !== undefined) {
      try {
        issuer = await io.publisherIssuer(
          parsed.from,
          parsed.kubeconfig ?? (env.KUBECONFIG || undefined),
          env,
        );
      } catch (err) {
        return fail(1, err);
      }
    }
    try {
      io.stdout(renderAuthnConfig({ ...parsed.options, issuer: issuer ?? '' }));
    } catch (err) {
      return fail(2, err);
    }
    return 0;
  });
}

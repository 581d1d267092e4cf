/**
 * `oidc-publisher register aws|gcp|azure`: registers a published issuer with a
 * cloud. For AWS it creates the IAM OIDC identity provider, or brings an
 * existing one in line, after checking the issuer as a relying party would; for
 * GCP and Azure it prints the gcloud and az commands.
 * Exit codes: 0 done (or printed), 1 the issuer check or a cloud call failed,
 * 2 bad arguments (with a one-line reason).
 */
import { X509Certificate } from 'node:crypto';
import { rootCertificates } from 'node:tls';
import {
  AZURE_CREDENTIAL_NAME,
  type AzureTarget,
  azureCommands,
  azureCredentialName,
  GCP_DEFAULT_LOCATION,
  GCP_DEFAULT_TOKEN_PATH,
  gcpCommands,
  renderCommand,
} from '../core/federation-commands.ts';
import {
  DEFAULT_AWS_AUDIENCE,
  describeCall,
  describeDone,
  describeNoChange,
  findProviderArn,
  MAX_CLIENT_IDS,
  planProvider,
  providerArnFor,
  trustPolicy,
} from '../core/iam-oidc-provider.ts';
import { parseServiceAccountRef, type ServiceAccountRef, uniqueRefs } from '../core/service-account-ref.ts';
import { thumbprintDecision } from '../core/tls-thumbprint.ts';
import { OidcPublisherError } from '../errors.ts';
import { type CheckedIssuer, checkIssuer } from '../sources/issuer-check.ts';
import { BAD_ARGUMENTS, type CommandIo, type Fail, parseFlags, runCommand } from './args.ts';
import type { IamProviders } from './iam-providers.ts';

export const CLOUDS = ['aws', 'gcp', 'azure'] as const;
export type Cloud = (typeof CLOUDS)[number];

export function registerUsage(): string {
  return `oidc-publisher register: register a published issuer with a cloud, so that it accepts the
service-account tokens of the cluster.

Usage:
  oidc-publisher register aws   --issuer <https url> [--audience <client-id>]... [--service-account NS/NAME]... [--dry-run]
  oidc-publisher register gcp   --issuer <https url> --project <id> --project-number <n> --pool <id> --provider <id> [flags]
  oidc-publisher register azure --issuer <https url> (--identity <name> --resource-group <rg> | --app-id <id>)
                                --service-account NS/NAME... [flags]

"oidc-publisher register <cloud> --help" describes each.
`;
}

export function registerAwsUsage(): string {
  return `oidc-publisher register aws: create the IAM OIDC identity provider of a published issuer, or
bring an existing one in line, and print the trust policy of a role for some ServiceAccounts.

Usage:
  oidc-publisher register aws --issuer <https url> [--audience <client-id>]... \\
      [--service-account NAMESPACE/NAME]... [--dry-run]

First the issuer is read as STS reads it: an anonymous HTTPS GET of
<issuer>/.well-known/openid-configuration (no redirects), which must name exactly this issuer,
and of its jwks_uri, which must serve a valid JWKS. Otherwise nothing is created.

Then the provider for the issuer gets exactly the client IDs given (added and removed, one line
each); a second run changes nothing and says "no change". A thumbprint is added only when IAM
needs one: when the JWKS host's certificate does not chain to a publicly trusted root CA (IAM
verifies those itself, S3 included); it is the SHA-1 of the top intermediate CA certificate of
the chain (the root's when there is no intermediate).

Flags:
  --issuer <url>                     the issuer, exactly as the tokens' iss claim (https)
  --audience <client-id>             a client ID (aud) of the provider; repeat for several
                                     (default ${DEFAULT_AWS_AUDIENCE})
  --service-account NAMESPACE/NAME   print the trust policy of a role that exactly these
                                     ServiceAccounts may assume; repeatable
  --dry-run                          print the IAM calls it would make; make none that writes

Credentials: the AWS SDK's default chain (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE,
SSO, instance or pod identity). AWS_ENDPOINT_URL_IAM or AWS_ENDPOINT_URL name another endpoint.
The identity needs iam:ListOpenIDConnectProviders, iam:GetOpenIDConnectProvider and, to change
anything, iam:CreateOpenIDConnectProvider, iam:AddClientIDToOpenIDConnectProvider,
iam:RemoveClientIDFromOpenIDConnectProvider and iam:UpdateOpenIDConnectProviderThumbprint.

Exit codes:
  0  the provider is in line (or, with --dry-run, the calls were printed)
  1  failed: one line on stderr with the error code (ISSUER_UNVERIFIED, DOCUMENT_INVALID,
     CLOUD_ACCESS_DENIED, CLOUD_ERROR)
  2  bad arguments
`;
}

export function registerGcpUsage(): string {
  return `oidc-publisher register gcp: print the gcloud commands that make a workload identity pool trust
a published issuer, and grant a role to each ServiceAccount's principal.

Usage:
  oidc-publisher register gcp --issuer <https url> --project <id> --project-number <n> \\
      --pool <id> --provider <id> [--service-account NAMESPACE/NAME]... [--role <role>] [flags]

Flags:
  --issuer <url>                     the issuer, exactly as the tokens' iss claim (https)
  --project <id>                     the project's ID
  --project-number <n>               the project's number (gcloud projects describe <id>)
  --pool <id>                        the workload identity pool to create
  --provider <id>                    the pool's OIDC provider to create
  --location <location>              the pool's location (default ${GCP_DEFAULT_LOCATION})
  --audience <aud>                   an accepted aud claim; repeatable (default: the provider's URL,
                                     https://iam.googleapis.com/projects/<n>/locations/global/...)
  --service-account NAMESPACE/NAME   a ServiceAccount that may federate; repeatable. Only their
                                     namespaces may federate at all (--attribute-condition)
  --role <role>                      with --service-account: the role granted on the project to
                                     each ServiceAccount's principal
  --token-path <file>                where the workload mounts its token, for the credential
                                     configuration (default ${GCP_DEFAULT_TOKEN_PATH})
`;
}

export function registerAzureUsage(): string {
  return `oidc-publisher register azure: print the az commands that create a federated identity credential
per ServiceAccount, on a user-assigned managed identity or an app registration.

Usage:
  oidc-publisher register azure --issuer <https url> --identity <name> --resource-group <rg> \\
      --service-account NAMESPACE/NAME... [flags]
  oidc-publisher register azure --issuer <https url> --app-id <id> --service-account NAMESPACE/NAME... [flags]

Flags:
  --issuer <url>                     the issuer, exactly as the tokens' iss claim (https)
  --identity <name>                  a user-assigned managed identity
  --resource-group <rg>              its resource group
  --app-id <id>                      an app registration (instead of --identity)
  --service-account NAMESPACE/NAME   a ServiceAccount that may sign in; repeatable, at least one
  --audience <aud>                   the audience of the workload's token (default
                                     api://AzureADTokenExchange)
  --credential-prefix <p>            starts each credential's name (<p>-<namespace>-<name>), for
                                     identities that trust several clusters
`;
}

const COMMON = {
  issuer: { type: 'string' },
  audience: { type: 'string', multiple: true },
  'service-account': { type: 'string', multiple: true },
  help: { type: 'boolean', short: 'h' },
} as const;

const AWS_OPTIONS = { ...COMMON, 'dry-run': { type: 'boolean' } } as const;
const GCP_OPTIONS = {
  ...COMMON,
  project: { type: 'string' },
  'project-number': { type: 'string' },
  pool: { type: 'string' },
  provider: { type: 'string' },
  location: { type: 'string' },
  role: { type: 'string' },
  'token-path': { type: 'string' },
} as const;
const AZURE_OPTIONS = {
  ...COMMON,
  identity: { type: 'string' },
  'resource-group': { type: 'string' },
  'app-id': { type: 'string' },
  'credential-prefix': { type: 'string' },
} as const;

/** Problems with an issuer IAM, Google and Entra ID would take: https, a host, no query or fragment. */
export function issuerProblems(issuer: string | undefined): string[] {
  if (issuer === undefined || issuer === '') return ['--issuer: required'];
  let url: URL;
  try {
    url = new URL(issuer);
  } catch {
    return [`--issuer: ${JSON.stringify(issuer.slice(0, 300))} is not a URL`];
  }
  if (url.protocol !== 'https:') {
    return [
      `--issuer: ${JSON.stringify(issuer.slice(0, 300))} is not https; relying parties fetch issuers only over https`,
    ];
  }
  if (url.hostname === '' || url.username || url.password || url.search || url.hash || /[?#]/.test(issuer)) {
    return ['--issuer: an https URL with a host and no user name, password, query or fragment'];
  }
  if (issuer.length > 255) return ['--issuer: longer than 255 characters'];
  return [];
}

function serviceAccounts(values: readonly string[] | undefined, problems: string[]): ServiceAccountRef[] {
  const refs: ServiceAccountRef[] = [];
  for (const v of values ?? []) {
    const parsed = parseServiceAccountRef(v);
    if ('problem' in parsed) problems.push(parsed.problem);
    else refs.push(parsed.ref);
  }
  return uniqueRefs(refs);
}

function invalid(problems: string[]): OidcPublisherError {
  return new OidcPublisherError('CONFIG_INVALID', problems.join('; '));
}

export interface AwsArgs {
  help: false;
  issuer: string;
  audiences: string[];
  serviceAccounts: ServiceAccountRef[];
  dryRun: boolean;
}

export function parseAwsArgs(argv: readonly string[]): { help: true } | AwsArgs {
  const values = parseFlags(argv, AWS_OPTIONS);
  if (values.help) return { help: true };
  const problems = issuerProblems(values.issuer);
  const audiences = [...new Set(values.audience ?? [DEFAULT_AWS_AUDIENCE])];
  for (const a of audiences) {
    if (a.length < 1 || a.length > 255)
      problems.push(`--audience: ${JSON.stringify(a.slice(0, 300))} is not 1 to 255 characters`);
  }
  if (audiences.length > MAX_CLIENT_IDS) problems.push(`--audience: at most ${MAX_CLIENT_IDS} client IDs`);
  const refs = serviceAccounts(values['service-account'], problems);
  if (problems.length > 0) throw invalid(problems);
  return {
    help: false,
    issuer: values.issuer ?? '',
    audiences,
    serviceAccounts: refs,
    dryRun: values['dry-run'] ?? false,
  };
}

const GCP_ID = /^[a-z][a-z0-9-]{4,28}[a-z0-9]$/;
const GCP_POOL_ID = /^[a-z0-9-]{4,32}$/;

export interface GcpArgs {
  help: false;
  options: Parameters<typeof gcpCommands>[0];
}

export function parseGcpArgs(argv: readonly string[]): { help: true } | GcpArgs {
  const values = parseFlags(argv, GCP_OPTIONS);
  if (values.help) return { help: true };
  const problems = issuerProblems(values.issuer);
  const need = (flag: 'project' | 'project-number' | 'pool' | 'provider', ok: RegExp, what: string) => {
    const v = values[flag];
    if (v === undefined || v === '') problems.push(`--${flag}: required`);
    else if (!ok.test(v)) problems.push(`--${flag}: ${JSON.stringify(v.slice(0, 100))} is not ${what}`);
    return v ?? '';
  };
  const project = need('project', GCP_ID, 'a project ID (6 to 30 of a-z, 0-9 and -, from a letter)');
  const projectNumber = need('project-number', /^\d{1,20}$/, 'a project number (digits)');
  const pool = need('pool', GCP_POOL_ID, 'a pool ID (4 to 32 of a-z, 0-9 and -)');
  const provider = need('provider', GCP_POOL_ID, 'a provider ID (4 to 32 of a-z, 0-9 and -)');
  const location = values.location ?? GCP_DEFAULT_LOCATION;
  if (!/^[a-z0-9-]{1,63}$/.test(location))
    problems.push(`--location: ${JSON.stringify(location.slice(0, 100))} is not a location`);
  const refs = serviceAccounts(values['service-account'], problems);
  if (values.role !== undefined && refs.length === 0)
    problems.push('--role: only used with --service-account');
  if (
    values.role !== undefined &&
    !/^(roles|projects\/[a-z0-9-]+\/roles|organizations\/\d+\/roles)\/[A-Za-z0-9_.]+$/.test(values.role)
  ) {
    problems.push(
      `--role: ${JSON.stringify(values.role.slice(0, 100))} is not a role such as roles/storage.objectViewer`,
    );
  }
  const audiences = [...new Set(values.audience ?? [])];
  if (audiences.some((a) => a === '' || a.includes(','))) problems.push('--audience: empty, or with a comma');
  const tokenPath = values['token-path'] ?? GCP_DEFAULT_TOKEN_PATH;
  if (!tokenPath.startsWith('/')) problems.push('--token-path: an absolute path');
  if (problems.length > 0) throw invalid(problems);
  return {
    help: false,
    options: {
      issuer: values.issuer ?? '',
      project,
      projectNumber,
      pool,
      provider,
      location,
      audiences,
      serviceAccounts: refs,
      tokenPath,
      ...(values.role !== undefined ? { role: values.role } : {}),
    },
  };
}

export interface AzureArgs {
  help: false;
  options: Parameters<typeof azureCommands>[0];
}

export function parseAzureArgs(argv: readonly string[]): { help: true } | AzureArgs {
  const values = parseFlags(argv, AZURE_OPTIONS);
  if (values.help) return { help: true };
  const problems = issuerProblems(values.issuer);
  const { identity, 'resource-group': resourceGroup, 'app-id': appId } = values;
  let target: AzureTarget | undefined;
  if (appId !== undefined) {
    if (identity !== undefined || resourceGroup !== undefined) {
      problems.push('--app-id and --identity/--resource-group: give one, not both');
    } else if (!/^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/.test(appId)) {
      problems.push(
        `--app-id: ${JSON.stringify(appId.slice(0, 100))} is not an application (client) ID, a GUID`,
      );
    } else {
      target = { kind: 'app', appId };
    }
  } else if (identity === undefined || resourceGroup === undefined) {
    problems.push('--identity and --resource-group: required (or --app-id)');
  } else if (!/^[A-Za-z0-9][A-Za-z0-9_-]{2,127}$/.test(identity)) {
    problems.push(`--identity: ${JSON.stringify(identity.slice(0, 200))} is not a managed identity name`);
  } else if (!/^[-\w.()]{1,90}$/.test(resourceGroup) || resourceGroup.endsWith('.')) {
    problems.push(
      `--resource-group: ${JSON.stringify(resourceGroup.slice(0, 200))} is not a resource group name`,
    );
  } else {
    target = { kind: 'identity', identity, resourceGroup };
  }
  const refs = serviceAccounts(values['service-account'], problems);
  if (refs.length === 0 && !values['service-account']?.length) {
    problems.push('--service-account: at least one (each gets a federated identity credential)');
  }
  const prefix = values['credential-prefix'];
  for (const ref of refs) {
    const name = azureCredentialName(ref, prefix);
    if (!AZURE_CREDENTIAL_NAME.test(name)) {
      problems.push(
        `--credential-prefix: the credential name ${JSON.stringify(name.slice(0, 200))} is not 3 to 120 of letters, digits, '-' and '_'`,
      );
      break;
    }
  }
  const audiences = [...new Set(values.audience ?? [])];
  if (audiences.some((a) => a === '' || /\s/.test(a))) problems.push('--audience: empty, or with a space');
  if (problems.length > 0 || !target) throw invalid(problems);
  return {
    help: false,
    options: {
      issuer: values.issuer ?? '',
      target,
      audiences,
      serviceAccounts: refs,
      ...(prefix !== undefined ? { credentialPrefix: prefix } : {}),
    },
  };
}

export interface RegisterIo extends CommandIo {
  checkIssuer: (issuer: string) => Promise<CheckedIssuer>;
  /** IAM, with @aws-sdk/client-iam loaded only now. */
  iam: () => Promise<IamProviders>;
  /** The root CAs IAM trusts: Node's bundled Mozilla roots stand for them. */
  roots: () => X509Certificate[];
}

const defaultIo: RegisterIo = {
  stdout: (t) => process.stdout.write(t),
  stderr: (t) => process.stderr.write(t),
  checkIssuer: (issuer) => checkIssuer(issuer),
  iam: async () => (await import('./iam-providers.ts')).createIamProviders(),
  roots: () => rootCertificates.map((pem) => new X509Certificate(pem)),
};

/** The lines for a registration of `issuer` with AWS, in order, as they happen. */
async function registerAws(args: AwsArgs, io: RegisterIo, fail: Fail): Promise<number> {
  let iam: IamProviders | undefined;
  try {
    const checked = await io.checkIssuer(args.issuer);
    io.stdout(
      `verified ${args.issuer}: its discovery document names it, and ${checked.jwksURI} serves ${checked.keys.length} key${checked.keys.length === 1 ? '' : 's'}\n`,
    );
    const decision = thumbprintDecision(checked.jwksChain, io.roots());
    io.stdout(
      decision.needed
        ? `thumbprint ${decision.thumbprint} of ${decision.certificate}: the JWKS host's certificate does not chain to a publicly trusted root CA, so IAM checks it against this\n`
        : `no thumbprint: the JWKS host's certificate chains to the publicly trusted root ${decision.root}, which IAM verifies itself\n`,
    );
    iam = await io.iam();
    const arn = findProviderArn(await iam.list(), args.issuer);
    const existing = arn ? await iam.get(arn) : undefined;
    const calls = planProvider(existing, {
      url: args.issuer,
      clientIds: args.audiences,
      thumbprint: decision.needed ? decision.thumbprint : undefined,
    });
    let providerArn = existing?.arn;
    if (calls.length === 0 && existing) io.stdout(`${describeNoChange(existing)}\n`);
    for (const call of calls) {
      if (args.dryRun) {
        io.stdout(`would call ${describeCall(call)}\n`);
      } else {
        providerArn = await iam.apply(call);
        io.stdout(`${describeDone(call, providerArn)}\n`);
      }
    }
    if (args.serviceAccounts.length > 0) {
      const policy = trustPolicy(
        providerArn ?? providerArnFor(args.issuer),
        args.issuer,
        args.audiences,
        args.serviceAccounts,
      );
      io.stdout(
        `trust policy of a role for ${args.serviceAccounts.map((r) => `${r.namespace}/${r.name}`).join(', ')}:\n`,
      );
      io.stdout(`${JSON.stringify(policy, null, 2)}\n`);
    }
    return 0;
  } catch (err) {
    return fail(1, err);
  } finally {
    iam?.close();
  }
}

export async function runRegister(
  argv: readonly string[],
  _env: NodeJS.ProcessEnv,
  io: RegisterIo = defaultIo,
): Promise<number> {
  const [cloud, ...rest] = argv;
  if (cloud === '--help' || cloud === '-h' || cloud === 'help') {
    io.stdout(registerUsage());
    return 0;
  }
  if (cloud === 'aws') {
    return runCommand(
      { name: 'register aws', usage: registerAwsUsage, parse: () => parseAwsArgs(rest), errorCodes: true },
      io,
      (args, fail) => registerAws(args, io, fail),
    );
  }
  if (cloud === 'gcp') {
    return runCommand(
      { name: 'register gcp', usage: registerGcpUsage, parse: () => parseGcpArgs(rest), errorCodes: true },
      io,
      async (args) => {
        for (const c of gcpCommands(args.options)) io.stdout(renderCommand(c));
        return 0;
      },
    );
  }
  if (cloud === 'azure') {
    return runCommand(
      {
        name: 'register azure',
        usage: registerAzureUsage,
        parse: () => parseAzureArgs(rest),
        errorCodes: true,
      },
      io,
      async (args) => {
        for (const c of azureCommands(args.options)) io.stdout(renderCommand(c));
        return 0;
      },
    );
  }
  io.stderr(
    `oidc-publisher register: ${cloud === undefined ? 'name a cloud' : `${JSON.stringify(cloud.slice(0, 50))} is not a cloud`}: aws, gcp or azure\n`,
  );
  return BAD_ARGUMENTS;
}

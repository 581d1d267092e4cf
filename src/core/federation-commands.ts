/**
 * The `gcloud` and `az` commands that make GCP workload identity federation and
 * Microsoft Entra ID trust a published issuer for some ServiceAccounts. Nothing
 * here can call those services, so `register gcp` and `register azure` print
 * the commands for the user to run. Pure: options in, argument lists and shell
 * text out.
 */
import { type ServiceAccountRef, serviceAccountSubject } from './service-account-ref.ts';

/** A command as its argument list: what the shell passes to the program. */
export type Argv = readonly string[];

export interface GcpFederationOptions {
  issuer: string;
  project: string;
  projectNumber: string;
  pool: string;
  provider: string;
  /** Workload identity pools live in `global`. */
  location: string;
  /** Accepted `aud` claims; by default the provider's own URL. */
  audiences: readonly string[];
  serviceAccounts: readonly ServiceAccountRef[];
  /** The role each ServiceAccount's principal is granted on the project. */
  role?: string;
  /** Where the workload's projected token is mounted, for the credential configuration. */
  tokenPath: string;
}

export const GCP_DEFAULT_LOCATION = 'global';
export const GCP_DEFAULT_TOKEN_PATH = '/var/run/service-account/token';
/** The token's `sub` becomes the principal; the namespace and name are kept as attributes. */
export const GCP_ATTRIBUTE_MAPPING =
  "google.subject=assertion.sub,attribute.namespace=assertion['kubernetes.io']['namespace'],attribute.service_account_name=assertion['kubernetes.io']['serviceaccount']['name']";

const poolName = (o: GcpFederationOptions) =>
  `projects/${o.projectNumber}/locations/${o.location}/workloadIdentityPools/${o.pool}`;

/** The audience a token must carry when the provider names none: the provider's URL. */
export function gcpDefaultAudience(
  o: Pick<GcpFederationOptions, 'projectNumber' | 'location' | 'pool' | 'provider'>,
): string {
  return `https://iam.googleapis.com/projects/${o.projectNumber}/locations/${o.location}/workloadIdentityPools/${o.pool}/providers/${o.provider}`;
}

/** The principal of one ServiceAccount in the pool: its token's `sub`. */
export function gcpPrincipal(o: GcpFederationOptions, ref: ServiceAccountRef): string {
  return `principal://iam.googleapis.com/${poolName(o)}/subject/${serviceAccountSubject(ref)}`;
}

/** Limits which namespaces may federate at all: those of the ServiceAccounts. */
export function gcpAttributeCondition(refs: readonly ServiceAccountRef[]): string | undefined {
  const namespaces = [...new Set(refs.map((r) => r.namespace))];
  if (namespaces.length === 0) return undefined;
  return `assertion['kubernetes.io']['namespace'] in [${namespaces.map((n) => `'${n}'`).join(', ')}]`;
}

export function gcpCommands(o: GcpFederationOptions): Argv[] {
  const where = [`--project=${o.project}`, `--location=${o.location}`];
  const audiences = o.audiences.length ? o.audiences : [gcpDefaultAudience(o)];
  const condition = gcpAttributeCondition(o.serviceAccounts);
  const commands: Argv[] = [
    ['gcloud', 'iam', 'workload-identity-pools', 'create', o.pool, ...where],
    [
      'gcloud',
      'iam',
      'workload-identity-pools',
      'providers',
      'create-oidc',
      o.provider,
      ...where,
      `--workload-identity-pool=${o.pool}`,
      `--issuer-uri=${o.issuer}`,
      `--allowed-audiences=${audiences.join(',')}`,
      `--attribute-mapping=${GCP_ATTRIBUTE_MAPPING}`,
      ...(condition ? [`--attribute-condition=${condition}`] : []),
    ],
  ];
  if (o.role) {
    for (const ref of o.serviceAccounts) {
      commands.push([
        'gcloud',
        'projects',
        'add-iam-policy-binding',
        o.project,
        `--role=${o.role}`,
        `--member=${gcpPrincipal(o, ref)}`,
      ]);
    }
  }
  commands.push([
    'gcloud',
    'iam',
    'workload-identity-pools',
    'create-cred-config',
    `${poolName(o)}/providers/${o.provider}`,
    `--credential-source-file=${o.tokenPath}`,
    '--credential-source-type=text',
    '--output-file=credential-configuration.json',
  ]);
  return commands;
}

export const AZURE_DEFAULT_AUDIENCE = 'api://AzureADTokenExchange';

export type AzureTarget =
  | { kind: 'identity'; identity: string; resourceGroup: string }
  | { kind: 'app'; appId: string };

export interface AzureFederationOptions {
  issuer: string;
  target: AzureTarget;
  audiences: readonly string[];
  serviceAccounts: readonly ServiceAccountRef[];
  /** Starts each credential's name, which must be unique in the identity or app. */
  credentialPrefix?: string;
}

/** A federated identity credential's name: 3 to 120 of letters, digits, '-' and '_', from a letter or digit. */
export const AZURE_CREDENTIAL_NAME = /^[A-Za-z0-9][A-Za-z0-9_-]{2,119}$/;

/** The credential's name for a ServiceAccount: [prefix-]namespace-name, dots made hyphens. */
export function azureCredentialName(ref: ServiceAccountRef, prefix?: string): string {
  return [prefix, ref.namespace, ref.name.replaceAll('.', '-')].filter(Boolean).join('-');
}

export function azureCommands(o: AzureFederationOptions): Argv[] {
  const audiences = o.audiences.length ? [...o.audiences] : [AZURE_DEFAULT_AUDIENCE];
  return o.serviceAccounts.map((ref): Argv => {
    const name = azureCredentialName(ref, o.credentialPrefix);
    const subject = serviceAccountSubject(ref);
    if (o.target.kind === 'app') {
      const parameters = {
        name,
        issuer: o.issuer,
        subject,
        description: `Kubernetes ServiceAccount ${ref.namespace}/${ref.name}`,
        audiences,
      };
      return [
        'az',
        'ad',
        'app',
        'federated-credential',
        'create',
        '--id',
        o.target.appId,
        '--parameters',
        JSON.stringify(parameters),
      ];
    }
    return [
      'az',
      'identity',
      'federated-credential',
      'create',
      '--name',
      name,
      '--identity-name',
      o.target.identity,
      '--resource-group',
      o.target.resourceGroup,
      '--issuer',
      o.issuer,
      '--subject',
      subject,
      '--audiences',
      ...audiences,
    ];
  });
}

const PLAIN_WORD = /^[A-Za-z0-9_@%+=:,./-]+$/;
/** What double quotes do not keep as it is. */
const SPECIAL_IN_DOUBLE_QUOTES = /["$`\\!]/;

/**
 * One argument as a POSIX shell reads it back unchanged: bare when safe, else in single quotes,
 * or in double quotes when it holds single quotes and nothing double quotes would change. Of a
 * `--flag=value` argument only the value is quoted.
 */
export function shellWord(arg: string): string {
  const flag = /^(--[a-z0-9-]+=)(.*)$/s.exec(arg);
  if (flag) return `${flag[1]}${shellWord(flag[2] ?? '')}`;
  if (PLAIN_WORD.test(arg)) return arg;
  if (!arg.includes("'")) return `'${arg}'`;
  if (!SPECIAL_IN_DOUBLE_QUOTES.test(arg)) return `"${arg}"`;
  return `'${arg.replaceAll("'", `'\\''`)}'`;
}

/**
 * A command as shell text: the program and the words before the first flag on the first line,
 * then each flag (with its value, when given apart) on a continuation line.
 */
export function renderCommand(argv: Argv): string {
  const lines: string[][] = [[]];
  for (const arg of argv) {
    const current = lines[lines.length - 1] ?? [];
    if (arg.startsWith('--') && current.length > 0) lines.push([arg]);
    else current.push(arg);
  }
  return `${lines.map((words) => words.map(shellWord).join(' ')).join(' \\\n    ')}\n`;
}

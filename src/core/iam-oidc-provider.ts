/**
 * The IAM OIDC identity provider of an issuer, decided in pure code: the calls
 * that create it or bring an existing one in line (client IDs added and
 * removed, a thumbprint added where IAM still needs one), and the trust policy
 * of a role that admits exactly the given ServiceAccounts. `register aws`
 * gathers the state and makes the calls (commands/register-aws.ts).
 */
import { type ServiceAccountRef, serviceAccountSubject } from './service-account-ref.ts';

/** The audience STS expects when none is given. */
export const DEFAULT_AWS_AUDIENCE = 'sts.amazonaws.com';
/** IAM keeps at most 5 thumbprints and 100 client IDs per provider. */
export const MAX_THUMBPRINTS = 5;
export const MAX_CLIENT_IDS = 100;

/** An existing provider as GetOpenIDConnectProvider describes it. */
export interface IamProviderState {
  arn: string;
  clientIds: readonly string[];
  thumbprints: readonly string[];
}

export interface DesiredProvider {
  /** The issuer, https. */
  url: string;
  clientIds: readonly string[];
  /** The thumbprint IAM needs for this issuer, or undefined where it verifies the TLS certificate itself. */
  thumbprint: string | undefined;
}

export type IamCall =
  | { action: 'CreateOpenIDConnectProvider'; url: string; clientIds: string[]; thumbprints: string[] }
  | { action: 'AddClientIDToOpenIDConnectProvider'; arn: string; clientId: string }
  | { action: 'RemoveClientIDFromOpenIDConnectProvider'; arn: string; clientId: string }
  | { action: 'UpdateOpenIDConnectProviderThumbprint'; arn: string; thumbprints: string[] };

/**
 * The issuer as IAM names the provider: without `https://`. It ends the provider's ARN and
 * starts its condition keys (`<path>:aud`, `<path>:sub`).
 */
export function providerPath(issuer: string): string {
  return issuer.replace(/^https:\/\//i, '');
}

/** The ARN among `arns` of the provider for `issuer` (the host compared without case). */
export function findProviderArn(arns: readonly string[], issuer: string): string | undefined {
  const want = normalPath(providerPath(issuer));
  return arns.find((arn) => {
    const at = arn.indexOf(':oidc-provider/');
    return at >= 0 && normalPath(arn.slice(at + ':oidc-provider/'.length)) === want;
  });
}

function normalPath(path: string): string {
  const slash = path.indexOf('/');
  return slash < 0 ? path.toLowerCase() : `${path.slice(0, slash).toLowerCase()}${path.slice(slash)}`;
}

/** The client IDs to add to and remove from `current` so that it holds exactly `desired`. */
export function clientIdChanges(
  current: readonly string[],
  desired: readonly string[],
): { add: string[]; remove: string[] } {
  return {
    add: [...new Set(desired)].filter((c) => !current.includes(c)),
    remove: [...new Set(current)].filter((c) => !desired.includes(c)),
  };
}

/**
 * The calls that make IAM hold `desired`: a create when there is no provider; otherwise the
 * client IDs added (first, so the provider is never left without one) and removed, and the
 * thumbprint added in front of the others when IAM needs one that is not there. Thumbprints
 * IAM no longer uses are left alone. No call when all is in line.
 */
export function planProvider(existing: IamProviderState | undefined, desired: DesiredProvider): IamCall[] {
  if (!existing) {
    return [
      {
        action: 'CreateOpenIDConnectProvider',
        url: desired.url,
        clientIds: [...new Set(desired.clientIds)],
        thumbprints: desired.thumbprint ? [desired.thumbprint] : [],
      },
    ];
  }
  const { add, remove } = clientIdChanges(existing.clientIds, desired.clientIds);
  const calls: IamCall[] = [
    ...add.map((clientId) => ({
      action: 'AddClientIDToOpenIDConnectProvider' as const,
      arn: existing.arn,
      clientId,
    })),
    ...remove.map((clientId) => ({
      action: 'RemoveClientIDFromOpenIDConnectProvider' as const,
      arn: existing.arn,
      clientId,
    })),
  ];
  const thumbprint = desired.thumbprint?.toLowerCase();
  if (thumbprint && !existing.thumbprints.some((t) => t.toLowerCase() === thumbprint)) {
    calls.push({
      action: 'UpdateOpenIDConnectProviderThumbprint',
      arn: existing.arn,
      thumbprints: [thumbprint, ...existing.thumbprints].slice(0, MAX_THUMBPRINTS),
    });
  }
  return calls;
}

const list = (values: readonly string[]) => (values.length ? values.join(',') : '(none)');

/** A call as the API names it and its parameters, one line. */
export function describeCall(call: IamCall): string {
  switch (call.action) {
    case 'CreateOpenIDConnectProvider':
      return `${call.action} Url=${call.url} ClientIDList=${list(call.clientIds)} ThumbprintList=${list(call.thumbprints)}`;
    case 'AddClientIDToOpenIDConnectProvider':
    case 'RemoveClientIDFromOpenIDConnectProvider':
      return `${call.action} OpenIDConnectProviderArn=${call.arn} ClientID=${call.clientId}`;
    case 'UpdateOpenIDConnectProviderThumbprint':
      return `${call.action} OpenIDConnectProviderArn=${call.arn} ThumbprintList=${list(call.thumbprints)}`;
  }
}

/** What a call that succeeded did, one line; `arn` is the provider's (for a create, the new one). */
export function describeDone(call: IamCall, arn: string): string {
  switch (call.action) {
    case 'CreateOpenIDConnectProvider':
      return `created ${arn} (client IDs ${list(call.clientIds)}; thumbprints ${list(call.thumbprints)})`;
    case 'AddClientIDToOpenIDConnectProvider':
      return `added client ID ${call.clientId} to ${arn}`;
    case 'RemoveClientIDFromOpenIDConnectProvider':
      return `removed client ID ${call.clientId} from ${arn}`;
    case 'UpdateOpenIDConnectProviderThumbprint':
      return `set the thumbprints of ${arn} to ${list(call.thumbprints)}`;
  }
}

/** The line for a provider that needed no call. */
export function describeNoChange(state: IamProviderState): string {
  return `no change ${state.arn} (client IDs ${list(state.clientIds)}; thumbprints ${list(state.thumbprints)})`;
}

export interface TrustPolicy {
  Version: '2012-10-17';
  Statement: {
    Effect: 'Allow';
    Principal: { Federated: string };
    Action: 'sts:AssumeRoleWithWebIdentity';
    Condition: { StringEquals: Record<string, string | string[]> };
  }[];
}

const oneOrList = (values: readonly string[]): string | string[] =>
  values.length === 1 ? (values[0] ?? '') : [...values];

/**
 * The trust policy of an IAM role that the given ServiceAccounts, and no other, may assume with
 * a token of this issuer for one of `audiences`.
 */
export function trustPolicy(
  providerArn: string,
  issuer: string,
  audiences: readonly string[],
  serviceAccounts: readonly ServiceAccountRef[],
): TrustPolicy {
  const path = providerPath(issuer);
  return {
    Version: '2012-10-17',
    Statement: [
      {
        Effect: 'Allow',
        Principal: { Federated: providerArn },
        Action: 'sts:AssumeRoleWithWebIdentity',
        Condition: {
          StringEquals: {
            [`${path}:aud`]: oneOrList([...new Set(audiences)]),
            [`${path}:sub`]: oneOrList(serviceAccounts.map(serviceAccountSubject)),
          },
        },
      },
    ],
  };
}

/** The ARN a provider for `issuer` has in an account (`<account-id>` when it is not known yet). */
export function providerArnFor(issuer: string, account = '<account-id>', partition = 'aws'): string {
  return `arn:${partition}:iam::${account}:oidc-provider/${providerPath(issuer)}`;
}

/**
 * IAM's OIDC identity providers through the AWS SDK, for `register aws`.
 * Loaded by `import()` only when that command runs: the operator never loads
 * @aws-sdk/client-iam. Credentials come from the SDK's default chain and the
 * endpoint from AWS_ENDPOINT_URL_IAM or AWS_ENDPOINT_URL when set; SDK errors
 * become CLOUD_ACCESS_DENIED or CLOUD_ERROR here, by their name.
 */
import {
  AddClientIDToOpenIDConnectProviderCommand,
  CreateOpenIDConnectProviderCommand,
  GetOpenIDConnectProviderCommand,
  IAMClient,
  ListOpenIDConnectProvidersCommand,
  RemoveClientIDFromOpenIDConnectProviderCommand,
  UpdateOpenIDConnectProviderThumbprintCommand,
} from '@aws-sdk/client-iam';
import type { IamCall, IamProviderState } from '../core/iam-oidc-provider.ts';
import { OidcPublisherError } from '../errors.ts';

export interface IamProviders {
  /** The ARNs of the account's OIDC providers. */
  list(): Promise<string[]>;
  get(arn: string): Promise<IamProviderState>;
  /** Makes the call; the provider's ARN (the new one for a create). */
  apply(call: IamCall): Promise<string>;
  close(): void;
}

/** IAM is global: any region of the partition finds it; us-east-1 when none is configured. */
const FALLBACK_REGION = 'us-east-1';

const DENIED = new Set([
  'AccessDenied',
  'AccessDeniedException',
  'InvalidClientTokenId',
  'SignatureDoesNotMatch',
  'ExpiredToken',
  'ExpiredTokenException',
  'UnrecognizedClientException',
  'CredentialsProviderError',
]);

/** Our error for an SDK error: its name, HTTP status and the service's message, never a credential. */
export function iamError(what: string, err: unknown): OidcPublisherError {
  const e = err as { name?: string; message?: string; $metadata?: { httpStatusCode?: number } } | undefined;
  const name = e?.name ?? 'Error';
  const status = e?.$metadata?.httpStatusCode;
  const detail = `${name}${status ? ` (HTTP ${status})` : ''}${e?.message && e.message !== name ? `: ${e.message.split('\n')[0]?.slice(0, 300)}` : ''}`;
  const code = DENIED.has(name) || status === 403 ? 'CLOUD_ACCESS_DENIED' : 'CLOUD_ERROR';
  return new OidcPublisherError(code, `IAM ${what}: ${detail}`, { cause: err });
}

export async function createIamProviders(): Promise<IamProviders> {
  // The SDK's own region chain (AWS_REGION, the profile); IAM needs one only to find its endpoint.
  const probe = new IAMClient({});
  const region = await probe.config.region().catch(() => FALLBACK_REGION);
  probe.destroy();
  const client = new IAMClient({ region });
  const send = async <T>(what: string, run: () => Promise<T>): Promise<T> => {
    try {
      return await run();
    } catch (err) {
      throw iamError(what, err);
    }
  };
  return {
    list: () =>
      send('ListOpenIDConnectProviders', async () => {
        const out = await client.send(new ListOpenIDConnectProvidersCommand({}));
        return (out.OpenIDConnectProviderList ?? []).flatMap((p) => (p.Arn ? [p.Arn] : []));
      }),
    get: (arn) =>
      send('GetOpenIDConnectProvider', async () => {
        const out = await client.send(new GetOpenIDConnectProviderCommand({ OpenIDConnectProviderArn: arn }));
        return { arn, clientIds: out.ClientIDList ?? [], thumbprints: out.ThumbprintList ?? [] };
      }),
    apply: (call) =>
      send(call.action, async () => {
        switch (call.action) {
          case 'CreateOpenIDConnectProvider': {
            const out = await client.send(
              new CreateOpenIDConnectProviderCommand({
                Url: call.url,
                ClientIDList: call.clientIds,
                ...(call.thumbprints.length ? { ThumbprintList: call.thumbprints } : {}),
              }),
            );
            if (!out.OpenIDConnectProviderArn) throw new Error('no OpenIDConnectProviderArn in the answer');
            return out.OpenIDConnectProviderArn;
          }
          case 'AddClientIDToOpenIDConnectProvider':
            await client.send(
              new AddClientIDToOpenIDConnectProviderCommand({
                OpenIDConnectProviderArn: call.arn,
                ClientID: call.clientId,
              }),
            );
            return call.arn;
          case 'RemoveClientIDFromOpenIDConnectProvider':
            await client.send(
              new RemoveClientIDFromOpenIDConnectProviderCommand({
                OpenIDConnectProviderArn: call.arn,
                ClientID: call.clientId,
              }),
            );
            return call.arn;
          case 'UpdateOpenIDConnectProviderThumbprint':
            await client.send(
              new UpdateOpenIDConnectProviderThumbprintCommand({
                OpenIDConnectProviderArn: call.arn,
                ThumbprintList: call.thumbprints,
              }),
            );
            return call.arn;
        }
      }),
    close: () => client.destroy(),
  };
}

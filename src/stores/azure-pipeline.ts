/**
 * What the operator adds to the Azure Storage SDK's request pipeline, and the
 * credential it hands the SDK:
 *
 * - A policy next to the transport (after signing, inside retries and
 *   redirects) that checks every request's URL against the endpoint allowlist
 *   before it is sent, and reads no response body past the size limit: the SDK
 *   otherwise reads a whole error body into memory.
 * - A token credential that only ever asks for Azure Storage's scope in the
 *   configured tenant. The SDK answers a 401 whose WWW-Authenticate names
 *   another resource or tenant by fetching a token for that one; a hostile
 *   endpoint could otherwise obtain a token for Azure Resource Manager, Key
 *   Vault or Graph.
 *
 * The pipeline types are the structural parts of @azure/core-rest-pipeline
 * used here, so that nothing imports the SDK's transitive packages.
 */
import { pipeline as pipe } from 'node:stream';
import type { GetTokenOptions, TokenCredential } from '@azure/identity';
import type { CredentialKind, EndpointPolicy } from './endpoints.ts';
import { limitStream, MAX_STORAGE_RESPONSE_BYTES, readLimited } from './limits.ts';

/** The scope of Azure Storage's data plane (the same in every Azure cloud). */
export const AZURE_STORAGE_SCOPE = 'https://storage.azure.com/.default';

/**
 * Wraps a credential so that every token it gives is for AZURE_STORAGE_SCOPE in its own tenant:
 * requested scopes, tenant and claims (from a challenge) are ignored.
 */
export function storageScopedCredential(inner: TokenCredential): TokenCredential {
  return {
    getToken(_scopes: string | string[], options?: GetTokenOptions) {
      return inner.getToken(AZURE_STORAGE_SCOPE, {
        ...(options?.abortSignal ? { abortSignal: options.abortSignal } : {}),
      });
    },
  };
}

interface PolicyRequest {
  url: string;
  streamResponseStatusCodes?: Set<number>;
}

interface PolicyResponse {
  status: number;
  readableStreamBody?: NodeJS.ReadableStream | undefined;
  bodyAsText?: string | null;
}

export interface PipelinePolicyLike {
  name: string;
  sendRequest<Req extends PolicyRequest, Res extends PolicyResponse>(
    request: Req,
    next: (request: Req) => Promise<Res>,
  ): Promise<Res>;
}

/** The policy described above; `credentials` is what the requests carry. */
export function endpointAndSizePolicy(
  endpoints: EndpointPolicy,
  credentials: CredentialKind,
  limit = MAX_STORAGE_RESPONSE_BYTES,
): PipelinePolicyLike {
  return {
    name: 'oidcPublisherEndpointAndSize',
    async sendRequest<Req extends PolicyRequest, Res extends PolicyResponse>(
      request: Req,
      next: (request: Req) => Promise<Res>,
    ): Promise<Res> {
      endpoints.check('azureBlob', request.url, credentials);
      // Every body comes back as a stream, so that it is read here with a limit.
      const streaming = request.streamResponseStatusCodes;
      request.streamResponseStatusCodes = new Set([Number.POSITIVE_INFINITY]);
      let response: Res;
      try {
        response = await next(request);
      } finally {
        if (streaming) request.streamResponseStatusCodes = streaming;
        else delete request.streamResponseStatusCodes;
      }
      const body = response.readableStreamBody;
      if (streaming?.has(response.status) || streaming?.has(Number.POSITIVE_INFINITY)) {
        if (body) response.readableStreamBody = pipe(body, limitStream(limit), () => {});
      } else {
        response.bodyAsText = body ? (await readLimited(body, limit)).toString('utf8') : null;
        delete response.readableStreamBody;
      }
      return response;
    },
  };
}

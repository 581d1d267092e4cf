/**
 * Reads the issuer documents from an API server through a kubeconfig: TLS
 * verified against the kubeconfig's CA, one keep-alive agent per source,
 * a timeout, a size limit, and no redirects.
 */
import type { RequestOptions } from 'node:https';
import { MAX_DOCUMENT_BYTES } from '../core/documents.ts';
import type { RawDocuments } from '../core/plan.ts';
import { OidcPublisherError } from '../errors.ts';
import { type HttpsAnswer, type HttpsRequestError, httpsRequest } from '../https-request.ts';
import type { KubeAccess } from '../kube/access.ts';
import { TlsAgents, USER_AGENT } from '../kube/http.ts';

export const DISCOVERY_ENDPOINT = '/.well-known/openid-configuration';
export const JWKS_ENDPOINT = '/openid/v1/jwks';

export interface DocumentSource {
  /** The API server URL, for status and logs. */
  readonly server: string;
  fetchDocuments(): Promise<RawDocuments>;
  close(): void;
}

const NETWORK_HINT: Record<string, string> = {
  ECONNREFUSED: 'connection refused',
  ECONNRESET: 'connection reset',
  ENOTFOUND: 'host not found',
  EAI_AGAIN: 'DNS lookup failed',
  ETIMEDOUT: 'connection timed out',
  EHOSTUNREACH: 'host unreachable',
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: 'TLS certificate not trusted by the kubeconfig CA',
  SELF_SIGNED_CERT_IN_CHAIN: 'TLS certificate not trusted by the kubeconfig CA',
  DEPTH_ZERO_SELF_SIGNED_CERT: 'TLS certificate not trusted by the kubeconfig CA',
  ERR_TLS_CERT_ALTNAME_INVALID: 'TLS certificate does not match the server name',
  CERT_HAS_EXPIRED: 'TLS certificate expired',
};

export class ApiServerSource implements DocumentSource {
  readonly server: string;
  readonly #access: KubeAccess;
  readonly #timeoutMs: number;
  readonly #agents = new TlsAgents(4);

  constructor(access: KubeAccess, opts: { timeoutMs: number }) {
    this.server = access.server;
    this.#access = access;
    this.#timeoutMs = opts.timeoutMs;
  }

  /** Request options with the kubeconfig's current credentials (a rotating token file is re-read). */
  async #options(): Promise<RequestOptions> {
    const opts = await this.#access.requestOptions();
    if (!this.#access.ownAgent) {
      opts.agent = this.#agents.for(opts);
    }
    return opts;
  }

  async #get(path: string, accept: string, base: RequestOptions): Promise<Buffer> {
    const url = `${this.server}${path}`;
    const fail = (code: ConstructorParameters<typeof OidcPublisherError>[0], msg: string, cause?: unknown) =>
      new OidcPublisherError(code, `GET ${url}: ${msg}`, { cause });
    let answer: HttpsAnswer;
    try {
      answer = await httpsRequest({
        url,
        options: {
          ...base,
          method: 'GET',
          headers: {
            ...(base.headers as Record<string, string> | undefined),
            accept,
            'user-agent': USER_AGENT,
          },
        },
        maxBytes: MAX_DOCUMENT_BYTES,
        timeoutMs: this.#timeoutMs,
        readBody: (status) => status === 200,
      });
    } catch (err) {
      const failure = err as HttpsRequestError;
      if (failure.kind === 'tooLarge') {
        throw fail('SOURCE_TOO_LARGE', `response larger than ${MAX_DOCUMENT_BYTES} bytes`);
      }
      if (failure.kind === 'interrupted')
        throw fail('SOURCE_UNREACHABLE', 'response interrupted', failure.cause);
      const cause = failure.cause as Error & { code?: string };
      const hint =
        (cause.code && Object.hasOwn(NETWORK_HINT, cause.code) ? NETWORK_HINT[cause.code] : undefined) ??
        cause.code ??
        'request failed';
      throw fail('SOURCE_UNREACHABLE', hint, cause);
    }
    const status = answer.status;
    if (status === 401 || status === 403) {
      throw fail('SOURCE_UNAUTHORIZED', `HTTP ${status}: the API server refused the credentials`);
    }
    if (status >= 300 && status < 400)
      throw fail('SOURCE_HTTP_ERROR', `HTTP ${status}: redirects are not followed`);
    if (status !== 200) throw fail('SOURCE_HTTP_ERROR', `HTTP ${status}`);
    return answer.body;
  }

  async fetchDocuments(): Promise<RawDocuments> {
    const base = await this.#options().catch((err: unknown) => {
      throw new OidcPublisherError('KUBECONFIG_INVALID', 'kubeconfig credentials could not be loaded', {
        cause: err,
      });
    });
    const [discovery, jwks] = await Promise.all([
      this.#get(DISCOVERY_ENDPOINT, 'application/json', base),
      this.#get(JWKS_ENDPOINT, 'application/jwk-set+json, application/json', base),
    ]);
    return { discovery, jwks };
  }

  close(): void {
    this.#agents.destroy();
  }
}

/**
 * Reads the issuer documents from an API server through a kubeconfig: TLS
 * verified against the kubeconfig's CA, one keep-alive agent per source,
 * a timeout, a size limit, and no redirects.
 */
import type { IncomingMessage } from 'node:http';
import { type RequestOptions, request } from 'node:https';
import { MAX_DOCUMENT_BYTES } from '../core/documents.ts';
import type { RawDocuments } from '../core/plan.ts';
import { OidcPublisherError } from '../errors.ts';
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

  #get(path: string, accept: string, base: RequestOptions): Promise<Buffer> {
    const url = `${this.server}${path}`;
    return new Promise((resolve, reject) => {
      let settled = false;
      const fail = (
        code: ConstructorParameters<typeof OidcPublisherError>[0],
        msg: string,
        cause?: unknown,
      ) => {
        if (settled) return;
        settled = true;
        clearTimeout(deadline);
        reject(new OidcPublisherError(code, `GET ${url}: ${msg}`, { cause }));
      };
      const req = request(
        url,
        {
          ...base,
          method: 'GET',
          headers: {
            ...(base.headers as Record<string, string> | undefined),
            accept,
            'user-agent': USER_AGENT,
          },
          timeout: this.#timeoutMs,
        },
        (res: IncomingMessage) => {
          const status = res.statusCode ?? 0;
          if (status !== 200) {
            res.resume();
            if (status === 401 || status === 403) {
              fail('SOURCE_UNAUTHORIZED', `HTTP ${status}: the API server refused the credentials`);
            } else if (status >= 300 && status < 400) {
              fail('SOURCE_HTTP_ERROR', `HTTP ${status}: redirects are not followed`);
            } else {
              fail('SOURCE_HTTP_ERROR', `HTTP ${status}`);
            }
            return;
          }
          const chunks: Buffer[] = [];
          let size = 0;
          res.on('data', (chunk: Buffer) => {
            size += chunk.length;
            if (size > MAX_DOCUMENT_BYTES) {
              req.destroy();
              fail('SOURCE_TOO_LARGE', `response larger than ${MAX_DOCUMENT_BYTES} bytes`);
              return;
            }
            chunks.push(chunk);
          });
          res.on('error', (err) => fail('SOURCE_UNREACHABLE', 'response interrupted', err));
          res.on('end', () => {
            if (settled) return;
            settled = true;
            clearTimeout(deadline);
            resolve(Buffer.concat(chunks));
          });
        },
      );
      // The whole exchange, not just each idle gap, must finish in time: a server that trickles bytes is cut off too.
      const deadline = setTimeout(
        () => req.destroy(Object.assign(new Error('timeout'), { code: 'ETIMEDOUT' })),
        this.#timeoutMs,
      );
      req.on('timeout', () => req.destroy(Object.assign(new Error('timeout'), { code: 'ETIMEDOUT' })));
      req.on('error', (err: Error & { code?: string }) => {
        const hint =
          (err.code && Object.hasOwn(NETWORK_HINT, err.code) ? NETWORK_HINT[err.code] : undefined) ??
          err.code ??
          'request failed';
        fail('SOURCE_UNREACHABLE', hint, err);
      });
      req.end();
    });
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

/**
 * One HTTPS request and its answer's body, as every client of the operator
 * sends it (the Kubernetes client, the document source, the anonymous issuer
 * reader): a size cap on the body, one deadline for the whole exchange (a
 * server that trickles bytes is cut off too), and no redirects (a 3xx is an
 * answer like any other).
 */
import type { IncomingHttpHeaders, IncomingMessage } from 'node:http';
import { type RequestOptions, request } from 'node:https';
import type { DetailedPeerCertificate, TLSSocket } from 'node:tls';

export interface HttpsRequest {
  url: string | URL;
  /** Method (GET when absent), headers, agent and TLS material. */
  options: RequestOptions;
  body?: Buffer | undefined;
  /** A larger body fails the request with `tooLarge`. */
  maxBytes: number;
  /** Connecting, the answer and its body included; then `timeout`. */
  timeoutMs: number;
  /** Whether to read the body of an answer with this status (default: every status); if not, it is dropped. */
  readBody?: (status: number) => boolean;
  /** Whether to keep the server's certificate chain in the answer (`peerChain`). */
  peerChain?: boolean;
}

export interface HttpsAnswer {
  status: number;
  headers: IncomingHttpHeaders;
  /** Empty when `readBody` declined it. */
  body: Buffer;
  /**
   * With `peerChain`: the DER bytes of the server's certificate, then of each issuer up to the
   * root, as the TLS handshake verified them.
   */
  peerChain?: Buffer[];
}

/** The chain of a peer certificate, the server's first, each certificate once. */
function chainOf(cert: DetailedPeerCertificate): Buffer[] {
  const chain: Buffer[] = [];
  const seen = new Set<DetailedPeerCertificate>();
  for (let c: DetailedPeerCertificate | undefined = cert; c?.raw && !seen.has(c); c = c.issuerCertificate) {
    seen.add(c);
    chain.push(c.raw);
  }
  return chain;
}

/**
 * What went wrong: `network` (no answer, `cause` says why), `interrupted` (the answer's body
 * broke off), `tooLarge` (the body passed `maxBytes`), `timeout` (the deadline passed; `cause` is
 * an error with code ETIMEDOUT).
 */
export type HttpsFailureKind = 'network' | 'interrupted' | 'tooLarge' | 'timeout';

export class HttpsRequestError extends Error {
  override name = 'HttpsRequestError';
  readonly kind: HttpsFailureKind;
  /** The answer's status, when one had arrived. */
  readonly status: number | undefined;

  constructor(kind: HttpsFailureKind, status: number | undefined, cause?: unknown) {
    super(kind, cause === undefined ? undefined : { cause });
    this.kind = kind;
    this.status = status;
  }
}

/** An error with code ETIMEDOUT, as Node's own timeouts have. */
export function timeoutError(): Error {
  return Object.assign(new Error('timeout'), { code: 'ETIMEDOUT' });
}

/** Sends the request; resolves with the answer, whatever its status; rejects with HttpsRequestError. */
export function httpsRequest(r: HttpsRequest): Promise<HttpsAnswer> {
  return new Promise((resolve, reject) => {
    let settled = false;
    let status: number | undefined;
    const settle = (err: HttpsRequestError | undefined, answer?: HttpsAnswer) => {
      if (settled) return;
      settled = true;
      clearTimeout(deadline);
      if (err) reject(err);
      else if (answer) resolve(answer);
    };
    const req = request(r.url, r.options, (res: IncomingMessage) => {
      status = res.statusCode ?? 0;
      const answered = {
        status,
        headers: res.headers,
        ...(r.peerChain ? { peerChain: chainOf((res.socket as TLSSocket).getPeerCertificate(true)) } : {}),
      };
      if (r.readBody && !r.readBody(status)) {
        res.resume();
        settle(undefined, { ...answered, body: Buffer.alloc(0) });
        return;
      }
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (size > r.maxBytes) {
          settle(new HttpsRequestError('tooLarge', status));
          req.destroy();
          return;
        }
        chunks.push(chunk);
      });
      res.on('error', (err) => settle(new HttpsRequestError('interrupted', status, err)));
      res.on('end', () => settle(undefined, { ...answered, body: Buffer.concat(chunks) }));
    });
    const deadline = setTimeout(() => {
      const err = timeoutError();
      settle(new HttpsRequestError('timeout', status, err));
      req.destroy(err);
    }, r.timeoutMs);
    req.on('error', (err) => settle(new HttpsRequestError('network', status, err)));
    req.end(r.body);
  });
}

/**
 * Reads the public issuer the way a relying party does: anonymous HTTPS GET of
 * <issuer>/.well-known/openid-configuration, then of the jwks_uri it names. No
 * credentials, no redirects, the process's trusted CAs, a deadline for the
 * whole exchange. What it saw is judged by core/verify.ts.
 */
import { createHash } from 'node:crypto';
import { Agent } from 'node:https';
import { MAX_DOCUMENT_BYTES } from '../core/documents.ts';
import { DISCOVERY_PATH, issuerBase } from '../core/spec.ts';
import type { Fetched, Observation } from '../core/verify.ts';
import { type HttpsAnswer, type HttpsRequestError, httpsRequest } from '../https-request.ts';

export interface IssuerReader {
  read(issuerURL: string, timeoutMs: number): Promise<Observation>;
  close(): void;
}

/** What a relying party would say went wrong. */
function failure(err: HttpsRequestError): string {
  if (err.kind === 'tooLarge') return `response larger than ${MAX_DOCUMENT_BYTES} bytes`;
  if (err.kind === 'interrupted') return 'response interrupted';
  if (err.kind === 'timeout') return 'timed out';
  return (err.cause as { code?: string } | undefined)?.code ?? 'request failed';
}

export class AnonymousIssuerReader implements IssuerReader {
  readonly #agent = new Agent({ keepAlive: true, maxSockets: 8 });

  async #get(url: string, deadline: number): Promise<Fetched> {
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch {
      return { url, error: 'not a URL' };
    }
    if (parsed.protocol !== 'https:') return { url, error: 'not an https URL' };
    let answer: HttpsAnswer;
    try {
      answer = await httpsRequest({
        url: parsed,
        options: { method: 'GET', agent: this.#agent, headers: { accept: 'application/json' } },
        maxBytes: MAX_DOCUMENT_BYTES,
        timeoutMs: Math.max(0, deadline - Date.now()),
      });
    } catch (err) {
      return { url, error: failure(err as HttpsRequestError) };
    }
    let json: unknown;
    try {
      json = JSON.parse(answer.body.toString('utf8'));
    } catch {
      json = undefined;
    }
    const { headers } = answer;
    return {
      url,
      status: answer.status,
      ...(headers['content-type'] ? { contentType: headers['content-type'] } : {}),
      ...(headers['cache-control'] ? { cacheControl: headers['cache-control'] } : {}),
      sha256: createHash('sha256').update(answer.body).digest('hex'),
      ...(json !== undefined ? { json } : {}),
    };
  }

  async read(issuerURL: string, timeoutMs: number): Promise<Observation> {
    const started = performance.now();
    const deadline = Date.now() + timeoutMs;
    const discovery = await this.#get(`${issuerBase(issuerURL)}/${DISCOVERY_PATH}`, deadline);
    const jwksURI = (discovery.json as { jwks_uri?: unknown } | undefined)?.jwks_uri;
    const jwks =
      discovery.status === 200 && typeof jwksURI === 'string'
        ? await this.#get(jwksURI, deadline)
        : undefined;
    return { discovery, ...(jwks ? { jwks } : {}), latencyMs: performance.now() - started };
  }

  close(): void {
    this.#agent.destroy();
  }
}

/**
 * Reads the public issuer the way a relying party does: anonymous HTTPS GET of
 * <issuer>/.well-known/openid-configuration, then of the jwks_uri it names. No
 * credentials, no redirects, the process's trusted CAs, a deadline for the
 * whole exchange. What it saw is judged by core/verify.ts.
 */
import { createHash } from 'node:crypto';
import { Agent, request } from 'node:https';
import { MAX_DOCUMENT_BYTES } from '../core/documents.ts';
import { DISCOVERY_PATH, issuerBase } from '../core/spec.ts';
import type { Fetched, Observation } from '../core/verify.ts';

export interface IssuerReader {
  read(issuerURL: string, timeoutMs: number): Promise<Observation>;
  close(): void;
}

export class AnonymousIssuerReader implements IssuerReader {
  readonly #agent = new Agent({ keepAlive: true, maxSockets: 8 });

  #get(url: string, deadline: number): Promise<Fetched> {
    return new Promise((resolve) => {
      let settled = false;
      const done = (f: Fetched) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        resolve(f);
      };
      let parsed: URL;
      try {
        parsed = new URL(url);
      } catch {
        done({ url, error: 'not a URL' });
        return;
      }
      if (parsed.protocol !== 'https:') {
        done({ url, error: 'not an https URL' });
        return;
      }
      const req = request(
        parsed,
        { method: 'GET', agent: this.#agent, headers: { accept: 'application/json' } },
        (res) => {
          const chunks: Buffer[] = [];
          let size = 0;
          res.on('data', (c: Buffer) => {
            size += c.length;
            if (size > MAX_DOCUMENT_BYTES) {
              req.destroy();
              done({ url, error: `response larger than ${MAX_DOCUMENT_BYTES} bytes` });
              return;
            }
            chunks.push(c);
          });
          res.on('error', () => done({ url, error: 'response interrupted' }));
          res.on('end', () => {
            const body = Buffer.concat(chunks);
            let json: unknown;
            try {
              json = JSON.parse(body.toString('utf8'));
            } catch {
              json = undefined;
            }
            done({
              url,
              status: res.statusCode ?? 0,
              ...(res.headers['content-type'] ? { contentType: res.headers['content-type'] } : {}),
              ...(res.headers['cache-control'] ? { cacheControl: res.headers['cache-control'] } : {}),
              sha256: createHash('sha256').update(body).digest('hex'),
              ...(json !== undefined ? { json } : {}),
            });
          });
        },
      );
      const timer = setTimeout(
        () => {
          req.destroy();
          done({ url, error: 'timed out' });
        },
        Math.max(0, deadline - Date.now()),
      );
      req.on('error', (err: Error & { code?: string }) => done({ url, error: err.code ?? 'request failed' }));
      req.end();
    });
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

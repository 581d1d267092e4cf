/**
 * JSON requests to the operator's own API server over one keep-alive
 * connection pool. client-node 2.0's generated APIs build a new undici
 * dispatcher for every request, so each call pays a TCP and TLS handshake
 * (about 5 ms of CPU here, and as much on the API server) and leaves a socket
 * behind until it is collected; the calls made on every sync go through this
 * instead. The kubeconfig's current credentials are applied to each request,
 * so a rotated token file is picked up as client-node would.
 */
import type { IncomingMessage } from 'node:http';
import { Agent, type RequestOptions, request } from 'node:https';
import type { KubeConfig } from '@kubernetes/client-node';

/** An answer other than 2xx: its status and the Status object's reason, never its message. */
export class KubeHttpError extends Error {
  override name = 'KubeHttpError';
  readonly status: number;
  readonly reason: string | undefined;

  constructor(status: number, reason: string | undefined) {
    super(`HTTP ${status}${reason ? ` ${reason}` : ''}`);
    this.status = status;
    this.reason = reason;
  }
}

const MAX_RESPONSE_BYTES = 64 * 1024 * 1024;

export class KubeHttp {
  readonly #kc: KubeConfig;
  readonly #server: string;
  readonly #timeoutMs: number;
  #agent: Agent | undefined;

  constructor(kc: KubeConfig, opts: { timeoutMs?: number } = {}) {
    this.#kc = kc;
    this.#server = (kc.getCurrentCluster()?.server ?? '').replace(/\/+$/, '');
    this.#timeoutMs = opts.timeoutMs ?? 30_000;
  }

  async #options(): Promise<RequestOptions> {
    const opts: RequestOptions = {};
    await this.#kc.applyToHTTPSOptions(opts);
    // A proxied cluster keeps client-node's own agent (applyToHTTPSOptions set it).
    if (!this.#kc.getCurrentCluster()?.proxyUrl) {
      this.#agent ??= new Agent({
        keepAlive: true,
        maxSockets: 8,
        ca: opts.ca,
        cert: opts.cert,
        key: opts.key,
        ...(opts.servername ? { servername: opts.servername } : {}),
        ...(opts.rejectUnauthorized === false ? { rejectUnauthorized: false } : {}),
      });
      opts.agent = this.#agent;
    }
    return opts;
  }

  /** Sends `body` as JSON with `contentType`; resolves with the parsed answer; rejects with KubeHttpError or the network error. */
  async send(
    method: string,
    path: string,
    body?: unknown,
    contentType = 'application/json',
  ): Promise<unknown> {
    const base = await this.#options();
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    return new Promise((resolve, reject) => {
      let settled = false;
      const settle = (err: Error | undefined, value?: unknown) => {
        if (settled) return;
        settled = true;
        clearTimeout(deadline);
        if (err) reject(err);
        else resolve(value);
      };
      const req = request(
        `${this.#server}${path}`,
        {
          ...base,
          method,
          headers: {
            ...(base.headers as Record<string, string> | undefined),
            accept: 'application/json',
            ...(payload ? { 'content-type': contentType, 'content-length': String(payload.length) } : {}),
          },
        },
        (res: IncomingMessage) => {
          const chunks: Buffer[] = [];
          let size = 0;
          res.on('data', (c: Buffer) => {
            size += c.length;
            if (size > MAX_RESPONSE_BYTES) req.destroy(new Error('response too large'));
            else chunks.push(c);
          });
          res.on('error', (err) => settle(err));
          res.on('end', () => {
            const status = res.statusCode ?? 0;
            let json: unknown;
            try {
              json = chunks.length ? JSON.parse(Buffer.concat(chunks).toString('utf8')) : undefined;
            } catch {
              json = undefined;
            }
            if (status >= 200 && status < 300) settle(undefined, json);
            else settle(new KubeHttpError(status, (json as { reason?: string } | undefined)?.reason));
          });
        },
      );
      const deadline = setTimeout(
        () => req.destroy(Object.assign(new Error('timeout'), { code: 'ETIMEDOUT' })),
        this.#timeoutMs,
      );
      req.on('error', (err) => settle(err));
      req.end(payload);
    });
  }

  close(): void {
    this.#agent?.destroy();
  }
}

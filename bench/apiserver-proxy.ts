/**
 * A counting HTTPS reverse proxy in front of the bed's API server, on
 * loopback: it terminates TLS with the bed's serving certificate (so the
 * operator's kubeconfig, which trusts the bed CA, works unchanged but for its
 * server URL), counts each request by what it is for, and forwards it, watch
 * streams included. The API server's own metrics cannot tell the two issuer
 * documents apart from other non-resource GETs; this can.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { Agent, createServer, request, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';

/** What a request to the API server was for. */
export type RequestKind =
  | 'source' // GET of /.well-known/openid-configuration or /openid/v1/jwks
  | 'secret' // GET of a Secret
  | 'status' // PATCH of an OidcPublisher's status
  | 'object' // PATCH of an OidcPublisher (finalizers)
  | 'list' // LIST of OidcPublishers
  | 'watch' // WATCH of OidcPublishers
  | 'event' // POST of an Event
  | 'other';

export function classify(method: string, url: string): RequestKind {
  const [path = '', query = ''] = url.split('?');
  if (path === '/.well-known/openid-configuration' || path === '/openid/v1/jwks') return 'source';
  if (/^\/api\/v1\/namespaces\/[^/]+\/secrets\/[^/]+$/.test(path) && method === 'GET') return 'secret';
  if (path.startsWith('/apis/events.k8s.io/')) return 'event';
  if (path.startsWith('/apis/oidcpublisher.io/')) {
    if (method === 'PATCH') return path.endsWith('/status') ? 'status' : 'object';
    if (method === 'GET') return /(^|&)watch=(true|1)/.test(query) ? 'watch' : 'list';
  }
  return 'other';
}

export class CountingProxy {
  readonly #server: Server;
  readonly #agent: Agent;
  readonly #counts = new Map<RequestKind, number>();

  private constructor(server: Server, agent: Agent) {
    this.#server = server;
    this.#agent = agent;
  }

  /** Listens on 127.0.0.1 and forwards to `target` (https://127.0.0.1:port). */
  static async start(target: string, tls: { cert: Buffer; key: Buffer; ca: Buffer }): Promise<CountingProxy> {
    const upstream = new URL(target);
    const agent = new Agent({ keepAlive: true, ca: tls.ca });
    let proxy: CountingProxy | undefined;
    const server = createServer(
      { cert: tls.cert, key: tls.key },
      (req: IncomingMessage, res: ServerResponse) => {
        proxy?.count(classify(req.method ?? 'GET', req.url ?? '/'));
        const up = request(
          {
            host: upstream.hostname,
            port: upstream.port,
            method: req.method,
            path: req.url,
            headers: { ...req.headers, host: upstream.host },
            agent,
          },
          (ur) => {
            res.writeHead(ur.statusCode ?? 502, ur.headers);
            // A watch answers its headers long before its first event: pass them on at once.
            res.flushHeaders();
            ur.pipe(res);
            // A watch the client gave up on must not keep the upstream stream open.
            res.on('close', () => {
              if (!ur.complete) up.destroy();
            });
          },
        );
        up.on('error', () => {
          if (!res.headersSent) res.writeHead(502);
          res.end();
        });
        req.pipe(up);
      },
    );
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => resolve());
    });
    proxy = new CountingProxy(server, agent);
    return proxy;
  }

  /** Counts one request (the server calls this for each it forwards). */
  count(kind: RequestKind): void {
    this.#counts.set(kind, (this.#counts.get(kind) ?? 0) + 1);
  }

  get url(): string {
    return `https://127.0.0.1:${(this.#server.address() as AddressInfo).port}`;
  }

  /** A copy of the counts so far. */
  counts(): Map<RequestKind, number> {
    return new Map(this.#counts);
  }

  async close(): Promise<void> {
    this.#server.closeAllConnections();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
    this.#agent.destroy();
  }
}

/** counts `after` minus `before`, per kind. */
export function countDelta(
  before: ReadonlyMap<string, number>,
  after: ReadonlyMap<string, number>,
): Map<string, number> {
  const out = new Map<string, number>();
  for (const [k, v] of after) out.set(k, v - (before.get(k) ?? 0));
  return out;
}

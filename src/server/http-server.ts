/**
 * The HTTP servers' limits, shared by the health server (/healthz, /readyz,
 * /metrics) and `oidc-publisher serve`: how long a client may take to send its
 * headers and its whole request, how long an idle keep-alive connection stays,
 * and how many connections are open at once.
 *
 * Node checks the header and request deadlines only every
 * `connectionsCheckingInterval` (30 s by default), so a deadline really is
 * `timeout + interval`: a 10 s header timeout with the default interval let a
 * client hold a connection for up to 40 s. The interval here is 1 s.
 */
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { SecureContextOptions } from 'node:tls';
import type { ListenAddress } from './listen-address.ts';

// `import ... from 'node:http'` would load Node's whole bundled undici (its ESM namespace reads
// the lazy WebSocket and MessageEvent exports): about 12 MB of memory for nothing used here.
const { createServer } = process.getBuiltinModule('node:http') as typeof import('node:http');

export interface HttpLimits {
  /** A client must have sent all its request headers this long after connecting (or after its previous request); else 408 and close. */
  headersTimeoutMs: number;
  /** A client must have sent its whole request (headers and body) in this long; else 408 and close. At least headersTimeoutMs. */
  requestTimeoutMs: number;
  /** How often Node checks the two deadlines above: each really is its timeout plus up to this. */
  checkIntervalMs: number;
  /** An idle keep-alive connection is closed after this long. */
  keepAliveTimeoutMs: number;
  /** Connections beyond this many open at once are closed as soon as they are accepted. */
  maxConnections: number;
}

/**
 * /healthz, /readyz and /metrics: kubelet probes (a new connection each, 1 s
 * timeout by default) and a Prometheus scrape or two (one keep-alive connection
 * each) need few connections and no patience.
 */
export const HEALTH_LIMITS: Readonly<HttpLimits> = Object.freeze({
  headersTimeoutMs: 5_000,
  requestTimeoutMs: 10_000,
  checkIntervalMs: 1_000,
  keepAliveTimeoutMs: 5_000,
  maxConnections: 64,
});

/** `oidc-publisher serve`, behind an Ingress or load balancer that keeps a pool of connections. */
export const SERVE_LIMITS: Readonly<HttpLimits> = Object.freeze({
  headersTimeoutMs: 10_000,
  requestTimeoutMs: 30_000,
  checkIntervalMs: 1_000,
  keepAliveTimeoutMs: 5_000,
  maxConnections: 1024,
});

/** An HTTP server with these limits, not yet listening. */
export function createLimitedServer(
  limits: HttpLimits,
  handler: (req: IncomingMessage, res: ServerResponse) => void,
): Server {
  const server = createServer(
    {
      headersTimeout: limits.headersTimeoutMs,
      requestTimeout: limits.requestTimeoutMs,
      connectionsCheckingInterval: limits.checkIntervalMs,
      keepAliveTimeout: limits.keepAliveTimeoutMs,
    },
    handler,
  );
  server.maxConnections = limits.maxConnections;
  return server;
}

/**
 * An HTTPS server with these limits, not yet listening: TLS 1.2 or later, HTTP/1.1, and the TLS
 * handshake held to headersTimeoutMs too (Node's default is 120 s). `setSecureContext` replaces
 * the certificate for new connections.
 */
export function createLimitedSecureServer(
  limits: HttpLimits,
  context: SecureContextOptions,
  handler: (req: IncomingMessage, res: ServerResponse) => void,
): Server {
  const { createServer: createHttpsServer } = process.getBuiltinModule(
    'node:https',
  ) as typeof import('node:https');
  const server = createHttpsServer(
    {
      ...context,
      minVersion: 'TLSv1.2',
      ALPNProtocols: ['http/1.1'],
      handshakeTimeout: limits.headersTimeoutMs,
      headersTimeout: limits.headersTimeoutMs,
      requestTimeout: limits.requestTimeoutMs,
      connectionsCheckingInterval: limits.checkIntervalMs,
      keepAliveTimeout: limits.keepAliveTimeoutMs,
    },
    handler,
  );
  server.maxConnections = limits.maxConnections;
  return server;
}

/** Listens; rejects with the listen error (EADDRINUSE, EADDRNOTAVAIL, ...). */
export function listen(server: Server, address: ListenAddress): Promise<Server> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(address.port, address.host, () => {
      server.off('error', reject);
      resolve(server);
    });
  });
}

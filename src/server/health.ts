/** /healthz (the process is alive), /readyz (the informer is synced) and /metrics, on their own port. */
import type { Server } from 'node:http';
import { OidcPublisherError } from '../errors.ts';
import { createLimitedServer, HEALTH_LIMITS, type HttpLimits, listen } from './http-server.ts';
import { parseListenAddress } from './listen-address.ts';

/** What /metrics shows: a prom-client Registry (or anything that renders the text format). */
export interface MetricsSource {
  readonly contentType: string;
  metrics(): Promise<string>;
}

export interface HealthChecks {
  ready(): boolean;
  metrics?: MetricsSource;
}

/**
 * Listens on `addr` (host:port; `:8081` is every interface, which kubelet probes and Prometheus
 * need: they connect to the Pod's IP, not to its loopback).
 */
export function startHealthServer(
  addr: string,
  checks: HealthChecks,
  limits: HttpLimits = HEALTH_LIMITS,
): Promise<Server> {
  const address = parseListenAddress(addr);
  if (!address) {
    return Promise.reject(
      new OidcPublisherError('CONFIG_INVALID', `health address ${JSON.stringify(addr)} is not host:port`),
    );
  }
  const server = createLimitedServer(limits, (req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD' }).end();
      return;
    }
    if (path === '/healthz') {
      res.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n');
    } else if (path === '/metrics' && checks.metrics) {
      const { contentType } = checks.metrics;
      checks.metrics.metrics().then(
        (text) => res.writeHead(200, { 'content-type': contentType }).end(text),
        () => res.writeHead(500, { 'content-type': 'text/plain' }).end('metrics unavailable\n'),
      );
    } else if (path === '/readyz') {
      const ok = checks.ready();
      res.writeHead(ok ? 200 : 503, { 'content-type': 'text/plain' }).end(ok ? 'ok\n' : 'not ready\n');
    } else {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
    }
  });
  return listen(server, address);
}

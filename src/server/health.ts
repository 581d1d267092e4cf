/** /healthz (the process is alive), /readyz (the informer is synced) and /metrics, on their own port. */
import type { Server } from 'node:http';
import type { Registry } from './prometheus.ts';

// `import ... from 'node:http'` would load Node's whole bundled undici (its ESM namespace reads
// the lazy WebSocket and MessageEvent exports): about 12 MB of memory for nothing used here.
const { createServer } = process.getBuiltinModule('node:http') as typeof import('node:http');

export interface HealthChecks {
  ready(): boolean;
  metrics?: Registry;
}

export function startHealthServer(addr: string, checks: HealthChecks): Promise<Server> {
  const idx = addr.lastIndexOf(':');
  const host = addr.slice(0, idx) || undefined;
  const port = Number(addr.slice(idx + 1));
  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD' }).end();
      return;
    }
    if (path === '/healthz') {
      res.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n');
    } else if (path === '/metrics' && checks.metrics) {
      res.writeHead(200, { 'content-type': checks.metrics.contentType }).end(checks.metrics.metrics());
    } else if (path === '/readyz') {
      const ok = checks.ready();
      res.writeHead(ok ? 200 : 503, { 'content-type': 'text/plain' }).end(ok ? 'ok\n' : 'not ready\n');
    } else {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
    }
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve(server));
  });
}

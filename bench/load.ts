/**
 * A small closed-loop HTTP load generator: `connections` keep-alive
 * connections, each sending the next GET as soon as the last answer is read,
 * for a fixed time. Latency is measured per request, from send to the last
 * byte.
 */
import { Agent as HttpAgent, request as httpRequest } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { percentile } from './stats.ts';

export interface LoadOptions {
  connections: number;
  durationMs: number;
  warmupMs?: number;
  headers?: Record<string, string>;
  /** CA for an https URL. */
  ca?: Buffer;
}

export interface LoadResult {
  requests: number;
  errors: number;
  rps: number;
  p50: number;
  p99: number;
}

export async function load(url: string, opts: LoadOptions): Promise<LoadResult> {
  const https = url.startsWith('https:');
  const agent = https
    ? new HttpsAgent({ keepAlive: true, maxSockets: opts.connections, ...(opts.ca ? { ca: opts.ca } : {}) })
    : new HttpAgent({ keepAlive: true, maxSockets: opts.connections });
  const send = https ? httpsRequest : httpRequest;
  const once = (): Promise<number> =>
    new Promise((resolve) => {
      const req = send(url, { agent, headers: opts.headers }, (res) => {
        res.on('data', () => {});
        res.on('end', () => resolve(res.statusCode ?? 0));
        res.on('error', () => resolve(0));
      });
      req.on('error', () => resolve(0));
      req.end();
    });
  const run = async (durationMs: number) => {
    const latencies: number[] = [];
    let errors = 0;
    const started = performance.now();
    const end = started + durationMs;
    const worker = async () => {
      while (performance.now() < end) {
        const t = performance.now();
        const status = await once();
        if (status === 200) latencies.push(performance.now() - t);
        else errors++;
      }
    };
    await Promise.all(Array.from({ length: opts.connections }, worker));
    return { latencies, errors, elapsedMs: performance.now() - started };
  };
  try {
    await run(opts.warmupMs ?? 1000);
    const { latencies, errors, elapsedMs } = await run(opts.durationMs);
    return {
      requests: latencies.length,
      errors,
      rps: latencies.length / (elapsedMs / 1000),
      p50: percentile(latencies, 50),
      p99: percentile(latencies, 99),
    };
  } finally {
    agent.destroy();
  }
}
